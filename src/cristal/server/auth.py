"""Who is calling: a Bearer API key, resolved to its user in its organization on every request.

There is no other way in: no cookie, no org parameter, no operator. The key
decides the organization, so a request can never reach another tenant's
data by naming it; group membership is read fresh for each request (a
removal applies to the next call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from cristal.db import Database
from cristal.errors import AccessDenied, CristalError, InvalidInput
from cristal.identity.apikeys import principal_from_api_key
from cristal.identity.principal import Principal
from cristal.server.errors import ApiError
from cristal.server.state import state_of

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cristal"'}


@dataclass(frozen=True)
class Caller:
    """The authenticated employee and the request's id (carried into audit records)."""

    principal: Principal
    request_id: str

    @property
    def email(self) -> str:
        assert self.principal.email is not None  # API keys belong to users, never to the installation
        return self.principal.email

    @property
    def org_slug(self) -> str:
        assert self.principal.org_slug is not None
        return self.principal.org_slug


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer TOKEN``; 401 when absent, 400 when the header comes twice.

    Two headers are refused rather than one picked: a proxy and the server
    could each pick a different one, and then disagree about who is calling.
    """
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise ApiError(400, f"{len(values)} Authorization headers: send exactly one")
    scheme, _, token = (values[0] if values else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send Authorization: Bearer cri_... (create one with `cristal apikey create`)",
                       headers=_CHALLENGE)
    return token.strip()


def principal_for_key(db: Database, token: str, on_refusal: Callable[[CristalError], None] | None = None) -> Principal:
    """The key's user; 401 for a malformed, unknown or revoked key (records the key's last use).

    ``on_refusal`` is told about a refused key before the 401 (the server records it in the audit trail).
    """
    try:
        with db.session() as session:
            return principal_from_api_key(session, token)
    except (InvalidInput, AccessDenied) as exc:
        if on_refusal is not None:
            on_refusal(exc)
        raise ApiError(401, exc.message, headers=_CHALLENGE) from None


def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request (a sync function, so it runs in the thread pool)."""
    state = state_of(request)
    request_id = getattr(request.state, "request_id", "")
    principal = principal_for_key(state.db, bearer_token(request),
                                  lambda exc: state.refusals.failed_key(request, exc, request_id))
    caller = Caller(principal, request_id)
    request.state.caller = caller  # for the error handlers: a 404 for a known caller is recorded
    return caller
