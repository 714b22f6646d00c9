"""Agents over HTTP: ``GET /api/v1/agents``, ``GET /api/v1/agents/{ref}``, ``POST /api/v1/agents/{ref}/ask``.

Every route acts as the key's employee through the agent store, so an agent
of another organization, or one the caller may not use, is a 404 like one
that does not exist. ``ask`` runs one turn inside the request (in a server
thread), with the caller's own rights for every tool call; only a few turns
go at once on one server (more are refused with 429, as research is). It is
stateless: no conversation is stored and every call starts a new one.

``run_agent`` is shared with the OpenAI-compatible API (``agent:SLUG`` models),
so both ways in decide, run and refuse in exactly the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.server.auth import Caller, current_caller
from cristal.server.errors import ApiError
from cristal.server.openapi import error_responses
from cristal.server.state import ServerState, slot, state_of

if TYPE_CHECKING:  # the runtime pulls in the registry and the search index: loaded on first use only
    from cristal.agents.runtime import TurnResult

router = APIRouter(tags=["agents"])

# A turn that spent its steps, tokens or cost: the request was fine, the agent could not finish it. Not 429 or
# 5xx, which OpenAI clients retry — a retry would spend the same budget again.
TURN_STOPPED_STATUS = 422


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)


def run_agent(state: ServerState, caller: Caller, ref: str, history: Sequence[dict[str, Any]], question: str) -> TurnResult:
    """One turn of agent ``ref`` (``SLUG`` or ``SLUG@N``) as the caller, after ``history`` (OpenAI messages)."""
    from cristal.agents.ask import counted_turn, usable_config
    from cristal.agents.runtime import TurnContext, TurnStopped

    config = usable_config(state.db, caller.org_slug, caller.email, ref)
    ctx = TurnContext(db=state.db, settings=state.settings, principal=caller.principal,
                      conversation_id=uuid.uuid4().hex, gateway=state.gateway())
    busy = f"{state.limits.agent_turn_concurrency} agent turns are in progress on this server; try again shortly"
    try:
        with slot(state.agent_turn_slots, busy):
            return counted_turn(ctx, config, history, question, "api")
    except TurnStopped as exc:
        raise ApiError(TURN_STOPPED_STATUS, exc.message, "turn_stopped") from None


@router.get("/agents")
def list_agents(request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import store

    return {"agents": store.list_agents(state_of(request).db, caller.org_slug, caller.email)}


@router.get("/agents/{ref}")
def show_agent(ref: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import store

    doc: dict[str, Any] = store.show(state_of(request).db, caller.org_slug, caller.email, ref)
    return doc


@router.post("/agents/{ref}/ask", responses=error_responses(TURN_STOPPED_STATUS, 429, 502))
def ask(ref: str, body: AskBody, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    doc: dict[str, Any] = run_agent(state_of(request), caller, ref, [], body.question).as_dict()
    # Nothing is stored: a conversation id that could not be continued would promise what is not there.
    doc["conversation_id"] = None
    return doc
