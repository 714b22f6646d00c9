"""Runs as people see them: start (foreground or queued), status, list, cancel, retry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Organization, utcnow
from cristal.durable.runtime import enqueue as durable_enqueue
from cristal.durable.runtime import launch, new_client, wait_quietly
from cristal.durable.runtime import run_here as durable_run_here
from cristal.durable.schema import WorkflowApproval, WorkflowRun, WorkflowStep
from cristal.durable.store import TERMINAL
from cristal.errors import InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, member, resolve_principal
from cristal.identity.principal import Principal
from cristal.workflows.spec import Compiled, parse_inputs

T = TypeVar("T")


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:16]


@dataclass
class NewRun:
    run_id: str
    payload: dict[str, Any]


def create_run(db: Database, compiled: Compiled, org_slug: str, email: str, given: dict[str, Any], *,
               retry_of: str | None = None, seed: dict[str, Any] | None = None) -> NewRun:
    """Authorize ``workflow.run`` as the owner and record the run (status ``queued``)."""
    inputs = parse_inputs(compiled, given)
    run_id = new_run_id()
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        require(s, principal, "workflow.run", in_org(org, "workflow", compiled.name), request_id=run_id,
                details={"file": str(compiled.path), "inputs": inputs, "retry_of": retry_of})
        return record_run(s, org, principal, compiled.definition, str(compiled.path), inputs, run_id,
                          retry_of=retry_of, seed=seed)


def record_run(s: Any, org: Organization, principal: Principal, definition: dict[str, Any], file: str,
               inputs: dict[str, Any], run_id: str, *, retry_of: str | None = None, seed: dict[str, Any] | None = None,
               deployment_id: int | None = None, idempotency_key: str | None = None) -> NewRun:
    """Add the run's row in session ``s`` (the caller has authorized it) and build the engine's payload."""
    s.add(WorkflowRun(id=run_id, org_id=org.id, owner_user_id=principal.user_id, owner_email=principal.name,
                      name=definition["name"], file=file, definition=definition, inputs=inputs,
                      status="queued", retry_of=retry_of, deployment_id=deployment_id, idempotency_key=idempotency_key))
    return NewRun(run_id, payload_for(definition, inputs, org.id, principal.name, seed))


def payload_for(definition: dict[str, Any], inputs: dict[str, Any], org_id: int, owner_email: str,
                seed: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the DBOS workflow receives: everything a worker needs, nothing read from files."""
    return {"definition": definition, "inputs": inputs, "org_id": org_id, "owner_email": owner_email, "seed": seed or {}}


def start(db: Database, settings: Settings, run: NewRun) -> Any:
    """Start ``run`` in this process (launching the runtime once) and return its DBOS handle; the
    runtime stays up for more runs until ``cristal.durable.runtime.shutdown()``."""
    from cristal.workflows.engine import cristal_run

    return launch(db, settings).start(cristal_run, run.run_id, run.payload)


def run_here(db: Database, settings: Settings, run: NewRun, *, watch: Callable[[Any], T] = wait_quietly,  # type: ignore[assignment]  # T is None then
             extras: dict[str, Any] | None = None) -> T:
    """Run ``run`` in this process, wait for it with ``watch(handle)``, then stop the runtime
    (:func:`cristal.durable.runtime.run_here` with the workflow interpreter)."""
    from cristal.workflows.engine import cristal_run

    return durable_run_here(db, settings, run.run_id, workflow=cristal_run, payload=run.payload, watch=watch,
                            extras=extras)  # type: ignore[return-value]  # a started run always has a handle


def enqueue(db: Database, run: NewRun) -> None:
    """Queue the run for ``cristal worker`` (a repeated call never starts a second run)."""
    durable_enqueue(db, run.run_id, run.payload)


# ---------------------------------------------------------------------------
# Reading


def _run_or_404(s: Session, run_id: str) -> WorkflowRun:
    run = s.get(WorkflowRun, run_id)
    if run is None:
        raise NotFound(f"unknown run {run_id!r}")
    return run


