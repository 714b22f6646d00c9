"""Cristal's view of runs in its own tables (idempotent writes: replays rewrite the same state)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.exc import IntegrityError

from cristal.db import Database
from cristal.db.schema import Organization, utcnow
from cristal.durable.schema import WorkflowRun, WorkflowStep
from cristal.errors import CristalError, NotFound
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal

TERMINAL = ("succeeded", "failed", "rejected", "cancelled")


class OwnerGone(CristalError):
    """The run's organization or owner no longer exists (the step that needed them fails)."""


def run_owner(s: Any, org_id: int, email: str) -> tuple[Organization, Principal]:
    """A run's owner as of now: current groups and role (a removed user fails the step)."""
    org = s.get(Organization, org_id)
    if org is None:
        raise OwnerGone("the run's organization no longer exists")
    try:
        return org, resolve_principal(s, org.slug, email)
    except NotFound as exc:
        raise OwnerGone(f"the run's owner is gone: {exc}") from None


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through a session changed (a compare-and-set's outcome)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def set_run_status(db: Database, run_id: str, status: str, *, error: str | None = None, result: Any = None) -> None:
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if status == "running":
        with db.session() as s:
            run = s.get(WorkflowRun, run_id)
            if run is None or run.status in TERMINAL:
                return
            run.status = "running"
            run.started_at = run.started_at or now
        return
    if status in TERMINAL:
        values.update(finished_at=now, error=error, result=result)
    with db.session() as s:
        s.execute(update(WorkflowRun).where(WorkflowRun.id == run_id, WorkflowRun.status.not_in(TERMINAL)).values(**values))


def step_started(db: Database, run_id: str, step_id: str, item: int, position: int, kind: str, key: str | None) -> None:
    with db.session() as s:
        row = s.scalar(select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.step_id == step_id,
                                                  WorkflowStep.item_index == item))
        if row is None:
            s.add(WorkflowStep(run_id=run_id, step_id=step_id, item_index=item, position=position, kind=kind,
                               status="running", attempts=0, idempotency_key=key, started_at=utcnow()))
        elif row.status in ("running", "waiting"):
            row.started_at = row.started_at or utcnow()
    # A concurrent writer (a fan-out item) may have inserted the row first; the select above covers replays.


def step_finished(db: Database, run_id: str, step_id: str, item: int, position: int, kind: str, status: str, *,
                  output: Any = None, error: str | None = None, attempts: int | None = None) -> None:
    for _ in range(2):
        try:
            with db.session() as s:
                row = s.scalar(select(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.step_id == step_id,
                                                          WorkflowStep.item_index == item))
                now = utcnow()
                if row is None:
                    row = WorkflowStep(run_id=run_id, step_id=step_id, item_index=item, position=position, kind=kind,
                                       started_at=now, attempts=0)
                    s.add(row)
                elif row.status in ("succeeded", "failed", "skipped", "reused") and row.status == status:
                    return  # replay of a step already recorded
                row.status = status
                row.output = output
                row.error = error
                row.finished_at = now
                if attempts is not None:
                    row.attempts = max(row.attempts or 0, attempts)
            return
        except IntegrityError:
            continue


def step_waiting(db: Database, run_id: str, step_id: str, position: int) -> None:
    with db.session() as s:
        s.execute(update(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.step_id == step_id,
                                             WorkflowStep.item_index == -1, WorkflowStep.status == "running")
                  .values(status="waiting"))
        s.execute(update(WorkflowRun).where(WorkflowRun.id == run_id, WorkflowRun.status == "running").values(status="waiting"))


def step_resumed(db: Database, run_id: str, step_id: str) -> None:
    with db.session() as s:
        s.execute(update(WorkflowStep).where(WorkflowStep.run_id == run_id, WorkflowStep.step_id == step_id,
                                             WorkflowStep.item_index == -1, WorkflowStep.status == "waiting")
                  .values(status="running"))
        s.execute(update(WorkflowRun).where(WorkflowRun.id == run_id, WorkflowRun.status == "waiting").values(status="running"))
