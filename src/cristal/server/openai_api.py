"""An OpenAI-compatible API (``/v1/chat/completions``, ``/v1/models``) in front of the LLM gateway.

Employees point any OpenAI client at Cristal with their Cristal API key as
the client's key. Each call goes through ``Gateway`` as that employee: the
organization's configured endpoint and model, its monthly budget, metering in
``llm_usage`` and an audit record — and the provider's key never leaves the
server. Only the models the organization offers may be named; the request's
other fields are passed on selectively (never headers or endpoint options).

Each agent the caller may use is also a model, ``agent:SLUG`` (or
``agent:SLUG@N`` for a pinned version): the request's earlier messages are the
history, its last user message the question, and the agent's tools run on the
server as the caller (``server.agents.agent_turn``). The answer is the
message's content; its citations are ``choices[0].message.citations``, its
``usage`` the turn's tokens over all its model calls (and ``cost_usd``), and
the rest of the turn (tool calls, tokens, cost) a top-level ``cristal``
object. With ``stream: true`` the chunks go out while the turn runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from cristal.db.schema import Organization
from cristal.errors import CristalError, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org
from cristal.models.endpoint import resolve_endpoint
from cristal.models.shapes import ChatResult
from cristal.server.agents import STREAM_HEADERS, TURN_STOPPED_STATUS, LiveTurn, agent_turn, run_in_slot
from cristal.server.auth import Caller, current_caller
from cristal.server.errors import ApiError, classify, error_body
from cristal.server.openapi import error_responses
from cristal.server.state import ServerState, state_of

router = APIRouter(tags=["openai"])

AGENT_PREFIX = "agent:"


class ChatBody(BaseModel):
    # Clients send many optional fields (max_tokens, top_p, user, ...); unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=2_000)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=256)
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    response_format: dict[str, Any] | None = None
    n: int | None = Field(None, ge=1, le=1)


def _offered_models(state: ServerState, caller: Caller, *, audited: bool) -> list[str]:
    """The chat model the caller's organization is configured for.

    Listing models is an ``org.read`` (audited); a chat call only checks its
    model name here, because the gateway authorizes and audits the call itself.
    """
    with state.db.session() as s:
        org = s.get(Organization, caller.principal.org_id)
        if org is None:
            raise NotFound(f"the organization of {caller.principal.label} no longer exists")
        if audited:
            require(s, caller.principal, "org.read", in_org(org, "llm-models"), request_id=caller.request_id)
        endpoint = resolve_endpoint(state.settings, org)
    return [endpoint.chat_model] if endpoint.chat_model else []


@router.get("/models")
def models(request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.agents import store

    state = state_of(request)
    offered = _offered_models(state, caller, audited=True)
    # The agents the caller may use and could ask now: those with a published version.
    agents = [AGENT_PREFIX + a["agent"] for a in store.list_agents(state.db, caller.org_slug, caller.email)
              if a["published_version"] is not None]
    return {"object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "cristal"} for m in offered + agents]}


def _check_messages(messages: list[dict[str, Any]]) -> None:
    for n, message in enumerate(messages):
        if message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise InvalidInput(f"messages.{n}.role: must be system, developer, user, assistant or tool")


def _completion_id(caller: Caller) -> str:
    return f"chatcmpl-{caller.request_id}"


def _usage(result: ChatResult) -> dict[str, int]:
    u = result.usage
    return {"prompt_tokens": u.tokens_in, "completion_tokens": u.tokens_out, "total_tokens": u.tokens_in + u.tokens_out}


def _tool_calls(result: ChatResult) -> list[dict[str, Any]]:
    return [call.as_openai() for call in result.tool_calls]


def _completion(caller: Caller, result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text if result.text or not result.tool_calls else None}
    if result.tool_calls:
        message["tool_calls"] = _tool_calls(result)
    return {
        "id": _completion_id(caller), "object": "chat.completion", "created": int(time.time()), "model": result.model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason or "stop"}],
        "usage": _usage(result),
    }


@router.post("/chat/completions", response_model=None, responses=error_responses(404, TURN_STOPPED_STATUS, 429, 502))
def chat_completions(body: ChatBody, request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse | StreamingResponse:
    state = state_of(request)
    if body.model.startswith(AGENT_PREFIX):
        return _agent_completion(state, caller, body)
    offered = _offered_models(state, caller, audited=False)
    if body.model not in offered:
        available = ", ".join(offered) or "none (the organization has no chat model configured)"
        raise ApiError(404, f"model {body.model!r} is not offered to organization {caller.org_slug!r}; available: {available}",
                       "model_not_found")
    _check_messages(body.messages)
    gateway = state.gateway()
    options: dict[str, Any] = {"tools": body.tools, "tool_choice": body.tool_choice, "model": body.model,
                               "temperature": body.temperature, "request_id": caller.request_id}
    if not body.stream:
        result = gateway.chat(caller.principal, body.messages, response_format=body.response_format, **options)
        return JSONResponse(_completion(caller, result))
    # Authorization, the budget and the upstream request happen here, so refusals are proper HTTP errors.
    stream = gateway.chat_stream(caller.principal, body.messages, **options)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    # The background close also covers a client gone before the first chunk (the generator then never runs);
    # closing twice is harmless, and a stream closed early is metered for what was received.
    return StreamingResponse(_sse(caller, body.model, stream, include_usage), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                             background=BackgroundTask(stream.close))


def _sse(caller: Caller, model: str, stream: Any, include_usage: bool) -> Iterator[str]:
    """The answer as OpenAI's chunks; an upstream failure mid-stream becomes an ``error`` event, then the end."""
    chunk = _chunker(caller, model)
    try:
        yield chunk({"role": "assistant", "content": ""})
        for delta in stream:
            yield chunk({"content": delta})
        result: ChatResult | None = stream.result
        if result is None:
            return  # closed before its end (the client left); metered as a partial answer
        if result.tool_calls:
            # The gateway hands tool calls over whole; each goes out as one complete delta.
            yield chunk({"tool_calls": [{"index": n, **call} for n, call in enumerate(_tool_calls(result))]})
        yield chunk({}, result.finish_reason or "stop")
        if include_usage:
            yield chunk(None, usage=_usage(result))
    except CristalError as exc:
        _status, type_ = classify(exc)
        yield f"data: {json.dumps(error_body(type_, exc.message), ensure_ascii=False)}\n\n"
    finally:
        # A client that disconnects closes this generator: the stream is then metered for what was received.
        stream.close()
    yield "data: [DONE]\n\n"


