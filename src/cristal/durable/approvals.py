"""Human approvals: requested by a run or an agent conversation, decided by the named approvers, audited.

The ``workflow_approvals`` row is the truth. A decision updates it (only
while it is pending) and then wakes the waiting run with a DBOS message; the
run re-reads the row after every wake-up and on a periodic timeout, so a lost
message only delays the run. Only the approvers the request names
(``group:NAME``, ``user:EMAIL``) may decide — an organization admin who is not
named may not — and groups are read at the moment of the decision.

A run waits for a decision in :func:`await_decision`, the one polling loop: a
workflow's ``approval`` step sleeps in ``DBOS.recv`` (woken by the decision's
message), an Operator step with its browser open sleeps plainly.

An approval's *subject* is what waits: ``workflow`` (a run's step: ``run_id``,
``step_id``) or ``conversation`` (an agent's tool call: the conversation's id and
the call's key; the agents layer stores the call and takes it up when the
conversation goes on — nothing is woken). ``details`` is what the approver is
shown besides the message: for a conversation, the exact call. This module knows
no agent: it stores, lists and decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from cristal.audit.log import write_audit
from cristal.db import Database
from cristal.db.schema import Organization, utcnow
from cristal.durable.schema import WorkflowApproval
from cristal.durable.store import rows_changed, run_owner
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug, resolve_principal
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

ENGINE = Principal.installation("workflow-engine")
SUBJECTS = ("workflow", "conversation")


def approval_id_for(run_id: str, step_id: str) -> str:
    return "apr_" + hashlib.sha256(f"{run_id}:{step_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ApprovalInfo:
    id: str
    run_id: str
    step_id: str
    workflow: str  # for a conversation: ``agent:SLUG``
    owner: str
    approvers: list[str]
    message: str
    status: str
    requested_at: datetime
    deadline: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    can_decide: bool
    subject: str = "workflow"
    details: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "subject": self.subject, "details": self.details,
            "run_id": self.run_id, "step_id": self.step_id, "workflow": self.workflow, "owner": self.owner,
            "approvers": self.approvers, "message": self.message, "status": self.status,
            "requested_at": self.requested_at.isoformat(), "deadline": self.deadline.isoformat() if self.deadline else None,
            "decided_by": self.decided_by, "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "comment": self.comment, "can_decide": self.can_decide,
        }


def _info(row: WorkflowApproval, principal: Principal | None = None) -> ApprovalInfo:
    can = bool(principal and row.status == "pending" and principal.acl_matchers().intersection(row.approvers))
    return ApprovalInfo(row.id, row.run_id, row.step_id, row.workflow_name, row.owner_email, list(row.approvers),
                        row.message, row.status, row.requested_at, row.deadline, row.decided_by, row.decided_at,
                        row.comment, can, row.subject, dict(row.details) if row.details is not None else None)


# ---------------------------------------------------------------------------
# Engine side (called inside DBOS steps)


def request(db: Database, run_id: str, step_id: str, org_id: int, owner_email: str, workflow: str,
            spec: dict[str, Any], timeout: float | None, *, subject: str = "workflow",
            details: dict[str, Any] | None = None) -> str:
    """Record the approval a run's step (or, with ``subject="conversation"``, a conversation's call) asks for.

    Idempotent: a replay finds the same row. ``details`` (JSON) is shown to the approvers and audited.
    """
    if subject not in SUBJECTS:
        raise InvalidInput(f"invalid approval subject {subject!r}: {' or '.join(SUBJECTS)}")
    if not spec.get("approvers"):
        raise InvalidInput("an approval needs at least one approver")
    approval_id = approval_id_for(run_id, step_id)
    with db.session() as s:
        if s.get(WorkflowApproval, approval_id) is not None:
            return approval_id
        org, principal = run_owner(s, org_id, owner_email)
        now = utcnow()
        s.add(WorkflowApproval(
            id=approval_id, subject=subject, details=details,
            run_id=run_id, step_id=step_id, org_id=org_id, owner_email=owner_email, workflow_name=workflow,
            approvers=list(spec["approvers"]), message=str(spec.get("message") or "")[:10_000],
            on_timeout=spec.get("on_timeout", "fail"), status="pending", requested_at=now,
            deadline=now + timedelta(seconds=timeout) if timeout else None,
        ))
        require(s, principal, f"{subject}.approval.request", in_org(org, "approval", approval_id), request_id=run_id,
                details={"approvers": list(spec["approvers"]), "step": step_id, "timeout_seconds": timeout,
                         **({"call": details} if details is not None else {})})
    return approval_id


def check(db: Database, approval_id: str) -> dict[str, Any]:
    """The approval's state; a pending one past its deadline takes its ``on_timeout`` path here."""
    with db.session() as s:
        row = s.get(WorkflowApproval, approval_id)
        if row is None:
            return {"status": "cancelled", "decision": "cancelled", "approval_id": approval_id, "by": None, "at": None, "comment": None}
        now = utcnow()
        if row.status == "pending" and row.deadline is not None and now >= row.deadline:
            changed = rows_changed(s.execute(update(WorkflowApproval).where(WorkflowApproval.id == approval_id,
                                                                            WorkflowApproval.status == "pending")
                                             .values(status="timed_out", decided_by="timeout", decided_at=now)))
            if changed:
                org = s.get(Organization, row.org_id)
                write_audit(s, principal=ENGINE, action="approval.timeout",
                            resource=Resource(kind="approval", org_id=row.org_id, id=approval_id, org_slug=org.slug if org else None),
                            decision="allow", reason=f"no decision before the deadline; on_timeout={row.on_timeout}",
                            request_id=row.run_id, details={"on_timeout": row.on_timeout})
            s.refresh(row)
        remaining = (row.deadline - now).total_seconds() if row.deadline is not None else None
        decision = {"approved": "approved", "rejected": "rejected", "cancelled": "cancelled", "pending": "pending"}.get(row.status)
        if row.status == "timed_out":
            decision = {"approve": "approved", "reject": "rejected"}.get(row.on_timeout, "failed")
        return {
            "status": row.status, "decision": decision, "approval_id": approval_id, "by": row.decided_by,
            "at": row.decided_at.isoformat() if row.decided_at else None, "comment": row.comment, "remaining": remaining,
        }


