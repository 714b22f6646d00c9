"""What wraps every request: a request id, a cap on the body's size, and safe response headers.

Every response is ``Cache-Control: no-store`` unless its route says otherwise
(only the UI page, which holds no data, does): API answers carry company data
and must not stay in a browser's or a proxy's cache.

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which
buffers streams and costs a task per request), so streamed chat answers pass
through untouched.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024

# No page of Cristal is meant to be framed, sniffed or cached; the UI sets its own CSP and caching.
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
                    "cache-control": "no-store"}
_SECURITY_HEADERS = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def _too_large(limit: int) -> str:
    return f"request body larger than {limit // 1024} KB"


class Envelope:
    """Gives each request an id (``request.state.request_id``, ``X-Request-ID``) and refuses oversized bodies with 413."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            # Refused before a byte of the body is read.
            await _send_json(send, 413, {"error": {"type": "body_too_large", "message": _too_large(limit)}}, request_id)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body that lied by omission
                    raise HTTPException(413, _too_large(limit))
            return message

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _tagged(message.get("headers", []), request_id)}
            await send(message)

        await self.app(scope, limited_receive, tagged_send)


def _tagged(headers: Any, request_id: str) -> list[tuple[bytes, bytes]]:
    """``headers`` with the request id and each security header the response did not set itself."""
    existing = {k.lower() for k, _ in headers}
    extra = [(b"x-request-id", request_id.encode())] + [(k, v) for k, v in _SECURITY_HEADERS if k not in existing]
    return list(headers) + extra


async def _send_json(send: Send, status: int, document: Any, request_id: str) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": _tagged(headers, request_id)})
    await send({"type": "http.response.body", "body": body})