def _reader(s: Any, run: WorkflowRun, email: str | None, action: str, org_slug: str | None) -> Principal | None:
    """The acting employee, authorized for ``action`` on the run; ``None`` for the installation principal.

    An e-mail alone names a person only within one organization: callers that
    know the employee's organization (the HTTP API, from the key) pass it, and
    a run of another organization is then unknown, never its namesake's.
    """
    if email is None:
        return None
    org = s.get(Organization, run.org_id)
    if org_slug is not None and org.slug != org_slug:
        raise NotFound(f"unknown run {run.id!r}")
    try:
        principal = resolve_principal(s, org.slug, email)
    except NotFound:
        raise NotFound(f"unknown run {run.id!r}") from None
    require(s, principal, action, in_org(org, "workflow-run", run.id, owner_user_id=run.owner_user_id))
    return principal


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _seconds(a: Any, b: Any) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def run_status(db: Database, run_id: str, email: str | None = None, *, org_slug: str | None = None) -> dict[str, Any]:
    """Per-step state, outputs (for the owner or an admin), timings and errors."""
    with db.session() as s:
        run = _run_or_404(s, run_id)
        principal = _reader(s, run, email, "workflow.read", org_slug)
        show = principal is not None
        org = s.get(Organization, run.org_id)
        rows = list(s.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id)
                              .order_by(WorkflowStep.position, WorkflowStep.item_index)))
        approvals = {a.step_id: a for a in s.scalars(select(WorkflowApproval).where(WorkflowApproval.run_id == run_id))}
        children = list(s.scalars(select(WorkflowRun.id).where(WorkflowRun.parent_run_id == run_id)))
        by_step: dict[str, dict[str, Any]] = {}
        for step in run.definition["steps"]:
            by_step[step["id"]] = {"id": step["id"], "kind": step["kind"], "status": "pending", "attempts": 0,
                                   "started_at": None, "finished_at": None, "seconds": None, "error": None, "items": []}
            if show:
                by_step[step["id"]]["output"] = None
        for r in rows:
            entry = by_step.get(r.step_id)
            if entry is None:
                continue
            data = {"status": r.status, "attempts": r.attempts, "started_at": _iso(r.started_at),
                    "finished_at": _iso(r.finished_at), "seconds": _seconds(r.started_at, r.finished_at), "error": r.error,
                    "idempotency_key": r.idempotency_key}
            if show:
                data["output"] = r.output
            if r.item_index == -1:
                entry.update(data)
            else:
                entry["items"].append({"index": r.item_index, **data})
        for step_id, a in sorted(approvals.items(), key=lambda kv: kv[1].requested_at):
            # An operate step asks once per irreversible action ("STEP@N"): show its latest approval.
            step_id = step_id if step_id in by_step else step_id.partition("@")[0]
            if step_id in by_step:
                by_step[step_id]["approval"] = {"id": a.id, "status": a.status, "approvers": a.approvers,
                                                "decided_by": a.decided_by, "decided_at": _iso(a.decided_at)}
        doc: dict[str, Any] = {
            "run_id": run.id, "workflow": run.name, "file": run.file, "org": org.slug if org else None,
            "owner": run.owner_email, "status": run.status, "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "seconds": _seconds(run.started_at, run.finished_at), "error": run.error, "parent_run_id": run.parent_run_id,
            "retry_of": run.retry_of, "children": children, "steps": list(by_step.values()),
        }
        if show:
            doc["inputs"] = run.inputs
            doc["result"] = run.result
        else:
            doc["note"] = "outputs are shown only with --as (the owner or an organization admin)"
        return doc


def list_runs(db: Database, org_slug: str, email: str, *, limit: int = 50) -> list[dict[str, Any]]:
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        require(s, principal, "workflow.list", in_org(org, "workflow-runs"))
        stmt = select(WorkflowRun).where(WorkflowRun.org_id == org.id, WorkflowRun.parent_run_id.is_(None))
        if not principal.is_admin:
            stmt = stmt.where(WorkflowRun.owner_user_id == principal.user_id)
        runs = s.scalars(stmt.order_by(WorkflowRun.created_at.desc()).limit(limit))
        return [{"run_id": r.id, "workflow": r.name, "owner": r.owner_email, "status": r.status,
                 "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at), "error": r.error} for r in runs]


# ---------------------------------------------------------------------------
# Changing


def cancel_run(db: Database, run_id: str, email: str, *, org_slug: str | None = None) -> dict[str, Any]:
    with db.session() as s:
        run = _run_or_404(s, run_id)
        _reader(s, run, email, "workflow.cancel", org_slug)
        if run.status in TERMINAL:
            raise InvalidInput(f"run {run_id} is already {run.status}")
        ids = [run_id, *s.scalars(select(WorkflowRun.id).where(WorkflowRun.id.like(run_id + ".%")))]
    client = new_client(db)
    try:
        for rid in ids:
            try:
                client.cancel_workflow(rid)
            except Exception:  # noqa: BLE001 - a run not yet known to DBOS (queued by an old client) is just marked
                pass
    finally:
        client.destroy()
    now = utcnow()
    with db.session() as s:
        s.execute(update(WorkflowRun).where(WorkflowRun.id.in_(ids), WorkflowRun.status.not_in(TERMINAL))
                  .values(status="cancelled", finished_at=now, error=f"cancelled by {email}"))
        s.execute(update(WorkflowApproval).where(WorkflowApproval.run_id.in_(ids), WorkflowApproval.status == "pending")
                  .values(status="cancelled", decided_by=email, decided_at=now))
        s.execute(update(WorkflowStep).where(WorkflowStep.run_id.in_(ids), WorkflowStep.status.in_(("running", "waiting")))
                  .values(status="cancelled", finished_at=now))
    return run_status(db, run_id, email)


def prepare_retry(db: Database, run_id: str, email: str, *, org_slug: str | None = None) -> NewRun:
    """A new run of the same definition and inputs that reuses the outputs of the steps before the failed one."""
    with db.session() as s:
        run = _run_or_404(s, run_id)
        _reader(s, run, email, "workflow.retry", org_slug)
        if run.status not in ("failed", "cancelled"):
            raise InvalidInput(f"run {run_id} is {run.status}; only a failed or cancelled run can be retried")
        if run.parent_run_id:
            raise InvalidInput(f"run {run_id} is part of {run.parent_run_id}; retry that run")
        org = s.get(Organization, run.org_id)
        if org is None:
            raise NotFound(f"unknown run {run_id!r}")  # its organization is gone
        seed = retry_seed(s, run_id, run.definition)
        compiled = Compiled(Path(run.file), run.definition)
        inputs = dict(run.inputs)
        slug = org.slug
    return create_run(db, compiled, slug, email, inputs, retry_of=run_id, seed=seed)


def retry_seed(s: Any, run_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    """The outputs of run ``run_id``'s steps before its first unfinished one, which a retry reuses.

    Derived from the step rows, not stored with the retry, so a retry whose enqueue was lost is
    re-queued (``requeue_orphans``) with the same seed.
    """
    rows = {r.step_id: r for r in s.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id,
                                                                        WorkflowStep.item_index == -1))}
    seed: dict[str, Any] = {}
    for step in definition["steps"]:
        row = rows.get(step["id"])
        if row is None or row.status not in ("succeeded", "skipped", "reused"):
            break
        seed[step["id"]] = {"output": row.output, "status": "skipped" if row.status == "skipped" else "succeeded"}
    return seed