def get(db: Database, approval_id: str) -> ApprovalInfo | None:
    """The approval as stored (engine side: no principal, no audit), ``None`` when there is none."""
    with db.session() as s:
        row = s.get(WorkflowApproval, approval_id)
        return _info(row) if row is not None else None


def cancel_for(db: Database, subject: str, run_ids: list[str], reason: str) -> int:
    """Cancel the pending approvals of these subjects (a conversation deleted), audited; how many were."""
    if not run_ids:
        return 0
    with db.session() as s:
        rows = list(s.scalars(select(WorkflowApproval).where(WorkflowApproval.subject == subject,
                                                             WorkflowApproval.run_id.in_(run_ids),
                                                             WorkflowApproval.status == "pending")))
        for row in rows:
            row.status, row.decided_by, row.decided_at = "cancelled", "cancelled", utcnow()
            write_audit(s, principal=ENGINE, action="approval.cancel",
                        resource=Resource(kind="approval", org_id=row.org_id, id=row.id), decision="allow",
                        reason=reason, request_id=row.run_id)
        return len(rows)


def await_decision(check_now: Callable[[], dict[str, Any]], sleep: Callable[[float], object],
                   poll_seconds: float) -> dict[str, Any]:
    """Re-check an approval until it is no longer pending; between checks ``sleep`` at most
    ``poll_seconds``, and never past the approval's deadline."""
    while True:
        state = check_now()
        if state["status"] != "pending":
            return state
        remaining = state.get("remaining")
        sleep(poll_seconds if remaining is None else max(0.01, min(poll_seconds, remaining)))


# ---------------------------------------------------------------------------
# People side (CLI, API)


