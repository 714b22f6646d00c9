"""Browser sessions of the web app: made at sign-in, a random token in a cookie, stored only as its SHA-256.

A session resolves to the same ``Principal`` an API key does (``principal_for``
with the user's current groups), so everything a signed-in browser does is
decided by ``authorize`` like any other call. A session ends at its expiry, at
sign-out, or with its user or organization (the rows cascade).

The CSRF token of a session is derived from its token (an HMAC), so it needs
no storage: the page reads it from ``GET /api/v1/me`` and sends it as a header
with every state-changing request; a page of another site can neither read it
nor the cookie it is derived from.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cristal.db.schema import Organization, User, WebSession, utcnow
from cristal.errors import AccessDenied
from cristal.identity.authorize import require
from cristal.identity.directory import principal_for
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

TOKEN_PREFIX = "crs_"


def token_hash(token: str) -> str:
    """SHA-256 of a random token: a fast hash is enough for 256 random bits (no password stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token that goes with the session ``token``."""
    return hmac.new(token.encode(), b"cristal csrf", hashlib.sha256).hexdigest()


def csrf_matches(token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(token), sent or "")


def session_resource(org: Organization | None, row: WebSession) -> Resource:
    org_id = org.id if org is not None else row.org_id
    return Resource("session", org_id, str(row.id), owner_user_id=row.user_id, org_slug=org.slug if org else None)


def create_session(session: Session, principal: Principal, *, issuer: str, subject: str, lifetime: timedelta,
                   details: dict | None = None) -> tuple[str, datetime]:
    """A new session for ``principal`` (audited as ``session.create``); returns the cookie's token and its expiry."""
    assert principal.org_id is not None and principal.user_id is not None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(token_hash=token_hash(token), org_id=principal.org_id, user_id=principal.user_id, issuer=issuer,
                     subject=subject[:255], created_at=now, expires_at=now + lifetime)
    session.add(row)
    session.flush()
    org = session.get(Organization, principal.org_id)
    require(session, principal, "session.create", session_resource(org, row),
            details={"issuer": issuer, "subject": subject[:255], **(details or {})})
    return token, row.expires_at


def _live_row(session: Session, token: str) -> WebSession:
    if not token.startswith(TOKEN_PREFIX):
        raise AccessDenied("not signed in")
    row = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        raise AccessDenied("your session has ended: sign in again")
    if row.expires_at <= utcnow():
        raise AccessDenied("your session has expired: sign in again")
    return row


def principal_from_session(session: Session, token: str) -> Principal:
    """The signed-in user, with their groups as of now; ``AccessDenied`` for an unknown, ended or expired session."""
    row = _live_row(session, token)
    org = session.get(Organization, row.org_id)
    user = session.get(User, row.user_id)
    assert org is not None and user is not None  # sessions cascade with their owners
    return principal_for(org, user)


def end_session(session: Session, principal: Principal, token: str, *, details: dict | None = None) -> None:
    """Sign out: the session stops working at once (audited as ``session.revoke``)."""
    row = _live_row(session, token)
    org = session.get(Organization, row.org_id)
    require(session, principal, "session.revoke", session_resource(org, row), details=details)
    row.revoked_at = utcnow()
    session.flush()


def end_org_sessions(session: Session, org_id: int) -> int:
    """End every live session of an organization (its provider was replaced or removed); how many there were."""
    result = session.execute(update(WebSession).where(WebSession.org_id == org_id, WebSession.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
