"""The OpenAPI document as the server really answers: every error is 400/401/... with the one error body.

FastAPI documents a 422 with its own validation body on every route that
takes input, but Cristal answers bad input with 400 and ``{"error": {"type",
"message"}}`` (see ``errors.py``). The document is rewritten once, when first
asked for: 422 and FastAPI's validation schemas go, each operation lists the
error statuses it can answer with the real body, and the Bearer key every
route needs is declared. Route-specific statuses (429, 502, ...) are declared
on the routes themselves with ``error_responses``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

ERROR_SCHEMA = "ErrorBody"
SECURITY_SCHEME = "apiKey"

_DESCRIPTIONS = {
    400: "Bad input: an invalid body, parameter or header (also two Authorization headers)",
    401: "No API key, or a malformed, unknown or revoked one",
    403: "The caller may not do this",
    404: "Not found in the caller's organization",
    409: "Already exists",
    413: "The request body is larger than the server accepts",
    422: "The agent spent its turn's budget (steps, tokens, cost) without answering",
    429: "Too many at once, or the organization's model budget is spent",
    502: "The model endpoint failed or is not configured",
    503: "The database is unavailable",
}


class ErrorDetail(BaseModel):
    type: str = Field(description="A stable machine-readable kind, e.g. invalid_request, unauthorized, not_found")
    message: str = Field(description="One line for people; never a traceback")


class ErrorBody(BaseModel):
    """Every error the API answers (the shape of the OpenAI API's errors)."""

    error: ErrorDetail


def _response(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator: statuses that route answers beyond the common ones."""
    return {status: _response(status) for status in statuses}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's document in place: the real error statuses and body, the Bearer key; no 422."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = body
    components["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "A Cristal API key (cri_...), created with `cristal apikey create`; exactly one Authorization header"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            # FastAPI's own 422 (its validation body) goes; a 422 a route declares itself stays.
            if "HTTPValidationError" in str(responses.get("422", "")):
                responses.pop("422")
            # Every documented route authenticates its caller; the key decides the organization.
            operation["security"] = [{SECURITY_SCHEME: []}]
            common = [400, 401, 403] + ([404] if "{" in path else []) + ([413] if "requestBody" in operation else [])
            for status in common:
                responses.setdefault(str(status), _response(status))
            # The statuses in status order, so the document reads (and diffs) predictably.
            operation["responses"] = dict(sorted(responses.items()))
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/api/v1/openapi.json``) serve the rewritten document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # built once per app: the routes do not change while it serves
            app.openapi_schema = document_errors(get_openapi(title=app.title, version=app.version, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