def list_approvals(db: Database, org_slug: str, email: str, *, include_decided: bool = False) -> list[ApprovalInfo]:
    """Pending approvals the employee may decide, marked ``can_decide``.

    Admins also see every workflow's; a conversation's is seen only by its approvers and by the person whose
    conversation it is (conversations are private, even to admins: the call's arguments may quote them).
    """
    with db.session() as s:
        principal = resolve_principal(s, org_slug, email)
        org = org_by_slug(s, org_slug)
        require(s, principal, "approval.list", in_org(org, "approvals"))
        stmt = select(WorkflowApproval).where(WorkflowApproval.org_id == org.id)
        if not include_decided:
            stmt = stmt.where(WorkflowApproval.status == "pending")
        rows = list(s.scalars(stmt.order_by(WorkflowApproval.requested_at)))
        matchers = principal.acl_matchers()

        def visible(r: WorkflowApproval) -> bool:
            if matchers.intersection(r.approvers):
                return True
            return r.owner_email == principal.name if r.subject == "conversation" else principal.is_admin

        return [_info(r, principal) for r in rows if visible(r)]


def decide(db: Database, approval_id: str, email: str, decision: str, *, comment: str | None = None,
           org_slug: str | None = None) -> ApprovalInfo:
    """Approve or reject as ``email`` (a member of the approval's organization), then wake the run.

    ``org_slug``, when the caller's organization is known (the HTTP API), makes
    another organization's approval unknown instead of decidable by a namesake.
    """
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"invalid decision {decision!r}: approve or reject")
    with db.session() as s:
        row = s.get(WorkflowApproval, approval_id)
        if row is None:
            raise NotFound(f"unknown approval {approval_id!r}")
        org = s.get(Organization, row.org_id)
        if org is None or (org_slug is not None and org.slug != org_slug):
            raise NotFound(f"unknown approval {approval_id!r}")
        try:
            principal = resolve_principal(s, org.slug, email)
        except NotFound:
            raise NotFound(f"unknown approval {approval_id!r}") from None  # no hint that it exists in another organization
        resource = Resource(kind="approval", org_id=row.org_id, id=approval_id, acl=tuple(row.approvers),
                            org_slug=org.slug)
        details = {"decision": decision, "run_id": row.run_id, "step": row.step_id, "comment": comment}
        if not principal.acl_matchers().intersection(row.approvers):
            write_audit(s, principal=principal, action="approval.decide", resource=resource, decision="deny",
                        reason="not among the named approvers " + ",".join(row.approvers), request_id=row.run_id,
                        details=details, independent=True)
            raise AccessDenied(f"{principal.label} may not decide approval {approval_id}: only "
                               f"{', '.join(row.approvers)} may")
        if row.status != "pending":
            raise InvalidInput(f"approval {approval_id} is already {row.status.replace('_', ' ')}")
        require(s, principal, "approval.decide", resource, request_id=row.run_id, details=details)
        now = utcnow()
        status = "approved" if decision == "approve" else "rejected"
        changed = rows_changed(s.execute(update(WorkflowApproval).where(WorkflowApproval.id == approval_id,
                                                                        WorkflowApproval.status == "pending")
                                         .values(status=status, decided_by=principal.name, decided_at=now, comment=comment)))
        if not changed:
            raise InvalidInput(f"approval {approval_id} was decided by someone else a moment ago")
        run_id, subject = row.run_id, row.subject
    if subject == "workflow":  # a conversation is not waiting in a process: it takes the decision up when it goes on
        wake(db, run_id, approval_id, status)
    with db.session() as s:
        decided = s.get(WorkflowApproval, approval_id)
        if decided is None:  # the run's organization was removed a moment ago
            raise NotFound(f"unknown approval {approval_id!r}")
        return _info(decided, None)


def wake(db: Database, run_id: str, approval_id: str, status: str) -> None:
    """Tell the waiting run (best effort: the run also re-checks on its own)."""
    from cristal.durable.runtime import client

    try:
        client(db).send(run_id, {"status": status}, topic=approval_id)
    except Exception:  # noqa: BLE001 - the run's periodic check picks the decision up
        pass
