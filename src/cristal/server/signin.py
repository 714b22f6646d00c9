"""Web sign-in with the organization's OpenID Connect provider: ``/auth/login``, ``/auth/callback``, ``/auth/logout``.

``GET /auth/login?org=SLUG`` sends the browser to the provider (303) with a
short-lived sign-in cookie; ``GET /auth/callback`` takes the provider's
answer, and on success sets the session cookie and sends the browser to ``/``.
Both cookies are ``Secure``, ``HttpOnly``, ``SameSite=Lax`` and ``__Host-``
prefixed. Lax, not Strict: the provider's redirect back is a cross-site
navigation, and the sign-in cookie must come with it; state-changing requests
are protected by the CSRF token instead (``auth.py``). ``POST /auth/logout``
(with the CSRF token) ends the session. The protocol is
``identity/signin.py``; a refused sign-in is recorded in the audit trail of
the organization it was for and answered with the JSON error body.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from cristal.errors import AccessDenied
from cristal.identity import signin
from cristal.identity.sessions import end_session, principal_from_session
from cristal.server.auth import SESSION_COOKIE, Caller, current_caller
from cristal.server.errors import ApiError
from cristal.server.state import state_of

router = APIRouter(tags=["sign-in"])

SIGNIN_COOKIE = "__Host-cristal-signin"
CALLBACK_PATH = "/auth/callback"


def redirect_uri(request: Request) -> str:
    """Where the provider sends the browser back: ``CRISTAL_PUBLIC_URL`` (or this request's own base URL) + the callback."""
    base = state_of(request).settings.public_url or str(request.base_url).rstrip("/")
    return base + CALLBACK_PATH


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax")


@router.get("/auth/login", include_in_schema=False)
def login(request: Request, org: str = Query(..., min_length=1, max_length=63)) -> RedirectResponse:
    """Start signing in to ``org`` with its provider."""
    state = state_of(request)
    try:
        start = signin.begin(state.db, state.settings, org, redirect_uri(request), state.oidc_documents)
    except signin.ProviderUnavailable as exc:
        raise ApiError(502, exc.message, type_="provider_unavailable") from None
    except signin.SignInRefused as exc:
        raise ApiError(404, exc.message, type_="not_found") from None
    response = RedirectResponse(start.url, status_code=303)
    _cookie(response, SIGNIN_COOKIE, start.binding, int(state.settings.signin_minutes * 60))
    return response


@router.get(CALLBACK_PATH, include_in_schema=False)
def callback(request: Request, state: str = Query("", max_length=200), code: str | None = Query(None, max_length=2000),
             error: str | None = Query(None, max_length=200)) -> RedirectResponse:
    """The provider's answer: a session and the web app on success, the JSON error body (401) otherwise."""
    server = state_of(request)
    request_id = getattr(request.state, "request_id", "")
    try:
        signed_in = signin.finish(server.db, server.settings, state=state, code=code, error=error,
                                  binding=request.cookies.get(SIGNIN_COOKIE), documents=server.oidc_documents)
    except signin.SignInRefused as exc:
        server.refusals.failed_signin(request, exc, request_id)
        # The sign-in cookie is spent either way (its state is gone): the browser forgets it.
        headers = {"Set-Cookie": f"{SIGNIN_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=lax"}
        if isinstance(exc, signin.ProviderUnavailable):
            raise ApiError(502, exc.message, type_="provider_unavailable", headers=headers) from None
        raise ApiError(401, exc.message, type_="signin_failed", headers=headers) from None
    _end_replaced_session(request)
    response = RedirectResponse("/", status_code=303)
    _cookie(response, SESSION_COOKIE, signed_in.token, int(server.settings.session_hours * 3600))
    response.delete_cookie(SIGNIN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _end_replaced_session(request: Request) -> None:
    """A browser that signs in again drops its old session cookie: that session ends too, rather than lingering."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    server = state_of(request)
    try:
        with server.db.session() as session:
            end_session(session, principal_from_session(session, token), token, details={"replaced": True})
    except AccessDenied:
        return  # already ended or expired


@router.post("/auth/logout", status_code=204, include_in_schema=False)
def logout(request: Request, caller: Caller = Depends(current_caller)) -> Response:
    """Sign out: the session ends now (the cookie alone would be forgotten by this browser only)."""
    if caller.session_token is None:
        raise ApiError(400, "not signed in with a session: an API key is revoked with `cristal apikey revoke`")
    server = state_of(request)
    with server.db.session() as session:
        end_session(session, caller.principal, caller.session_token, details={"source": request.client.host
                                                                              if request.client else "unknown"})
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response
