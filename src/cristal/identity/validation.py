"""Validation of the names people type: organization slugs, group names, e-mail addresses."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from cristal.errors import InvalidInput

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ROLES = ("admin", "member")


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug or ""):
        raise InvalidInput(
            f"invalid organization slug {slug!r}: use 2-63 lowercase letters, digits and hyphens"
        )
    return slug


def check_group(name: str) -> str:
    if not _GROUP.match(name or ""):
        raise InvalidInput(f"invalid group name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def check_email(email: str) -> str:
    """The normalised (lower-case) address, or ``InvalidInput``."""
    try:
        result = validate_email(email or "", check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid e-mail address {email!r}: {exc}") from None
    return result.normalized.lower()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role
