"""The one place where access is decided.

``decide`` is the pure policy; ``authorize`` is ``decide`` plus the audit
record, and ``require`` raises ``AccessDenied`` on a refusal. Every layer calls
these; nothing else compares roles, organizations or ACLs.

Policy, in order:

1. Unknown actions are refused (default deny).
2. The installation principal may do installation and admin actions, never data reads.
3. A user never acts outside their own organization.
4. Self actions need the owner themself: not an admin, not the installation.
5. Admin actions need the ``admin`` role; owner actions need the owner or an admin.
6. Shared things (agents) need the owner, an admin, or a grant among the resource's rules.
7. Data reads need a matching access rule; with no rules, only admins read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy.orm import Session

from cristal.audit.log import write_audit
from cristal.errors import AccessDenied
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource


class Rule(Enum):
    INSTALLATION = "installation"  # installation-wide changes
    ADMIN = "admin"  # organization admin (or the installation principal)
    MEMBER = "member"  # anyone in the organization
    OWNER = "owner"  # the resource's owner, or an organization admin
    SELF = "self"  # the resource's owner only: what would let someone else act as them (minting their API key)
    SHARED = "shared"  # the owner, an organization admin, or a grant in the resource's rules (a shared agent)
    ACL = "acl"  # company data: the resource's access rules


# Every action the platform knows. Later layers add theirs here, so the whole
# policy can be read in one screen.
POLICY: dict[str, Rule] = {
    "org.create": Rule.INSTALLATION,
    "org.delete": Rule.INSTALLATION,
    "org.update": Rule.ADMIN,
    "org.read": Rule.MEMBER,
    "org.oidc.read": Rule.ADMIN,  # the organization's sign-in provider (it is changed with org.update)
    "user.manage": Rule.ADMIN,
    "user.list": Rule.ADMIN,
    "group.manage": Rule.ADMIN,
    # A key acts as its owner, so only the owner mints one; an admin lists and revokes, never mints for others.
    "apikey.create": Rule.SELF,
    "apikey.list": Rule.OWNER,
    "apikey.revoke": Rule.OWNER,
    # web sessions act as their owner: only the person signs themself in (at the provider) and out
    "session.create": Rule.SELF,
    "session.revoke": Rule.SELF,
    "audit.read": Rule.ADMIN,
    "usage.read": Rule.ADMIN,
    "llm.call": Rule.MEMBER,
    # Embedding an organization's documents for its dense index through the gateway (metered to the organization):
    # part of a sync, so whoever may sync (an admin, the installation's scheduled sync) may.
    "knowledge.embed": Rule.ADMIN,
    "org.embeddings.read": Rule.ADMIN,  # which embedding index serves and which is being built (changed with org.update)
    "source.manage": Rule.ADMIN,
    "source.sync": Rule.ADMIN,
    "source.list": Rule.ADMIN,
    "source.query": Rule.ACL,  # read-only SQL on a source, governed by the source's rules
    "knowledge.search": Rule.MEMBER,  # results are filtered per document inside the query
    "document.read": Rule.ACL,
    # workflows (a run acts as its owner; each step is authorized again as the owner)
    "workflow.run": Rule.MEMBER,
    "workflow.list": Rule.MEMBER,  # members see their own runs, admins every run
    "workflow.read": Rule.OWNER,
    "workflow.cancel": Rule.OWNER,
    "workflow.retry": Rule.OWNER,
    "workflow.http": Rule.MEMBER,
    "workflow.python": Rule.MEMBER,  # only functions under CRISTAL_WORKFLOW_PYTHON_MODULES
    "workflow.approval.request": Rule.MEMBER,
    "conversation.approval.request": Rule.MEMBER,
    "workflow.deploy": Rule.MEMBER,  # a new name; replacing or removing one is workflow.undeploy
    "workflow.undeploy": Rule.OWNER,  # the deployer or an admin
    "workflow.deployments": Rule.MEMBER,  # any member may see and start the organization's deployments
    "workflow.schedule.fire": Rule.MEMBER,  # a schedule's firing, as the deployer (re-checked at each firing)
    "workflow.limits": Rule.ADMIN,
    "approval.list": Rule.MEMBER,
    "approval.decide": Rule.ACL,
    # operator (a browser run acts as the employee; the web apps' own logins decide what they may do there)
    "operator.run": Rule.MEMBER,
    "operator.act": Rule.MEMBER,
    "operator.policy": Rule.ADMIN,  # the organization's allow-list of web domains (read and change)
    # custom agents (the resource's rules are its grants: every grant for use, the edit grants for edit)
    "agent.create": Rule.MEMBER,
    "agent.list": Rule.MEMBER,  # each agent listed is one the caller may use (``decide`` on agent.use)
    "agent.use": Rule.SHARED,
    "agent.edit": Rule.SHARED,  # edit the draft, publish, roll back
    "agent.share": Rule.OWNER,  # grants use or edit of the agent, never the creator's own access
    "agent.share.org": Rule.ADMIN,  # sharing with the whole organization, unless the organization lets members
    "agent.remove": Rule.OWNER,
    "agent.policy": Rule.ADMIN,  # whether members may share agents organization-wide
    # usage and thumbs per version: those who may edit the agent (its edit grants), its creator and admins
    "agent.stats": Rule.SHARED,
    # conversations are private to their owner: an admin neither reads nor changes someone else's (SELF)
    "conversation.list": Rule.MEMBER,  # each one listed is the caller's own (filtered in the query)
    "conversation.read": Rule.SELF,  # show, export, continue
    "conversation.write": Rule.SELF,  # append a turn, rename
    "conversation.delete": Rule.SELF,
    "conversation.rate": Rule.SELF,  # thumbs up or down on an answer: only the conversation's owner
    "conversation.retention": Rule.ADMIN,  # the organization's retention in days (read and change)
    "conversation.purge": Rule.ADMIN,  # delete every conversation older than the retention, whoever owns it
    # MCP servers: an admin registers them and chooses their tools; agents call those tools as the caller
    "mcp.manage": Rule.ADMIN,  # add, remove, list a server's tools, allow tools and set their effect classes
    "mcp.list": Rule.MEMBER,  # the organization's servers and allowed tools (how to reach them: admins only)
    "mcp.call": Rule.MEMBER,  # an allowed tool of a registered server, called by an agent as the caller
}

# Actions the installation principal may take: managing the installation, not reading data.
_INSTALLATION_OK = {Rule.INSTALLATION, Rule.ADMIN}
_DATA_RULES = {Rule.ACL}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def decide(principal: Principal, action: str, resource: Resource) -> Decision:
    """The policy alone, with no side effects."""
    rule = POLICY.get(action)
    if rule is None:
        return Decision(False, f"unknown action {action!r}")
    if principal.is_installation:
        if rule in _INSTALLATION_OK:
            return Decision(True, "installation principal")
        return Decision(False, "the installation principal cannot read company data or act as a user; use --as EMAIL")
    if rule is Rule.INSTALLATION:
        return Decision(False, "only the installation principal may do this")
    if principal.org_id is None or resource.org_id != principal.org_id:
        return Decision(False, "resource belongs to another organization")
    if rule is Rule.MEMBER:
        return Decision(True, "member of the organization")
    if rule is Rule.SELF:
        if resource.owner_user_id is not None and resource.owner_user_id == principal.user_id:
            return Decision(True, "owner")
        return Decision(False, "only the user themself may do this, not an admin")
    if principal.is_admin:
        return Decision(True, "organization admin")
    if rule is Rule.ADMIN:
        return Decision(False, "requires the admin role")
    if rule in (Rule.OWNER, Rule.SHARED):
        if resource.owner_user_id is not None and resource.owner_user_id == principal.user_id:
            return Decision(True, "owner")
    if rule is Rule.OWNER:
        return Decision(False, "only the owner or an admin may do this")
    if rule is Rule.SHARED:
        matched = principal.acl_matchers().intersection(resource.acl or ())
        if matched:
            return Decision(True, "shared with " + ",".join(sorted(matched)))
        return Decision(False, "not shared with them")
    # Rule.ACL: company data.
    if not resource.acl:
        return Decision(False, "no access rule grants this; admins only")
    matched = principal.acl_matchers().intersection(resource.acl)
    if matched:
        return Decision(True, "access rule " + ",".join(sorted(matched)))
    return Decision(False, "no access rule matches")


def authorize(
    session: Session,
    principal: Principal,
    action: str,
    resource: Resource,
    *,
    request_id: str | None = None,
    details: dict | None = None,
) -> Decision:
    """Decide and leave an audit record.

    An allowed decision is recorded in ``session`` and so commits with the work
    it allowed; a refusal is committed at once on its own connection, because
    the caller's work is about to be abandoned and the refusal must survive.
    """
    decision = decide(principal, action, resource)
    write_audit(
        session,
        principal=principal,
        action=action,
        resource=resource,
        decision="allow" if decision.allowed else "deny",
        reason=decision.reason,
        request_id=request_id,
        details=details,
        independent=not decision.allowed,
    )
    return decision


def require(
    session: Session,
    principal: Principal,
    action: str,
    resource: Resource,
    *,
    request_id: str | None = None,
    details: dict | None = None,
) -> None:
    """``authorize``, raising ``AccessDenied`` with the reason on a refusal."""
    decision = authorize(session, principal, action, resource, request_id=request_id, details=details)
    if not decision.allowed:
        raise AccessDenied(f"{principal.label} may not {action} {resource.label}: {decision.reason}")
