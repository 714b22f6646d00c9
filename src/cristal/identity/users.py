"""Users and group membership inside one organization."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cristal.db.schema import Group, Organization, User
from cristal.errors import AlreadyExists, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug, user_by_email
from cristal.identity.principal import Principal
from cristal.identity.validation import check_email, check_group, check_role


@dataclass(frozen=True)
class UserInfo:
    email: str
    org: str
    role: str
    groups: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"email": self.email, "org": self.org, "role": self.role, "groups": list(self.groups)}


@dataclass(frozen=True)
class GroupInfo:
    name: str
    org: str
    members: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"name": self.name, "org": self.org, "members": list(self.members)}


def _user_info(org: Organization, user: User) -> UserInfo:
    return UserInfo(user.email, org.slug, user.role, tuple(sorted(g.name for g in user.groups)))


def _group(session: Session, org: Organization, name: str, *, create: bool) -> Group:
    check_group(name)
    group = session.scalar(select(Group).where(Group.org_id == org.id, Group.name == name))
    if group is None:
        if not create:
            raise NotFound(f"unknown group {name!r} in organization {org.slug!r}")
        group = Group(org_id=org.id, name=name)
        session.add(group)
    return group


def add_user(
    session: Session,
    actor: Principal,
    org_slug: str,
    email: str,
    *,
    groups: Iterable[str] = (),
    role: str = "member",
) -> UserInfo:
    """Add an employee; named groups are created as needed."""
    address = check_email(email)
    check_role(role)
    group_names = sorted({check_group(g) for g in groups})
    org = org_by_slug(session, org_slug)
    require(session, actor, "user.manage", in_org(org, "user", address), details={"op": "add", "role": role, "groups": group_names})
    if session.scalar(select(User.id).where(User.org_id == org.id, User.email == address)) is not None:
        raise AlreadyExists(f"user {address!r} already exists in organization {org.slug!r}")
    user = User(org_id=org.id, email=address, role=role)
    user.groups = [_group(session, org, g, create=True) for g in group_names]
    session.add(user)
    session.flush()
    return _user_info(org, user)


def remove_user(session: Session, actor: Principal, org_slug: str, email: str) -> None:
    org = org_by_slug(session, org_slug)
    require(session, actor, "user.manage", in_org(org, "user", check_email(email)), details={"op": "remove"})
    user = user_by_email(session, org, email)
    session.delete(user)
    session.flush()


def set_role(session: Session, actor: Principal, org_slug: str, email: str, role: str) -> UserInfo:
    check_role(role)
    org = org_by_slug(session, org_slug)
    require(session, actor, "user.manage", in_org(org, "user", check_email(email)), details={"op": "set-role", "role": role})
    user = user_by_email(session, org, email)
    user.role = role
    session.flush()
    return _user_info(org, user)


def list_users(session: Session, actor: Principal, org_slug: str) -> list[UserInfo]:
    org = org_by_slug(session, org_slug)
    require(session, actor, "user.list", in_org(org, "users"))
    users = session.scalars(
        select(User).options(selectinload(User.groups)).where(User.org_id == org.id).order_by(User.email)
    )
    return [_user_info(org, u) for u in users]


def join_group(session: Session, actor: Principal, org_slug: str, email: str, group: str) -> UserInfo:
    org = org_by_slug(session, org_slug)
    require(session, actor, "group.manage", in_org(org, "group", group), details={"op": "add-member", "user": check_email(email)})
    user = user_by_email(session, org, email)
    target = _group(session, org, group, create=True)
    if target not in user.groups:
        user.groups.append(target)
    session.flush()
    return _user_info(org, user)


def leave_group(session: Session, actor: Principal, org_slug: str, email: str, group: str) -> UserInfo:
    org = org_by_slug(session, org_slug)
    require(session, actor, "group.manage", in_org(org, "group", group), details={"op": "remove-member", "user": check_email(email)})
    user = user_by_email(session, org, email)
    target = _group(session, org, group, create=False)
    if target in user.groups:
        user.groups.remove(target)
    session.flush()
    return _user_info(org, user)


def list_groups(session: Session, actor: Principal, org_slug: str) -> list[GroupInfo]:
    org = org_by_slug(session, org_slug)
    require(session, actor, "user.list", in_org(org, "groups"))
    groups = session.scalars(
        select(Group).options(selectinload(Group.members)).where(Group.org_id == org.id).order_by(Group.name)
    )
    return [GroupInfo(g.name, org.slug, tuple(sorted(u.email for u in g.members))) for g in groups]


def sync_groups(session: Session, actor: Principal, org_slug: str, email: str, groups: Iterable[str]) -> UserInfo:
    """Make the user's groups exactly ``groups`` (what their sign-in provider says); one audit record when that changes.

    Groups named for the first time are created, as with ``join_group``; a group
    the user leaves stays (others may be in it, and access rules name it).
    """
    org = org_by_slug(session, org_slug)
    user = user_by_email(session, org, email)
    wanted = sorted({check_group(g) for g in groups})
    current = sorted(g.name for g in user.groups)
    if wanted != current:
        added, removed = sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))
        require(session, actor, "group.manage", in_org(org, "user", user.email),
                details={"op": "sync", "added": added, "removed": removed})
        user.groups = [_group(session, org, g, create=True) for g in wanted]
        session.flush()
    return _user_info(org, user)
