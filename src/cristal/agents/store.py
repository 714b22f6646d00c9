"""Stored agents: drafts, published versions, rollback, sharing and removal, as the calling employee.

Every function takes the organization and the caller's e-mail and decides through
``cristal.identity.authorize`` (audited): ``agent.use`` to see an agent, ``agent.edit``
to change its draft, publish or roll back, ``agent.share`` (its creator or an admin)
to grant and revoke, ``agent.remove``. An agent the caller may not use, or one of
another organization, does not exist for them: ``NotFound``, never "forbidden".

Grants (``agent_shares``) are ``user:EMAIL``, ``group:NAME`` or ``org`` with the level
``use`` or ``edit``; they grant the agent only, never its creator's access. Sharing with
the whole organization needs an admin unless the organization lets members do it
(``organizations.agents_members_share_org``, changed with ``sharing_policy``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cristal.agents.allowed import check_spec
from cristal.agents.definition import AgentDefinition, check_grantee
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Agent, AgentShare, AgentTurn, AgentVersion, Group, Organization, utcnow
from cristal.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound
from cristal.identity.authorize import decide, require
from cristal.identity.directory import in_org, member, user_by_email
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

__all__ = ["authorized", "create", "edit", "list_agents", "parse_ref", "publish", "remove", "rollback", "share", "sharing_policy",
           "show", "unshare", "versions"]


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``SLUG`` or ``SLUG@N`` (a pinned version)."""
    slug, at, version = str(ref).partition("@")
    if not at:
        return slug, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"invalid agent version in {ref!r}: write SLUG@N with N a published version (1, 2, ...)")
    return slug, int(version)


def _grants(s: Session, agent: Agent) -> dict[str, str]:
    return {g.grantee: g.level for g in s.scalars(select(AgentShare).where(AgentShare.agent_id == agent.id))}


# Actions that only the edit grants allow (besides the creator and admins); for the others every grant counts.
EDIT_LEVEL = ("agent.edit", "agent.stats")


def _resource(org: Organization, agent: Agent, grants: dict[str, str], action: str) -> Resource:
    rules = tuple(sorted(g for g, level in grants.items() if action not in EDIT_LEVEL or level == "edit"))
    return in_org(org, "agent", agent.slug, acl=rules, owner_user_id=agent.created_by_user_id)


def _usable(s: Session, org: Organization, principal: Principal, slug: str) -> tuple[Agent, dict[str, str]]:
    """The agent ``slug`` if the caller may use it (audited); ``NotFound`` otherwise, whatever the reason."""
    agent = s.scalar(select(Agent).where(Agent.org_id == org.id, Agent.slug == slug))
    unknown = NotFound(f"unknown agent {slug!r} in organization {org.slug!r}")
    if agent is None:
        raise unknown
    grants = _grants(s, agent)
    try:
        require(s, principal, "agent.use", _resource(org, agent, grants, "agent.use"))
    except AccessDenied:
        raise unknown from None
    return agent, grants


def _editable(s: Session, org: Organization, principal: Principal, slug: str, details: dict | None = None
              ) -> tuple[Agent, dict[str, str]]:
    return authorized(s, org, principal, slug, "agent.edit", details)


def authorized(s: Session, org: Organization, principal: Principal, slug: str, action: str,
               details: dict | None = None) -> tuple[Agent, dict[str, str]]:
    """The agent ``slug`` and its grants if the caller may use it and take ``action`` on it (both audited).

    An agent they may not use is ``NotFound``; one they use but may not take ``action`` on is ``AccessDenied``.
    """
    agent, grants = _usable(s, org, principal, slug)
    require(s, principal, action, _resource(org, agent, grants, action), details=details)
    return agent, grants


def _check_grantee_exists(s: Session, org: Organization, grantee: str) -> None:
    if grantee.startswith("user:"):
        user_by_email(s, org, grantee[5:])
    elif grantee.startswith("group:"):
        name = grantee[6:]
        if s.scalar(select(Group.id).where(Group.org_id == org.id, Group.name == name)) is None:
            raise NotFound(f"unknown group {name!r} in organization {org.slug!r}")


