"""API keys: created for one user, shown once, stored only as a SHA-256 hash.

A key looks like ``cri_<prefix>_<secret>``. The prefix finds the row; the
hash of the whole key is compared in constant time. Keys are random 256-bit
secrets, so a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.db.schema import ApiKey, Organization, User, utcnow
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug, principal_for, user_by_email
from cristal.identity.principal import Principal


@dataclass(frozen=True)
class ApiKeyInfo:
    prefix: str
    name: str
    owner: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def as_dict(self) -> dict:
        return {
            "prefix": self.prefix,
            "name": self.name,
            "owner": self.owner,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
        }


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _info(row: ApiKey, owner: str) -> ApiKeyInfo:
    return ApiKeyInfo(row.prefix, row.name, owner, row.created_at, row.last_used_at, row.revoked_at is not None)


def create_api_key(
    session: Session, actor: Principal, org_slug: str, email: str, name: str = "default"
) -> tuple[ApiKeyInfo, str]:
    """A new key for ``email``; returns its description and the secret (shown once)."""
    org = org_by_slug(session, org_slug)
    user = user_by_email(session, org, email)
    require(session, actor, "apikey.create", in_org(org, "apikey", name, owner_user_id=user.id), details={"owner": user.email})
    prefix = secrets.token_hex(6)
    key = f"cri_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(org_id=org.id, user_id=user.id, name=name[:100], prefix=prefix, key_hash=_hash(key))
    session.add(row)
    session.flush()
    return _info(row, user.email), key


def list_api_keys(session: Session, actor: Principal, org_slug: str, email: str) -> list[ApiKeyInfo]:
    org = org_by_slug(session, org_slug)
    user = user_by_email(session, org, email)
    require(session, actor, "apikey.list", in_org(org, "apikeys", user.email, owner_user_id=user.id))
    rows = session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    return [_info(r, user.email) for r in rows]


def revoke_api_key(session: Session, actor: Principal, org_slug: str, prefix: str) -> None:
    org = org_by_slug(session, org_slug)
    row = session.scalar(select(ApiKey).where(ApiKey.org_id == org.id, ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"unknown API key {prefix!r} in organization {org.slug!r}")
    require(session, actor, "apikey.revoke", in_org(org, "apikey", prefix, owner_user_id=row.user_id))
    row.revoked_at = utcnow()
    session.flush()


LAST_USED_PRECISION_SECONDS = 60


class ApiKeyRefused(AccessDenied):
    """A key that authenticates nobody, with the key it named by its prefix, if one exists (for the audit trail).

    The organization of that key is where a wrong secret or a revoked key
    should be reported: its admins can then see that someone holds, or is
    guessing at, one of their keys. ``prefix`` is ``None`` for a prefix that
    names no key, so text from the request never reaches the record.
    """

    def __init__(self, message: str, *, prefix: str | None = None, org_id: int | None = None,
                 org_slug: str | None = None) -> None:
        super().__init__(message)
        self.prefix, self.org_id, self.org_slug = prefix, org_id, org_slug


def principal_from_api_key(session: Session, key: str) -> Principal:
    """The user a key belongs to; ``InvalidInput`` for a malformed key, ``ApiKeyRefused`` for a wrong, unknown or revoked one."""
    parts = (key or "").split("_")
    if len(parts) < 3 or parts[0] != "cri":
        raise InvalidInput("malformed API key: expected cri_<prefix>_<secret>")
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None:
        raise ApiKeyRefused("invalid API key")
    org = session.get(Organization, row.org_id)
    org_slug = org.slug if org is not None else None
    if not hmac.compare_digest(row.key_hash, _hash(key)):
        raise ApiKeyRefused("invalid API key", prefix=row.prefix, org_id=row.org_id, org_slug=org_slug)
    if row.revoked_at is not None:
        raise ApiKeyRefused("this API key has been revoked", prefix=row.prefix, org_id=row.org_id, org_slug=org_slug)
    now = utcnow()
    # "Last used" is for people reviewing keys; minute precision spares a write per request.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= LAST_USED_PRECISION_SECONDS:
        row.last_used_at = now
    user = session.get(User, row.user_id)
    assert org is not None and user is not None  # rows cascade with their owners
    return principal_for(org, user)
