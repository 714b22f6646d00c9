"""Agents over HTTP: ``GET /api/v1/agents``, ``GET /api/v1/agents/{ref}``, ``POST /api/v1/agents/{ref}/ask``.

Every route acts as the key's employee through the agent store, so an agent
of another organization, or one the caller may not use, is a 404 like one
that does not exist. ``ask`` runs one turn inside the request (in a server
thread), with the caller's own rights for every tool call; only a few turns
go at once on one server (more are refused with 429, as research is). It is
stateless: no conversation is stored and every call starts a new one (the
conversations routes store theirs).

``run_agent`` and ``agent_turn`` are shared with the OpenAI-compatible API
(``agent:SLUG`` models), so both ways in decide, run and refuse in exactly the
same way. ``LiveTurn`` runs a turn on its own thread while a response streams
its events (server-sent events here and in ``conversations``, chunks there).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cristal.errors import CristalError
from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.server.auth import Caller, current_caller
from cristal.server.errors import ApiError, classify, error_body
from cristal.server.openapi import error_responses
from cristal.server.state import ServerState, slot, state_of, take_slot

if TYPE_CHECKING:  # the runtime pulls in the registry and the search index: loaded on first use only
    from cristal.agents.runtime import OnEvent, TurnResult

log = logging.getLogger("cristal.server")
router = APIRouter(tags=["agents"])

# A turn that spent its steps, tokens or cost: the request was fine, the agent could not finish it. Not 429 or
# 5xx, which OpenAI clients retry — a retry would spend the same budget again.
TURN_STOPPED_STATUS = 422
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)


def _busy(state: ServerState) -> str:
    return f"{state.limits.agent_turn_concurrency} agent turns are in progress on this server; try again shortly"


@dataclass(frozen=True)
class AgentTurn:
    """A stateless turn, decided: the agent and version that will answer, and ``run(on_event)`` to run it."""

    agent: str
    version: int
    run: Callable[[OnEvent | None], TurnResult]


def agent_turn(state: ServerState, caller: Caller, ref: str, history: Sequence[dict[str, Any]],
               question: str) -> AgentTurn:
    """Decide a stateless turn of agent ``ref`` (``SLUG`` or ``SLUG@N``) as the caller (refusals raise here).

    Its ``run`` runs it after ``history`` (OpenAI messages), with an optional ``on_event``.
    """
    from cristal.agents.ask import check_question, counted_turn, usable_config
    from cristal.agents.runtime import TurnContext

    check_question(question)
    config = usable_config(state.db, caller.org_slug, caller.email, ref)
    ctx = TurnContext(db=state.db, settings=state.settings, principal=caller.principal,
                      conversation_id=uuid.uuid4().hex, gateway=state.gateway())
    return AgentTurn(config.slug, config.version,
                     lambda on_event: counted_turn(ctx, config, history, question, "api", on_event=on_event))


def run_in_slot(state: ServerState, run: Callable[[], Any]) -> Any:
    """Run a turn inside the request, in one of the server's turn slots; a spent budget is the 422 error body."""
    from cristal.agents.runtime import TurnStopped

    try:
        with slot(state.agent_turn_slots, _busy(state)):
            return run()
    except TurnStopped as exc:
        raise ApiError(TURN_STOPPED_STATUS, exc.message, "turn_stopped") from None


def run_agent(state: ServerState, caller: Caller, ref: str, history: Sequence[dict[str, Any]], question: str) -> TurnResult:
    """One turn of agent ``ref`` (``SLUG`` or ``SLUG@N``) as the caller, after ``history`` (OpenAI messages)."""
    turn = agent_turn(state, caller, ref, history, question)
    result: TurnResult = run_in_slot(state, lambda: turn.run(None))
    return result


class LiveTurn:
    """A turn running on its own thread while the response streams what happens in it.

    It takes one of the server's turn slots at once — 429 before any byte is sent when none is free — and
    gives it back when the turn ends, whether or not the client is still reading (a turn whose client left
    runs to its end, and is stored where it would have been). Iterating gives ``(kind, data)``: each event of
    the turn but its ``done``, then ``("done", DOC)`` with what ``run`` returned (once stored), or
    ``("error", ERROR_BODY)`` for a turn that failed (nothing of it is stored).
    """

    def __init__(self, state: ServerState, run: Callable[[OnEvent], dict[str, Any]], request_id: str) -> None:
        take_slot(state.agent_turn_slots, _busy(state))
        self._events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._request_id = request_id
        try:
            threading.Thread(target=self._run, args=(state, run), name="cristal-agent-turn", daemon=True).start()
        except BaseException:
            state.agent_turn_slots.release()
            raise

    def _run(self, state: ServerState, run: Callable[[OnEvent], dict[str, Any]]) -> None:
        from cristal.agents.runtime import TurnDone, TurnEvent, TurnStopped

        def on_event(event: TurnEvent) -> None:
            if not isinstance(event, TurnDone):  # ``done`` goes out once the turn is stored
                self._events.put((event.kind, event.as_dict()))

        try:
            self._events.put(("done", run(on_event)))
        except TurnStopped as exc:
            self._events.put(("error", error_body("turn_stopped", exc.message)))
        except CristalError as exc:
            self._events.put(("error", error_body(classify(exc)[1], exc.message)))
        except Exception as exc:  # the stream must end with an error event, never hang
            log.error("agent turn failed (request id %s)", self._request_id, exc_info=exc)
            self._events.put(("error", error_body(
                "server_error", f"internal error; the server log has the details (request id {self._request_id})")))
        finally:
            state.agent_turn_slots.release()

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            kind, data = self._events.get()
            yield kind, data
            if kind in ("done", "error"):
                return


def server_sent_events(live: LiveTurn) -> StreamingResponse:
    """A live turn as ``text/event-stream``: ``event: KIND`` and ``data: JSON`` per event, ``done`` or ``error`` last."""
    def events() -> Iterator[str]:
        for kind, data in live:
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)


def wants_stream(request: Request, stream: bool) -> bool:
    """``stream: true`` in the body, or ``Accept: text/event-stream``."""
    return stream or "text/event-stream" in request.headers.get("accept", "")


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