def _require_share(s: Session, org: Organization, principal: Principal, agent: Agent, grants: dict[str, str],
                   changes: list[tuple[str, str | None]]) -> None:
    """Decide every grant change (``level`` ``None``: revoke) before anything is written.

    A refusal is committed on a connection of its own (``authorize``); on SQLite that waits for
    this session's writes, so every decision comes before the session's first write.
    """
    for grantee, level in changes:
        details = {"grantee": grantee, "level": level, "before": grants.get(grantee)}
        require(s, principal, "agent.share", _resource(org, agent, grants, "agent.share"), details=details)
        if grantee == "org" and level is not None and not org.agents_members_share_org:
            require(s, principal, "agent.share.org", _resource(org, agent, grants, "agent.share.org"), details=details)


def _apply_grants(s: Session, org: Organization, agent: Agent, grants: dict[str, str],
                  changes: list[tuple[str, str | None]]) -> None:
    """Write grant changes that ``_require_share`` allowed; an unknown person or group is ``NotFound``."""
    for grantee, level in changes:
        if level is not None:
            _check_grantee_exists(s, org, grantee)
        s.execute(delete(AgentShare).where(AgentShare.agent_id == agent.id, AgentShare.grantee == grantee))
        if level is not None:
            s.add(AgentShare(agent_id=agent.id, grantee=grantee, level=level))
            grants[grantee] = level
        else:
            grants.pop(grantee, None)
    s.flush()


def _changes(grants: dict[str, str], wanted: dict[str, str]) -> list[tuple[str, str | None]]:
    revoked: list[tuple[str, str | None]] = [(g, None) for g in sorted(set(grants) - set(wanted))]
    return revoked + [(g, level) for g, level in wanted.items() if grants.get(g) != level]


def _stored(definition: AgentDefinition) -> dict[str, Any]:
    # Sharing lives in agent_shares (it is not versioned: a rollback never re-grants anything).
    spec = definition.spec()
    spec.pop("sharing", None)
    return spec


def _summary(s: Session, org: Organization, principal: Principal, agent: Agent, grants: dict[str, str]) -> dict[str, Any]:
    return {
        "agent": agent.slug,
        "org": org.slug,
        "created_by": agent.created_by_email,
        "published_version": agent.published_version,
        "sharing": [g if level == "use" else f"{g}:edit" for g, level in sorted(grants.items())],
        "can_edit": decide(principal, "agent.edit", _resource(org, agent, grants, "agent.edit")).allowed,
        "created_at": agent.created_at.isoformat(),
        "updated_at": agent.updated_at.isoformat(),
    }


def create(db: Database, definition: AgentDefinition, org_slug: str, email: str, *,
           settings: Settings | None = None) -> dict[str, Any]:
    """A new agent whose draft is ``definition``, created by ``email``; its ``sharing`` is granted at once.

    With ``settings``, the model and tools are checked against what the organization allows (``agents.allowed``),
    here as in ``edit`` and ``publish``.
    """
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        if settings is not None:
            check_spec(settings, org, definition.name, definition.spec())
        require(s, principal, "agent.create", in_org(org, "agent", definition.name), details={"name": definition.name})
        now = utcnow()
        agent = Agent(org_id=org.id, slug=definition.name, created_by_user_id=principal.user_id, created_by_email=email,
                      draft=_stored(definition), published_version=None, created_at=now, updated_at=now)
        grants: dict[str, str] = {}
        changes = _changes(grants, dict(definition.grants))
        _require_share(s, org, principal, agent, grants, changes)
        if s.scalar(select(Agent.id).where(Agent.org_id == org.id, Agent.slug == definition.name)) is not None:
            raise AlreadyExists(f"an agent named {definition.name!r} already exists in organization {org.slug!r}")
        s.add(agent)
        s.flush()
        _apply_grants(s, org, agent, grants, changes)
        return _summary(s, org, principal, agent, grants)


