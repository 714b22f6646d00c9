"""The LLM gateway: the one way agents talk to a model.

Every call goes the same way:

1. a short transaction authorizes ``llm.call`` for the principal (audited),
   resolves the organization's endpoint and checks its monthly budget — a
   refusal is metered as ``refused`` and raised as ``BudgetExceeded``;
2. the model is called through the official ``openai`` client, which retries
   429, 5xx, timeouts and dropped connections with exponential backoff (no
   database transaction is open meanwhile);
3. a second short transaction meters the call (tokens, latency, estimated
   cost) as ``ok`` or ``error``.

Anything that goes wrong at the endpoint — unreachable, timing out, HTTP
errors, answers that are not a usable completion — surfaces as one-line
``LLMError``; a successful call returns plain dataclasses (``ChatResult``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import openai
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall
from pydantic import BaseModel, ValidationError

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Organization
from cristal.errors import BudgetExceeded, LLMError, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.models.call import Call
from cristal.models.endpoint import Kind, embedding_endpoint, resolve_endpoint
from cristal.models.failures import CALL_FAILURES, BadResponse, describe_failure
from cristal.models.metering import Status, budget_refusal, estimate_tokens, record_usage
from cristal.models.prices import PriceTable
from cristal.models.shapes import ChatResult, StructuredResult, ToolCall, Usage, parse_tool_call, schema_name
from cristal.models.stream import ChatStream

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class EmbeddingRoute:
    """Where an embedding call goes when it is not the organization's default: a URL, a model, a key variable."""

    base_url: str
    model: str
    api_key_env: str | None = None

R = TypeVar("R")

Messages = Sequence[dict[str, Any]]

