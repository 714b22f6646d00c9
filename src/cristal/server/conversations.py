"""The caller's stored conversations over HTTP: ``/api/v1/conversations`` (list, search, show, rename, delete,
export), their attachments (``/api/v1/conversations/{id}/attachments``) and their turns (``POST
/api/v1/conversations`` starts one with an agent, ``POST /api/v1/conversations/{id}/messages`` goes on with one).

Every route is the caller's own business: the service (``agents.conversations``)
decides each read and change through ``authorize`` with the ``SELF`` rule and
audits it, so another employee's conversation — an admin's colleague's too —
or another organization's is a 404 like one that does not exist. A turn is
what ``cristal ask --conversation`` runs (``agents.ask.prepare``): everything
is decided before it runs, so refusals are proper HTTP errors, and it is
stored only once finished. With ``stream: true`` (or ``Accept:
text/event-stream``) the answer streams as server-sent events while the turn
runs (``server.agents.LiveTurn``).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cristal.errors import InvalidInput
from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.server.agents import TURN_STOPPED_STATUS, LiveTurn, run_in_slot, server_sent_events, wants_stream
from cristal.server.auth import Caller, current_caller
from cristal.server.openapi import error_responses
from cristal.server.state import state_of

router = APIRouter(tags=["conversations"])

TITLE_MAX = 200  # as agents.conversations.TITLE_MAX (not imported: that would load the agent runtime at start)


class AttachBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255, description="Its extension picks the parser (.pdf, .docx, "
                          ".html, .eml, .md, .txt)")
    content_base64: str = Field(min_length=1, description="The file's bytes, base64 (standard alphabet)")

    def data(self) -> bytes:
        """The file's bytes; ``InvalidInput`` (a 400) for content that is not base64."""
        try:
            return base64.b64decode(self.content_base64, validate=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            raise InvalidInput(f"content_base64 of {self.filename!r} is not valid base64") from None


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    stream: bool = False
    attachments: list[AttachBody] = Field(default_factory=list, description="Files to attach with this turn")


class StartBody(MessageBody):
    agent: str = Field(min_length=1, max_length=200, description="SLUG or SLUG@VERSION")


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=TITLE_MAX)


def _turn(request: Request, caller: Caller, ref: str, body: MessageBody,
          conversation_id: str | None) -> dict[str, Any] | StreamingResponse:
    from cristal.agents.ask import prepare

    state = state_of(request)
    files = [(a.filename, a.data()) for a in body.attachments]
    prepared = prepare(state.db, state.settings, caller.org_slug, caller.email, ref, body.message,
                       conversation_id=conversation_id, gateway=state.gateway(), attach=files)
    if wants_stream(request, body.stream):
        return server_sent_events(LiveTurn(state, prepared.run, caller.request_id))
    doc: dict[str, Any] = run_in_slot(state, prepared.run)
    return doc


_TURN_ERRORS = error_responses(TURN_STOPPED_STATUS, 429, 502)


@router.post("/conversations", response_model=None, responses={**_TURN_ERRORS, **error_responses(404)})
def start(body: StartBody, request: Request,
          caller: Caller = Depends(current_caller)) -> dict[str, Any] | StreamingResponse:
    """Start a conversation with an agent: its first turn, stored once it has finished."""
    return _turn(request, caller, body.agent, body, None)


@router.post("/conversations/{conversation_id}/messages", response_model=None, responses=_TURN_ERRORS)
def post_message(conversation_id: str, body: MessageBody, request: Request,
                 caller: Caller = Depends(current_caller)) -> dict[str, Any] | StreamingResponse:
    """The next turn of one of the caller's conversations, with the agent version it started with."""
    return _turn(request, caller, "", body, conversation_id)


@router.post("/conversations/{conversation_id}/attachments", responses=error_responses(404, 413))
def attach(conversation_id: str, body: AttachBody, request: Request,
           caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    """Attach a file to one of the caller's conversations: parsed to text, read by its agent in this conversation only."""
    from cristal.agents import conversations

    state = state_of(request)
    doc: dict[str, Any] = conversations.attach(state.db, state.settings, caller.org_slug, caller.email,
                                               conversation_id, body.filename, body.data())
    return doc


@router.get("/conversations/{conversation_id}/attachments")
def list_attachments(conversation_id: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    """The files attached to one of the caller's conversations (without their text)."""
    from cristal.agents import conversations

    return {"attachments": conversations.attachments_of(state_of(request).db, caller.org_slug, caller.email,
                                                        conversation_id)}


@router.get("/conversations")
def list_conversations(request: Request, caller: Caller = Depends(current_caller),
                       q: str | None = Query(None, max_length=200, description="Words in the title, questions or answers"),
                       agent: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    from cristal.agents import conversations

    return {"conversations": conversations.list_conversations(state_of(request).db, caller.org_slug, caller.email,
                                                              agent, q)}


@router.get("/conversations/{conversation_id}")
def show(conversation_id: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import conversations

    doc: dict[str, Any] = conversations.show(state_of(request).db, caller.org_slug, caller.email, conversation_id)
    return doc


@router.patch("/conversations/{conversation_id}")
def rename(conversation_id: str, body: RenameBody, request: Request,
           caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import conversations

    doc: dict[str, Any] = conversations.rename(state_of(request).db, caller.org_slug, caller.email, conversation_id,
                                               body.title)
    return doc


@router.delete("/conversations/{conversation_id}")
def delete(conversation_id: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import conversations

    doc: dict[str, Any] = conversations.delete_conversation(state_of(request).db, caller.org_slug, caller.email,
                                                            conversation_id)
    return doc


@router.get("/conversations/{conversation_id}/export", response_model=None)
def export(conversation_id: str, request: Request, caller: Caller = Depends(current_caller),
           format: Literal["json", "markdown"] = "json") -> dict[str, Any] | PlainTextResponse:
    """The conversation as the ``cristal.conversation/1`` JSON document, or as Markdown (``format=markdown``)."""
    from cristal.agents import conversations

    doc: dict[str, Any] = conversations.export(state_of(request).db, caller.org_slug, caller.email, conversation_id)
    if format == "json":
        return doc
    return PlainTextResponse(conversations.as_markdown(doc), media_type="text/markdown; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="conversation-{doc["conversation_id"]}.md"'})
