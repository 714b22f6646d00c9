"""A scripted, OpenAI-compatible model server on loopback, for tests and benchmarks.

The server is real HTTP (``http.server`` in a background thread), so the code
under test goes through the official ``openai`` client, its retries, timeouts
and streaming parser, exactly as in production::

    with ScriptedModel([
        tool_call("search", {"query": "expense policy"}),
        http_status(429),                     # the client retries this ...
        text("Expenses over $100 need approval."),  # ... and gets this
    ]) as model:
        settings = Settings(llm_base_url=model.base_url, llm_model="scripted")
        ...
        assert model.chat_requests[1].json["messages"][-1]["role"] == "tool"

Every ``POST /v1/chat/completions`` consumes the next step of the script. A
step is a reply (``text``, ``tool_call``/``tool_calls``, ``json_reply``, or
simply a ``str``/``dict``), a fault (``http_status``, ``garbage``,
``malformed``, ``hang``) or a callable that receives the request's JSON and
returns any of those. ``default=`` answers once the script is exhausted;
without it the server answers HTTP 400 naming the problem.

``POST /v1/embeddings`` answers deterministic unit vectors derived from a hash
of each input (``fake_embedding``); ``embedding_script=`` can put faults or
callables in front of that. ``GET /v1/models`` lists ``models``.

Token usage is a deterministic count of whitespace-separated words
(``count_tokens``): prompt tokens over the text of every message, completion
tokens over the reply's text and tool calls' names and arguments.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

# ---------------------------------------------------------------------------
# Script steps


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call in a scripted reply; ``arguments`` as a ``str`` is sent verbatim (even if invalid JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """A successful chat completion.

    ``finish_reason`` defaults to ``tool_calls`` when there are tool calls and
    ``stop`` otherwise; ``usage=False`` leaves token usage out of the response
    (and out of the stream's final chunk), as some servers do.
    """

    content: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    finish_reason: str | None = None
    usage: bool = True

    @property
    def effective_finish_reason(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


@dataclass(frozen=True)
class Fault:
    """A failure the server produces for ``times`` consecutive requests.

    ``kind`` is ``"http"`` (an error status with an OpenAI-style error body),
    ``"raw"`` (any status and body, e.g. a 200 that is not JSON) or ``"hang"``
    (no answer for ``seconds``, then HTTP 504 if the client is still there).
    """

    kind: Literal["http", "raw", "hang"]
    times: int = 1
    status: int = 500
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0


ReplyLike = str | dict | BaseModel | Reply | Fault
Step = ReplyLike | Callable[[dict[str, Any]], ReplyLike]
# A step of the embeddings script: a fault, or a callable returning the vectors (``None``: the default vectors).
EmbeddingStep = Fault | Callable[[dict[str, Any]], list[list[float]] | None]
_S = TypeVar("_S")


def text(content: str, *, finish_reason: str | None = None, usage: bool = True) -> Reply:
    """A plain text answer."""
    return Reply(content=content, finish_reason=finish_reason, usage=usage)


def tool_call(name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None, content: str | None = None) -> Reply:
    """An answer that calls one tool (optionally with some text alongside)."""
    return Reply(content=content, tool_calls=(ToolCallSpec(name, arguments if arguments is not None else {}, id),))


def tool_calls(*calls: ToolCallSpec | tuple[str, dict[str, Any] | str], content: str | None = None) -> Reply:
    """An answer that calls several tools at once: ``tool_calls(("a", {...}), ("b", {...}))``."""
    specs = tuple(c if isinstance(c, ToolCallSpec) else ToolCallSpec(c[0], c[1]) for c in calls)
    return Reply(content=content, tool_calls=specs)


def json_reply(value: dict | list | BaseModel, **kwargs: Any) -> Reply:
    """A text answer whose content is ``value`` serialised as JSON (for structured output)."""
    if isinstance(value, BaseModel):
        return text(value.model_dump_json(), **kwargs)
    return text(json.dumps(value, ensure_ascii=False), **kwargs)


def http_status(status: int, *, times: int = 1, message: str | None = None, retry_after: float | None = 0.001) -> Fault:
    """An HTTP error ``times`` in a row.

    A ``Retry-After-Ms`` header (default 1 ms) is sent with it because the
    ``openai`` client honours it, which keeps retry tests fast; pass
    ``retry_after=None`` to see the client's own exponential backoff.
    """
    body = json.dumps({"error": {"message": message or f"scripted HTTP {status}", "type": "scripted_error", "code": status}})
    headers = () if retry_after is None else (("retry-after-ms", str(max(1, round(retry_after * 1000)))),)
    return Fault("http", times=times, status=status, body=body.encode(), headers=headers)


def garbage(*, times: int = 1, body: str = "<html><body>502 Bad Gateway, but with a 200</body></html>",
            content_type: str = "text/html") -> Fault:
    """HTTP 200 with a body that is not JSON."""
    return Fault("raw", times=times, status=200, body=body.encode(), content_type=content_type)


def malformed(*, times: int = 1, document: dict | None = None) -> Fault:
    """HTTP 200 with JSON that lacks the fields of a completion (default: no ``choices``)."""
    doc = document if document is not None else {"id": "chatcmpl-malformed", "object": "chat.completion"}
    return Fault("raw", times=times, status=200, body=json.dumps(doc).encode())


def hang(seconds: float = 30.0, *, times: int = 1) -> Fault:
    """No answer for ``seconds`` (the server's shutdown cuts it short)."""
    return Fault("hang", times=times, seconds=seconds)


# ---------------------------------------------------------------------------
# Deterministic usage and embeddings


def count_tokens(value: str | None) -> int:
    """The scripted server's token count: whitespace-separated words."""
    return len(value.split()) if value else 0


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: only text parts count
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    parts = [content or ""]
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        parts += [fn.get("name", ""), fn.get("arguments", "")]
    return " ".join(str(p) for p in parts)


def prompt_tokens(messages: Iterable[object]) -> int:
    """Prompt tokens as the scripted server counts them."""
    return sum(count_tokens(_message_text(m)) for m in messages if isinstance(m, dict))


def completion_tokens(reply: Reply) -> int:
    """Completion tokens of ``reply`` as the scripted server counts them."""
    return count_tokens(reply.content) + sum(count_tokens(c.name) + count_tokens(c.arguments_json) for c in reply.tool_calls)


def fake_embedding(value: str, dimension: int = 8) -> list[float]:
    """A unit vector derived from SHA-256 of ``value``: same text, same vector, on every machine."""
    raw = b"".join(hashlib.sha256(f"{i}:{value}".encode()).digest() for i in range(math.ceil(dimension * 4 / 32)))
    ints = struct.unpack(f"<{dimension}I", raw[: dimension * 4])
    vector = [i / 2**31 - 1.0 for i in ints]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


# ---------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.json or {}).get("messages") or []) if isinstance(self.json, dict) else []


# ---------------------------------------------------------------------------
# The script: a queue of steps, shared by the handler threads


@dataclass
class _Queued(Generic[_S]):
    step: _S
    left: int  # answers this step still gives (a Fault's ``times``)


class _Script(Generic[_S]):
    def __init__(self, steps: Iterable[_S], default: _S | None) -> None:
        self._steps: deque[_Queued[_S]] = deque(_Queued(step, _times(step)) for step in steps)
        self._default = default
        self._lock = threading.Lock()
        self.answered = 0

    def push(self, steps: Iterable[_S]) -> None:
        with self._lock:
            self._steps.extend(_Queued(step, _times(step)) for step in steps)

    def clear(self) -> None:
        with self._lock:
            self._steps.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(queued.left for queued in self._steps)

    def next(self) -> _S | None:
        """The next step, or ``None`` when exhausted and there is no default."""
        with self._lock:
            self.answered += 1
            if not self._steps:
                return self._default
            head = self._steps[0]
            head.left -= 1
            if head.left <= 0:
                self._steps.popleft()
            return head.step


def _times(step: object) -> int:
    return step.times if isinstance(step, Fault) else 1


def _as_reply(value: ReplyLike) -> Reply | Fault:
    if isinstance(value, (Reply, Fault)):
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, (dict, BaseModel)):
        return json_reply(value)
    raise TypeError(f"a scripted step must be a reply, a fault, a str, a dict or a callable, not {type(value).__name__}")


# ---------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must never keep the test process alive
    model: ScriptedModel

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a stream abandoned, a retry after an error answer) is what real endpoints see
        # too; the base class would print its traceback into the stderr of the process under test.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as production endpoints do; every
    # response therefore has a Content-Length or is chunked.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's
        # algorithm meets delayed ACKs and every response waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # `format`: the base class's parameter name
        pass  # tests read ``requests``, not a log on stderr

    # -- plumbing

    def _record(self) -> RecordedRequest:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        request = RecordedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in self.headers.items()},
            json=document,
            body=body,
        )
        self.server.model._record(request)
        return request

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document, ensure_ascii=False).encode())

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "scripted_error", "code": status}})

    def _authorized(self, request: RecordedRequest) -> bool:
        key = self.server.model.api_key
        if key is None or request.headers.get("authorization") == f"Bearer {key}":
            return True
        self._error(401, "scripted model: invalid API key")
        return False

    def _route(self, request: RecordedRequest) -> str:
        path = request.path.rstrip("/")
        return path[3:] if path.startswith("/v1/") else path

    def _handle(self) -> None:
        try:
            request = self._record()
            if not self._authorized(request):
                return
            route = (request.method, self._route(request))
            if route == ("GET", "/models"):
                models = [{"id": m, "object": "model", "created": 0, "owned_by": "cristal-testing"} for m in self.server.model.models]
                self._send_json(200, {"object": "list", "data": models})
            elif route == ("POST", "/chat/completions"):
                self._chat(request)
            elif route == ("POST", "/embeddings"):
                self._embeddings(request)
            else:
                self._error(404, f"scripted model: no route {request.method} {request.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout); nothing to answer

    do_GET = _handle
    do_POST = _handle

    # -- faults

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "hang":
            self.server.model._stopping.wait(fault.seconds)
            self.close_connection = True
            self._error(504, f"scripted model: hung for {fault.seconds}s")
        else:
            self._send(fault.status, fault.body, fault.content_type, fault.headers)

    # -- chat

    def _chat(self, request: RecordedRequest) -> None:
        body = request.json if isinstance(request.json, dict) else {}
        step = self.server.model._script.next()
        if step is None:
            answered = self.server.model._script.answered - 1
            self._error(400, f"scripted model: script exhausted after {answered} chat requests; add steps or pass default=")
            return
        try:
            answer = _as_reply(step(body) if callable(step) else step)
        except Exception as exc:  # noqa: BLE001 - a broken test callable must surface in the test, not kill the thread
            self._error(400, f"scripted model: the scripted callable raised {type(exc).__name__}: {exc}")
            return
        if isinstance(answer, Fault):
            self._fault(answer)
            return
        model = str(body.get("model") or self.server.model.models[0])
        usage = {
            "prompt_tokens": prompt_tokens(body.get("messages") or []),
            "completion_tokens": completion_tokens(answer),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = f"chatcmpl-scripted-{next(self.server.model._ids)}"
        if body.get("stream"):
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _stream_chunks(answer, completion_id, model, usage if (wants_usage and answer.usage) else None)
            self._send_sse(chunks)
        else:
            self._send_json(200, _completion(answer, completion_id, model, usage if answer.usage else None))

    def _send_sse(self, chunks: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = itertools.chain((f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks), ["data: [DONE]\n\n"])
        for event in events:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    # -- embeddings

    def _embeddings(self, request: RecordedRequest) -> None:
        body = request.json if isinstance(request.json, dict) else {}
        raw_input = body.get("input")
        inputs = [raw_input] if isinstance(raw_input, str) else list(raw_input or [])
        if not inputs or not all(isinstance(i, str) for i in inputs):
            self._error(400, "scripted model: 'input' must be a string or a list of strings")
            return
        step = self.server.model._next_embedding_step()
        vectors: list[list[float]] | None = None
        if isinstance(step, Fault):
            self._fault(step)
            return
        if callable(step):
            vectors = step(body)
        if vectors is None:
            dimension = int(body.get("dimensions") or self.server.model.dimension)
            vectors = [fake_embedding(i, dimension) for i in inputs]
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": n, "embedding": _b64_floats(v) if as_base64 else v}
            for n, v in enumerate(vectors)
        ]
        tokens = sum(count_tokens(i) for i in inputs)
        self._send_json(200, {
            "object": "list",
            "data": data,
            "model": body.get("model") or self.server.model.models[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })


def _b64_floats(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _tool_call_id(n: int, spec: ToolCallSpec) -> str:
    return spec.id or f"call_{n}_{spec.name}"


def _completion(reply: Reply, completion_id: str, model: str, usage: dict | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": _tool_call_id(n, c), "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for n, c in enumerate(reply.tool_calls)
        ]
    document: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.effective_finish_reason}],
    }
    if usage is not None:
        document["usage"] = usage
    return document


def _pieces(value: str, parts: int = 3) -> list[str]:
    size = max(1, math.ceil(len(value) / parts))
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def _stream_chunks(reply: Reply, completion_id: str, model: str, usage: dict | None) -> Iterator[dict[str, Any]]:
    """The chunks OpenAI sends for ``reply``: role, text word by word, tool calls in pieces, finish, usage."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    yield chunk({"role": "assistant", "content": ""})
    for word in re.findall(r"\s*\S+\s*", reply.content or ""):
        yield chunk({"content": word})
    for n, call in enumerate(reply.tool_calls):
        head = {"index": n, "id": _tool_call_id(n, call), "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        for piece in _pieces(call.arguments_json):
            yield chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
    yield chunk({}, reply.effective_finish_reason)
    if usage is not None:
        yield {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage}


# ---------------------------------------------------------------------------
# The server


class ScriptedModel:
    """An OpenAI-compatible server on ``127.0.0.1`` answering from a script.

    Use as a context manager (or ``start()``/``close()``); ``base_url`` ends
    in ``/v1`` as the ``openai`` client expects. ``requests`` lists what was
    received, in order. ``api_key``, when set, is required as a bearer token
    (anything else gets HTTP 401).
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        default: Step | None = None,
        embedding_script: Iterable[EmbeddingStep] = (),
        dimension: int = 8,
        models: Sequence[str] = ("scripted",),
        api_key: str | None = None,
    ) -> None:
        self._script: _Script[Step] = _Script(script, default)
        self._embedding_script: _Script[EmbeddingStep] = _Script(embedding_script, None)
        self.dimension = dimension
        self.models = tuple(models) or ("scripted",)
        self.api_key = api_key
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> ScriptedModel:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _Server(("127.0.0.1", 0), _Handler)
            self._httpd.model = self
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="scripted-model", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._stopping.set()  # releases hung handlers at once
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the scripted model is not running: use it as a context manager or call start()")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script

    def push(self, *steps: Step) -> None:
        """Append steps to the chat script (e.g. between turns of a test)."""
        self._script.push(steps)

    def clear(self) -> None:
        """Forget the steps not answered yet (a suite that reuses one model drops what a turn left over)."""
        self._script.clear()

    @property
    def remaining(self) -> int:
        """Chat requests the script still has answers for (not counting ``default``)."""
        return len(self._script)

    def _next_embedding_step(self) -> EmbeddingStep | None:
        return self._embedding_script.next()

    # -- recording

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]