# Inputs per embeddings request: below every common server's limit (OpenAI: 2048).
EMBED_BATCH = 256

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class Gateway:
    """Chat (with tools, streaming, structured output) and embeddings, authorized and metered.

    Thread-safe; one per process is enough. ``close()`` (or ``with``) releases
    the HTTP connections.
    """

    def __init__(self, settings: Settings, db: Database, *, prices: PriceTable | None = None) -> None:
        self.settings = settings
        self.db = db
        self.prices = prices or PriceTable(settings.prices)
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # ------------------------------------------------------------------
    # Public API

    def chat(
        self,
        principal: Principal,
        messages: Messages,
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        model: str | None = None,
        temperature: float | None = None,
        response_format: dict[str, Any] | None = None,
        request_id: str | None = None,
        lenient_tool_arguments: bool = False,
    ) -> ChatResult:
        """One chat completion. ``tool_choice`` is ``auto``/``none``/``required``, a tool's name, or the OpenAI dict.

        ``lenient_tool_arguments``: a tool call whose arguments are not a JSON object comes back with
        ``ToolCall.malformed`` set, instead of failing the call (an agent hands the problem back to the model).
        """
        call = self._begin(principal, "chat", model, request_id)
        params = _chat_params(call, messages, tools, tool_choice, temperature, response_format)
        parts, usage = self._run(call, lambda client: client.chat.completions.create(**params),
                                 lambda r: _chat_result(r, call, messages, lenient_tool_arguments))
        return parts.result(usage)

    def chat_stream(
        self,
        principal: Principal,
        messages: Messages,
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        model: str | None = None,
        temperature: float | None = None,
        request_id: str | None = None,
        lenient_tool_arguments: bool = False,
    ) -> ChatStream:
        """A streamed chat completion: iterate for text deltas, then read ``.result``.

        Authorization, the budget and the request itself (with its retries)
        happen here, so refusals and HTTP errors raise before iteration.
        ``lenient_tool_arguments`` as for ``chat``.
        """
        call = self._begin(principal, "chat", model, request_id)
        params = _chat_params(call, messages, tools, tool_choice, temperature, None)
        params |= {"stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        try:
            chunks = self._client(call).chat.completions.create(**params)
        except CALL_FAILURES as exc:
            raise self.meter_failure(call, exc, _ms_since(started)) from None
        return ChatStream(self, call, chunks, _prompt_estimate(messages), started, lenient=lenient_tool_arguments)

    @overload
    def structured(
        self, principal: Principal, messages: Messages, schema: type[M], *, model: str | None = None,
        temperature: float | None = None, request_id: str | None = None, name: str | None = None,
    ) -> M: ...

    @overload
    def structured(
        self, principal: Principal, messages: Messages, schema: dict[str, Any], *, model: str | None = None,
        temperature: float | None = None, request_id: str | None = None, name: str | None = None,
    ) -> Any: ...

    def structured(
        self, principal: Principal, messages: Messages, schema: type[BaseModel] | dict[str, Any], *,
        model: str | None = None, temperature: float | None = None, request_id: str | None = None, name: str | None = None,
    ) -> Any:
        """An answer that is JSON matching ``schema`` (a pydantic model, validated into an instance, or a JSON schema).

        ``structured_result`` is the same call that also says what it cost.
        """
        return self.structured_result(principal, messages, schema, model=model, temperature=temperature,
                                      request_id=request_id, name=name).value

    @overload
    def structured_result(
        self, principal: Principal, messages: Messages, schema: type[M], *, model: str | None = None,
        temperature: float | None = None, request_id: str | None = None, name: str | None = None,
    ) -> StructuredResult[M]: ...

    @overload
    def structured_result(
        self, principal: Principal, messages: Messages, schema: dict[str, Any], *, model: str | None = None,
        temperature: float | None = None, request_id: str | None = None, name: str | None = None,
    ) -> StructuredResult[Any]: ...

    def structured_result(
        self,
        principal: Principal,
        messages: Messages,
        schema: type[BaseModel] | dict[str, Any],
        *,
        model: str | None = None,
        temperature: float | None = None,
        request_id: str | None = None,
        name: str | None = None,
    ) -> StructuredResult[Any]:
        """The validated answer with the usage of every call it took.

        An answer that does not parse or validate gets one repair turn naming
        the problem; a second failure is an ``LLMError``.
        """
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            target, json_schema, title = schema, schema.model_json_schema(), schema.__name__
        else:
            target, json_schema, title = None, schema, str(schema.get("title", "result"))
        label = schema_name(name or title)
        response_format = {"type": "json_schema", "json_schema": {"name": label, "schema": json_schema}}
        history = list(messages)
        problem = ""
        usages: list[Usage] = []
        for _attempt in range(2):
            result = self.chat(
                principal, history, model=model, temperature=temperature, response_format=response_format, request_id=request_id
            )
            usages.append(result.usage)
            try:
                return StructuredResult(_validate_json(result.text, target), usages)
            except (ValueError, ValidationError) as exc:
                problem = _one_line_validation(exc)
            history += [
                result.assistant_message(),
                {"role": "user", "content": f"That answer is not valid: {problem}. Reply with only a JSON object matching the schema."},
            ]
        raise LLMError(f"the model did not answer valid JSON for {label} after 2 attempts: {problem}")

    def embed(
        self, principal: Principal, texts: Sequence[str], *, model: str | None = None, request_id: str | None = None,
        route: EmbeddingRoute | None = None, for_org: int | None = None,
    ) -> list[list[float]]:
        """One vector per text, in order (several metered requests for long lists).

        ``route`` sends them to that endpoint and model (a knowledge index's) instead of the organization's.
        ``for_org``: the texts are that organization's documents, embedded for its index as part of a sync:
        authorized as ``knowledge.embed`` (so the installation's scheduled sync may) and metered to it.
        """
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            call = self._begin(principal, "embedding", model, request_id, route, for_org)
            vectors += self._embed_batch(call, list(texts[start : start + EMBED_BATCH]))
        return vectors

    def _embed_batch(self, call: Call, batch: list[str]) -> list[list[float]]:
        # "float" explicitly: the client's default (base64) is not understood by every compatible server.
        params = {"model": call.model, "input": batch, "encoding_format": "float", **_headers(call)}
        vectors, _usage = self._run(call, lambda client: client.embeddings.create(**params), lambda r: _embedding_result(r, batch))
        return vectors

    # ------------------------------------------------------------------
    # The three steps of a call

    def _begin(self, principal: Principal, kind: Kind, model: str | None, request_id: str | None,
               route: EmbeddingRoute | None = None, for_org: int | None = None) -> Call:
        """Authorize, resolve the endpoint and check the budget, in one short transaction."""
        refusal = None
        org_id = principal.org_id if for_org is None else for_org
        with self.db.session() as session:
            org = session.get(Organization, org_id) if org_id is not None else None
            if org_id is not None and org is None:
                raise NotFound(f"the organization of {principal.label} no longer exists")
            endpoint = (resolve_endpoint(self.settings, org) if route is None
                        else embedding_endpoint(self.settings, org, route.base_url, route.api_key_env, route.model))
            wanted = endpoint.model_for(kind, model) or ""
            # The operator has no organization; ``require`` refuses it with the policy's reason.
            resource = in_org(org, "llm", wanted) if org is not None else Resource("llm", None, wanted)
            action = "llm.call" if for_org is None else "knowledge.embed"
            require(session, principal, action, resource, request_id=request_id, details={"kind": kind})
            assert org is not None  # only members of an organization get past ``llm.call``, admins past ``knowledge.embed``
            base_url, api_key, chosen = endpoint.require(kind, model)
            refusal = budget_refusal(session, org)
            if refusal:
                record_usage(
                    session, principal, org_id=org.id, kind=kind, model=chosen, status="refused", error=refusal, request_id=request_id
                )
        if refusal:
            raise BudgetExceeded(refusal)  # after the commit, so the refusal row stays
        return Call(principal, org.id, kind, chosen, base_url, api_key, request_id)

    def _run(self, call: Call, send: Callable[[openai.OpenAI], Any], parse: Callable[[Any], tuple[R, int, int, bool]]) -> tuple[R, Usage]:
        """Send, parse and meter a non-streaming call."""
        started = time.perf_counter()
        try:
            value, tokens_in, tokens_out, estimated = parse(send(self._client(call)))
        except CALL_FAILURES as exc:
            raise self.meter_failure(call, exc, _ms_since(started)) from None
        return value, self.meter(
            call, "ok", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=_ms_since(started), estimated=estimated
        )

    def meter(
        self,
        call: Call,
        status: Status,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        latency_ms: float = 0.0,
        estimated: bool = False,
        error: str | None = None,
    ) -> Usage:
        """Record one call's usage (tokens, latency, estimated cost) in ``llm_usage`` and return it."""
        cost = self.prices.cost(call.model, tokens_in, tokens_out)
        with self.db.session() as session:
            record_usage(
                session, call.principal, org_id=call.org_id, kind=call.kind, model=call.model, status=status,
                tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms, cost_usd=cost.usd,
                error=error, request_id=call.request_id,
            )
        return Usage(tokens_in, tokens_out, cost.usd, cost.priced, latency_ms, estimated)

    def meter_failure(self, call: Call, exc: BaseException, latency_ms: float, tokens_in: int = 0, tokens_out: int = 0) -> LLMError:
        """Record a failed call and return the one-line ``LLMError`` to raise."""
        error = describe_failure(
            exc, base_url=call.base_url, model=call.model, timeout=self.settings.llm_timeout_seconds, retries=self.settings.llm_max_retries
        )
        if isinstance(exc, BadResponse):
            tokens_in, tokens_out = max(tokens_in, exc.tokens_in), max(tokens_out, exc.tokens_out)
        self.meter(call, "error", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms, error=error.message)
        return error

    def _client(self, call: Call) -> openai.OpenAI:
        key = (call.base_url, call.api_key)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = openai.OpenAI(
                    base_url=call.base_url,
                    api_key=call.api_key,
                    timeout=self.settings.llm_timeout_seconds,
                    max_retries=self.settings.llm_max_retries,
                )
                self._clients[key] = client
            return client


# ----------------------------------------------------------------------
# Requests and responses


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _headers(call: Call) -> dict[str, Any]:
    # The request id travels to the endpoint so its logs can be matched with the audit trail.
    return {"extra_headers": {"X-Request-ID": call.request_id}} if call.request_id else {}


def _chat_params(
    call: Call,
    messages: Messages,
    tools: Sequence[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    temperature: float | None,
    response_format: dict[str, Any] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"model": call.model, "messages": list(messages), **_headers(call)}
    if tools:
        params["tools"] = list(tools)
    if tool_choice is not None:
        if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
            tool_choice = {"type": "function", "function": {"name": tool_choice}}
        params["tool_choice"] = tool_choice
    if temperature is not None:
        params["temperature"] = temperature
    if response_format is not None:
        params["response_format"] = response_format
    return params


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _prompt_estimate(messages: Iterable[dict[str, Any]]) -> int:
    return estimate_tokens(" ".join(_message_text(m) for m in messages))


@dataclass(frozen=True)
class _ChatParts:
    """A parsed completion waiting for its metered usage."""

    text: str
    tool_calls: list[ToolCall]
    model: str
    finish_reason: str | None
    request_id: str | None

    def result(self, usage: Usage) -> ChatResult:
        return ChatResult(self.text, self.tool_calls, usage, self.model, self.finish_reason, self.request_id)


def _snippet(value: Any) -> str:
    return repr(" ".join(str(value).split())[:80])


def _chat_result(response: Any, call: Call, messages: Messages, lenient: bool = False) -> tuple[_ChatParts, int, int, bool]:
    if not isinstance(response, ChatCompletion):
        raise BadResponse(f"the body is not a JSON chat completion: {_snippet(response)}")
    usage = response.usage
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    try:
        message = response.choices[0].message
        content = message.content or ""
        # Only function tools are offered; any other kind of call is one without a function name (BadResponse below).
        raw_calls = [
            (c.id, c.function.name, c.function.arguments) if isinstance(c, ChatCompletionMessageFunctionToolCall) else (c.id, None, None)
            for c in (message.tool_calls or [])
        ]
        finish_reason = response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError, KeyError):
        raise BadResponse("the completion has no choice with a message", tokens_in=tokens_in, tokens_out=tokens_out) from None
    if not isinstance(content, str):
        raise BadResponse("the message content is not text", tokens_in=tokens_in, tokens_out=tokens_out)
    try:
        calls = [parse_tool_call(*raw, lenient=lenient) for raw in raw_calls]
    except BadResponse as exc:  # the answer was paid for even if unusable
        raise BadResponse(str(exc), tokens_in=tokens_in, tokens_out=tokens_out) from None
    estimated = usage is None
    if estimated:
        tokens_in = _prompt_estimate(messages)
        tokens_out = estimate_tokens(content + "".join(c.name + json.dumps(c.arguments) for c in calls))
    parts = _ChatParts(content, calls, response.model or call.model, finish_reason, call.request_id)
    return parts, tokens_in, tokens_out, estimated


def _embedding_result(response: Any, batch: list[str]) -> tuple[list[list[float]], int, int, bool]:
    if not isinstance(response, CreateEmbeddingResponse):
        raise BadResponse(f"the body is not a JSON embeddings response: {_snippet(response)}")
    tokens_in = int(getattr(response.usage, "prompt_tokens", 0) or 0)
    try:
        items = sorted(response.data, key=lambda item: item.index or 0)
        vectors = [[float(x) for x in item.embedding] for item in items]
    except (AttributeError, TypeError, ValueError):
        raise BadResponse("the embeddings response has no list of float vectors", tokens_in=tokens_in) from None
    if len(vectors) != len(batch):
        raise BadResponse(f"{len(vectors)} vectors for {len(batch)} texts", tokens_in=tokens_in)
    if len({len(v) for v in vectors}) > 1 or not vectors[0]:
        raise BadResponse("the vectors are empty or of different lengths", tokens_in=tokens_in)
    estimated = response.usage is None
    if estimated:
        tokens_in = sum(estimate_tokens(t) for t in batch)
    return vectors, tokens_in, 0, estimated


def _validate_json(text: str, model: type[BaseModel] | None) -> Any:
    """The JSON in ``text`` (fences tolerated, as weaker models add them), validated into ``model`` if given."""
    fenced = _FENCE.match(text)
    raw = fenced.group(1) if fenced else text
    if model is not None:
        return model.model_validate_json(raw)
    return json.loads(raw)


def _one_line_validation(exc: ValueError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the object"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return f"not JSON ({exc})"