def edit(db: Database, org_slug: str, email: str, slug: str, definition: AgentDefinition, *,
         settings: Settings | None = None) -> dict[str, Any]:
    """Replace the draft (published versions do not change); a ``sharing`` list in the file replaces the grants."""
    if definition.name != slug:
        raise InvalidInput(f"the file names the agent {definition.name!r}, not {slug!r}: an agent's name does not change")
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, grants = _editable(s, org, principal, slug, details={"change": "draft"})
        if settings is not None:
            check_spec(settings, org, slug, definition.spec())
        if "sharing" in definition.model_fields_set:
            changes = _changes(grants, dict(definition.grants))
            _require_share(s, org, principal, agent, grants, changes)
            _apply_grants(s, org, agent, grants, changes)
        agent.draft = _stored(definition)
        agent.updated_at = utcnow()
        return _summary(s, org, principal, agent, grants)


def _new_version(s: Session, agent: Agent, spec: dict[str, Any], email: str, note: str) -> AgentVersion:
    latest = s.scalar(select(AgentVersion.version).where(AgentVersion.agent_id == agent.id)
                      .order_by(AgentVersion.version.desc()).limit(1)) or 0
    row = AgentVersion(agent_id=agent.id, version=latest + 1, spec=spec, published_by_email=email, published_at=utcnow(),
                       note=note)
    s.add(row)
    agent.published_version = row.version
    agent.updated_at = row.published_at
    s.flush()
    return row


def _version_doc(row: AgentVersion, current: int | None) -> dict[str, Any]:
    return {"version": row.version, "published_by": row.published_by_email, "published_at": row.published_at.isoformat(),
            "note": row.note, "current": row.version == current}


