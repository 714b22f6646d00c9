"""Writing and reading audit records.

Records are append-only: the schema's triggers refuse UPDATE and DELETE, and
this module only ever inserts and selects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from cristal.db.schema import AuditRecord, Organization, utcnow

if TYPE_CHECKING:  # the spine's modules name each other's types only for checking
    from cristal.identity.principal import Principal
    from cristal.identity.resource import Resource


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    org_id: int | None
    org_slug: str | None
    actor: str
    action: str
    resource: str
    decision: str
    reason: str
    request_id: str | None
    details: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "org": self.org_slug,
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "reason": self.reason,
            "request_id": self.request_id,
            "details": self.details,
        }


def record_values(*, org_id: int | None, org_slug: str | None, actor: str, action: str, resource: str, decision: str,
                  reason: str = "", request_id: str | None = None, details: dict[str, Any] | None = None,
                  at: datetime | None = None) -> dict[str, Any]:
    """The columns of one record, for writers that name the actor themselves (an anonymous caller has no principal)."""
    return {"at": at or utcnow(), "org_id": org_id, "org_slug": org_slug, "actor": actor[:400], "action": action,
            "resource": resource[:500], "decision": decision, "reason": reason, "request_id": request_id, "details": details}


def write_audit(
    session: Session,
    *,
    principal: Principal,
    action: str,
    resource: Resource,
    decision: str,
    reason: str = "",
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    independent: bool = False,
) -> None:
    """Append one record.

    With ``independent=True`` the record is committed at once on a connection
    of its own, so it survives the caller's rollback (used for refusals).
    """
    org_id = resource.org_id if resource.org_id is not None else principal.org_id
    org_slug = resource.org_slug
    if org_slug is None and org_id is not None and org_id == principal.org_id:
        org_slug = principal.org_slug
    values = record_values(org_id=org_id, org_slug=org_slug, actor=principal.label, action=action, resource=resource.label,
                           decision=decision, reason=reason, request_id=request_id, details=details)
    if independent:
        with session.get_bind().engine.begin() as conn:
            conn.execute(insert(AuditRecord), [values])
    else:
        session.add(AuditRecord(**values))


def query_audit(
    session: Session,
    org_slug: str | None,
    *,
    limit: int = 1000,
    action: str | None = None,
    decision: str | None = None,
) -> list[AuditEntry]:
    """The newest records of one organization, newest first; ``None``: the installation's (no organization).

    A slug can be taken again after its organization was removed, and the
    records outlive it: the current organization's id (never reused) tells its
    records from those of an earlier one.
    """
    if org_slug is None:
        stmt = select(AuditRecord).where(AuditRecord.org_id.is_(None), AuditRecord.org_slug.is_(None))
    else:
        current = select(Organization.id).where(Organization.slug == org_slug).scalar_subquery()
        stmt = select(AuditRecord).where(
            AuditRecord.org_slug == org_slug, or_(AuditRecord.org_id.is_(None), AuditRecord.org_id == current)
        )
    if action:
        stmt = stmt.where(AuditRecord.action == action)
    if decision:
        stmt = stmt.where(AuditRecord.decision == decision)
    stmt = stmt.order_by(AuditRecord.id.desc()).limit(limit)
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            org_id=r.org_id,
            org_slug=r.org_slug,
            actor=r.actor,
            action=r.action,
            resource=r.resource,
            decision=r.decision,
            reason=r.reason,
            request_id=r.request_id,
            details=r.details,
        )
        for r in session.scalars(stmt)
    ]