def _chunker(caller: Caller, model: str) -> Callable[..., str]:
    """``chunk(delta, finish, **extra)``: one SSE event of a ``chat.completion.chunk`` (``delta`` None: no choices)."""
    created = int(time.time())
    cid = _completion_id(caller)

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices, **extra}
        return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n"

    return chunk


def _text_of(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text") or "") for p in content)
    raise InvalidInput(f"{where}.content: an agent takes text (a string or text parts)")


def _agent_completion(state: ServerState, caller: Caller, body: ChatBody) -> JSONResponse | StreamingResponse:
    """``agent:SLUG[@N]``: one turn of the agent; the last message is the question, the others its history."""
    _check_messages(body.messages)
    if body.tools or body.tool_choice:
        raise InvalidInput("an agent runs its own tools on the server: send no tools or tool_choice with an agent: model")
    *history, last = body.messages
    where = f"messages.{len(body.messages) - 1}"
    if last.get("role") != "user":
        raise InvalidInput(f"{where}.role: the last message to an agent must be the user's question")
    turn = agent_turn(state, caller, body.model.removeprefix(AGENT_PREFIX), history, _text_of(last.get("content"), where))
    if body.stream:
        live = LiveTurn(state, lambda on_event: turn.run(on_event).as_dict(), caller.request_id)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        model = f"{AGENT_PREFIX}{turn.agent}@{turn.version}"
        return StreamingResponse(_agent_sse(caller, model, live, include_usage), media_type="text/event-stream",
                                 headers=STREAM_HEADERS)
    doc = run_in_slot(state, lambda: turn.run(None)).as_dict()
    # Nothing is stored over this API (the client sends the history), so no conversation id is given out.
    return JSONResponse({
        "id": _completion_id(caller), "object": "chat.completion", "created": int(time.time()),
        "model": f"{AGENT_PREFIX}{doc['agent']}@{doc['version']}",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": doc["answer"], "citations": doc["citations"]},
                     "finish_reason": "stop"}],
        "usage": doc["usage"], "cristal": _extra(doc),
    })


def _extra(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("agent", "version", "tool_calls", "tokens", "cost_usd", "usage")}


def _agent_sse(caller: Caller, model: str, live: LiveTurn, include_usage: bool) -> Iterator[str]:
    """A live agent turn as OpenAI's chunks, sent as it happens.

    The answer's text goes out as ``content`` deltas; tool calls (run on the server) and citations as chunks
    without choices that carry ``cristal.event`` (OpenAI clients skip them); the last chunk has
    ``finish_reason`` ``stop``, the citations and the ``cristal`` summary; then the usage chunk when
    ``stream_options.include_usage`` asks for it. A turn that fails ends with an ``error`` event.
    """
    chunk = _chunker(caller, model)
    yield chunk({"role": "assistant", "content": ""})
    for kind, data in live:
        if kind == "text":
            yield chunk({"content": data["text"]})
        elif kind == "done":
            yield chunk({"citations": data["citations"]}, "stop", cristal=_extra(data))
            if include_usage:
                yield chunk(None, usage=data["usage"])
        elif kind == "error":
            yield f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
        else:
            yield chunk(None, cristal={"event": kind, **data})
    yield "data: [DONE]\n\n"