def publish(db: Database, org_slug: str, email: str, slug: str, note: str = "",
            tested: dict[str, Any] | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Make the draft version N+1, the one users get from now on (with ``settings``, checked as in ``create``).

    ``tested``: the draft whose test cases the caller ran; a draft changed since is refused (its tests did not run).
    """
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, _ = _editable(s, org, principal, slug, details={"change": "publish", "note": note})
        if settings is not None:
            check_spec(settings, org, slug, dict(agent.draft))
        if tested is not None and dict(agent.draft) != tested:
            raise InvalidInput(f"the draft of agent {slug!r} changed while its tests ran; publish again")
        row = _new_version(s, agent, dict(agent.draft), email, note)
        return {"agent": agent.slug, **_version_doc(row, agent.published_version)}


def rollback(db: Database, org_slug: str, email: str, slug: str, version: int) -> dict[str, Any]:
    """Publish version ``version``'s definition again, as a new version (the draft becomes it too)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, _ = _editable(s, org, principal, slug, details={"change": "rollback", "to": version})
        old = s.get(AgentVersion, (agent.id, version))
        if old is None:
            raise NotFound(f"agent {slug!r} has no version {version}")
        row = _new_version(s, agent, dict(old.spec), email, f"rollback to version {version}")
        agent.draft = dict(old.spec)
        return {"agent": agent.slug, "rolled_back_to": version, **_version_doc(row, agent.published_version)}


def versions(db: Database, org_slug: str, email: str, slug: str) -> list[dict[str, Any]]:
    """The published versions, oldest first."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, _ = _usable(s, org, principal, slug)
        rows = s.scalars(select(AgentVersion).where(AgentVersion.agent_id == agent.id).order_by(AgentVersion.version))
        return [_version_doc(r, agent.published_version) for r in rows]


def show(db: Database, org_slug: str, email: str, ref: str) -> dict[str, Any]:
    """The agent as users get it: the published version, or the pinned one (``SLUG@N``).

    Before its first publication only those who may edit it see it (its draft, with ``version`` null).
    """
    slug, pinned = parse_ref(ref)
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, grants = _usable(s, org, principal, slug)
        doc = _summary(s, org, principal, agent, grants)
        version = pinned or agent.published_version
        if version is None:
            if not doc["can_edit"]:
                raise NotFound(f"agent {slug!r} has no published version yet")
            return {**doc, "version": None, "spec": agent.draft, "draft": agent.draft}
        row = s.get(AgentVersion, (agent.id, version))
        if row is None:
            raise NotFound(f"agent {slug!r} has no version {version}")
        doc.update(version=version, spec=row.spec)
        if doc["can_edit"]:
            doc["draft"] = agent.draft
        return doc


def list_agents(db: Database, org_slug: str, email: str) -> list[dict[str, Any]]:
    """The agents the caller may use, each with ``relation``: ``mine``, ``shared`` (with them or a group) or ``org``."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agents = list(s.scalars(select(Agent).where(Agent.org_id == org.id).order_by(Agent.slug)))
        shares: dict[int, dict[str, str]] = {a.id: {} for a in agents}
        for g in s.scalars(select(AgentShare).where(AgentShare.agent_id.in_(list(shares)))):
            shares[g.agent_id][g.grantee] = g.level
        docs = []
        for agent in agents:
            grants = shares[agent.id]
            # One decision per agent, from the same policy; the listing itself is the audited act.
            if not decide(principal, "agent.use", _resource(org, agent, grants, "agent.use")).allowed:
                continue
            doc = _summary(s, org, principal, agent, grants)
            mine = agent.created_by_user_id == principal.user_id
            personal = (principal.acl_matchers() - {"org"}).intersection(grants)
            doc["relation"] = "mine" if mine else "shared" if personal else "org"
            doc["description"] = str(agent.draft.get("description", ""))
            docs.append(doc)
        require(s, principal, "agent.list", in_org(org, "agent"), details={"listed": len(docs)})
        return docs


def _change_grant(db: Database, org_slug: str, email: str, slug: str, grantee: str, level: str | None) -> dict[str, Any]:
    """Grant ``level`` to ``grantee`` (``None``: revoke), as the caller."""
    try:
        who, written = check_grantee(grantee)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, grants = _usable(s, org, principal, slug)
        if level is None and who not in grants:
            raise NotFound(f"agent {slug!r} is not shared with {who}")
        changes: list[tuple[str, str | None]] = [(who, None if level is None else "edit" if "edit" in (level, written) else "use")]
        _require_share(s, org, principal, agent, grants, changes)
        _apply_grants(s, org, agent, grants, changes)
        return _summary(s, org, principal, agent, grants)


def share(db: Database, org_slug: str, email: str, slug: str, grantee: str, *, edit: bool = False) -> dict[str, Any]:
    """Grant ``use`` (or ``edit``: also ``GRANTEE:edit``) of the agent to ``user:EMAIL``, ``group:NAME`` or ``org``."""
    return _change_grant(db, org_slug, email, slug, grantee, "edit" if edit else "use")


def unshare(db: Database, org_slug: str, email: str, slug: str, grantee: str) -> dict[str, Any]:
    """Revoke the grant to ``grantee``."""
    return _change_grant(db, org_slug, email, slug, grantee, None)


def remove(db: Database, org_slug: str, email: str, slug: str) -> dict[str, Any]:
    """Remove the agent, its versions and its grants (its creator or an admin)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, grants = _usable(s, org, principal, slug)
        require(s, principal, "agent.remove", _resource(org, agent, grants, "agent.remove"))
        s.execute(delete(AgentShare).where(AgentShare.agent_id == agent.id))
        s.execute(delete(AgentVersion).where(AgentVersion.agent_id == agent.id))
        s.execute(delete(AgentTurn).where(AgentTurn.agent_id == agent.id))
        s.delete(agent)
        return {"agent": slug, "removed": True}


def sharing_policy(db: Database, org_slug: str, email: str, *, members_share_org: bool | None = None) -> dict[str, Any]:
    """Show or set whether members may share agents organization-wide (admins only, audited)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        details = {"before": org.agents_members_share_org, "after": members_share_org}
        require(s, principal, "agent.policy", in_org(org, "agent-policy"), details=details)
        if members_share_org is not None:
            org.agents_members_share_org = members_share_org
        return {"org": org.slug, "members_share_org": org.agents_members_share_org}
