"""Errors as HTTP: every failure is ``{"error": {"type", "message"}}`` with a fitting status.

The body has the same shape as the OpenAI API's errors (``error.message``),
so OpenAI clients pointed at Cristal show Cristal's one-line messages. A
response never carries a traceback: an unexpected exception is logged on the
server with its request id and answered with a generic 500 naming that id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from cristal.errors import (
    AccessDenied,
    AlreadyExists,
    BudgetExceeded,
    CristalError,
    DatabaseError,
    InvalidInput,
    LLMError,
    NotFound,
)
from cristal.server.envelope import SECURITY_HEADERS

log = logging.getLogger("cristal.server")

# Most specific first: BudgetExceeded is an LLMError.
_STATUS: tuple[tuple[type[CristalError], int, str], ...] = (
    (InvalidInput, 400, "invalid_request"),
    (NotFound, 404, "not_found"),
    (AccessDenied, 403, "access_denied"),
    (AlreadyExists, 409, "already_exists"),
    (BudgetExceeded, 429, "budget_exceeded"),
    (LLMError, 502, "model_error"),
    (DatabaseError, 503, "database_unavailable"),
)

_HTTP_TYPES = {400: "invalid_request", 401: "unauthorized", 403: "access_denied", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 429: "rate_limited", 501: "not_implemented"}


class ApiError(Exception):
    """A refusal the HTTP layer itself decides (missing key, body too large, unknown model)."""

    def __init__(self, status: int, message: str, type_: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())
        self.type = type_ or _HTTP_TYPES.get(status, "error")
        self.headers = headers


def error_body(type_: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": type_, "message": " ".join(str(message).split())}}


def error_response(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(type_, message), status_code=status, headers=headers)


def classify(exc: CristalError) -> tuple[int, str]:
    """The HTTP status and error type of a Cristal error."""
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            return status, type_
    return 500, "server_error"


def _validation_message(exc: RequestValidationError) -> str:
    """Pydantic's list of problems as one line naming the first one."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    if not loc and tuple(first.get("loc", ())) == ("body",):
        return "the request body must be a JSON object (Content-Type: application/json)"
    where = ".".join(loc)
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        msg = "field required"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path.

    Starlette's 405 names only the methods of the first route with the path
    (GET of ``/api/v1/search``, not its POST, which is another route). Asking
    each route whether it would take the request with each method relies on
    nothing but the routes' public ``matches``.
    """
    allowed = [m for m in _METHODS
               if any(route.matches({**request.scope, "method": m})[0] is Match.FULL for route in request.app.routes)]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI, on_not_found: Callable[[Request, CristalError], None] | None = None) -> None:
    """Register the handlers that turn every exception into the one JSON error shape.

    ``on_not_found`` is told (in a worker thread) about every ``NotFound`` a
    route raises, before the 404 is answered; the server records those of
    authenticated callers in the audit trail.
    """

    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message, exc.headers)

    async def on_cristal_error(request: Request, exc: CristalError) -> JSONResponse:
        status, type_ = classify(exc)
        if isinstance(exc, NotFound) and on_not_found is not None:
            await run_in_threadpool(on_not_found, request, exc)
        return error_response(status, type_, exc.message)

    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # 400, not FastAPI's 422: the same status as every other bad input.
        return error_response(400, "invalid_request", _validation_message(exc))

    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail or "request failed"
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, _HTTP_TYPES.get(exc.status_code, "error"), message, headers or None)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        log.error("request %s %s failed (request id %s)", request.method, request.url.path, request_id, exc_info=exc)
        # This handler runs outside the envelope middleware (Starlette's outermost layer), so it adds its headers itself.
        return error_response(500, "server_error", f"internal error; the server log has the details (request id {request_id})",
                              {**SECURITY_HEADERS, "X-Request-ID": str(request_id)})

    # Starlette types a handler's exception as plain Exception; each of these takes the subclass it is registered for.
    app.add_exception_handler(ApiError, on_api_error)  # type: ignore[arg-type]  # handler typed for its subclass
    app.add_exception_handler(CristalError, on_cristal_error)  # type: ignore[arg-type]  # handler typed for its subclass
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]  # handler typed for its subclass
    app.add_exception_handler(HTTPException, on_http)  # type: ignore[arg-type]  # handler typed for its subclass
    app.add_exception_handler(Exception, on_unexpected)
