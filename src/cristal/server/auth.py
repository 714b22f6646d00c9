"""Who is calling: a Bearer API key, or the web app's session cookie, resolved to its user on every request.

There is no other way in: no org parameter, no operator. The key (or the
session, made when the person signed in with their organization's provider)
decides the organization, so a request can never reach another tenant's data
by naming it; group membership is read fresh for each request (a removal
applies to the next call). A request with an ``Authorization`` header is
judged by it alone; the cookie counts only without one.

A browser sends its cookies with requests other sites make it send, so a
state-changing request (anything but GET, HEAD and OPTIONS) made with the
session cookie must also carry the session's CSRF token in ``X-CSRF-Token``
(``GET /api/v1/me`` returns it to the page): another site can make the
browser send the cookie, never read the token. API-key requests need none: a
page of another site cannot make a browser send an ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from cristal.db import Database
from cristal.errors import AccessDenied, CristalError, InvalidInput
from cristal.identity.apikeys import principal_from_api_key
from cristal.identity.principal import Principal
from cristal.identity.sessions import csrf_matches, principal_from_session
from cristal.server.errors import ApiError
from cristal.server.state import state_of

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cristal"'}
# ``__Host-``: the browser keeps the cookie only if it is Secure, for path / and without a Domain (no subdomain sets it).
SESSION_COOKIE = "__Host-cristal-session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    """The authenticated employee and the request's id (carried into audit records)."""

    principal: Principal
    request_id: str
    session_token: str | None = None  # set when the caller came with the session cookie rather than an API key

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


def session_caller(request: Request, token: str) -> Caller:
    """The signed-in user of session ``token``; 401 for an ended or expired session, 403 for a missing or wrong CSRF
    token on a state-changing request."""
    state = state_of(request)
    try:
        with state.db.session() as session:
            principal = principal_from_session(session, token)
    except AccessDenied as exc:
        raise ApiError(401, exc.message) from None
    if request.method not in SAFE_METHODS and not csrf_matches(token, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header that GET /api/v1/me returns",
                       type_="csrf_failed")
    return Caller(principal, getattr(request.state, "request_id", ""), session_token=token)


def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request (a sync function, so it runs in the thread pool)."""
    state = state_of(request)
    request_id = getattr(request.state, "request_id", "")
    token = request.cookies.get(SESSION_COOKIE)
    if token and not request.headers.getlist("authorization"):
        caller = session_caller(request, token)
    else:
        principal = principal_for_key(state.db, bearer_token(request),
                                      lambda exc: state.refusals.failed_key(request, exc, request_id))
        caller = Caller(principal, request_id)
    request.state.caller = caller  # for the error handlers: a 404 for a known caller is recorded
    return caller
