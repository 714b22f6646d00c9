"""Looking up organizations and users by the names people use, and building principals."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cristal.db.schema import Organization, User
from cristal.errors import NotFound
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.identity.validation import check_email


def org_by_slug(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise NotFound(f"unknown organization {slug!r}")
    return org


def user_by_email(session: Session, org: Organization, email: str) -> User:
    address = check_email(email)
    user = session.scalar(
        select(User).options(selectinload(User.groups)).where(User.org_id == org.id, User.email == address)
    )
    if user is None:
        raise NotFound(f"unknown user {address!r} in organization {org.slug!r}")
    return user


def principal_for(org: Organization, user: User) -> Principal:
    return Principal(
        kind="user",
        name=user.email,
        org_id=org.id,
        org_slug=org.slug,
        user_id=user.id,
        role=user.role,
        groups=frozenset(g.name for g in user.groups),
    )


def resolve_principal(session: Session, org_slug: str, email: str) -> Principal:
    """The employee ``email`` of ``org_slug``, with their current groups.

    Groups are read fresh on every call, so a membership change takes effect
    on the very next request.
    """
    org = org_by_slug(session, org_slug)
    return principal_for(org, user_by_email(session, org, email))


def member(session: Session, org_slug: str, email: str) -> tuple[Organization, Principal]:
    """The organization and the employee acting in it (``NotFound`` for either)."""
    principal = resolve_principal(session, org_slug, email)
    return org_by_slug(session, org_slug), principal


def in_org(
    org: Organization, kind: str, id: str = "", *, acl: tuple[str, ...] | None = None, owner_user_id: int | None = None
) -> Resource:
    """A resource inside ``org``."""
    return Resource(kind=kind, org_id=org.id, id=id, acl=acl, owner_user_id=owner_user_id, org_slug=org.slug)
