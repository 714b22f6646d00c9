"""Tables of the durable runtime: runs, their steps, approvals, live executors and limits.

DBOS's own system tables (in a separate schema on PostgreSQL, a sibling file on
SQLite) are the source of truth for execution and checkpoints; these tables
are Cristal's view of a run — owner, organization, per-step state, outputs,
timings and errors — written as the run goes and safe to rewrite on replay.
Their names keep the ``workflow_`` prefix they had when only workflows were runs
(research and Operator tasks are runs too); renaming them would be a migration
for nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cristal.db.schema import NEVER_REUSE_IDS, Base, BigId, UTCDateTime, utcnow


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (Index("ix_workflow_runs_org_created", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    owner_user_id: Mapped[int | None] = mapped_column(Integer)
    owner_email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    file: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict] = mapped_column(JSON)
    inputs: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    parent_run_id: Mapped[str | None] = mapped_column(String(200), index=True)
    retry_of: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSON)
    # Set for runs of a deployment (by hand, over HTTP or by its schedule).
    deployment_id: Mapped[int | None] = mapped_column(Integer, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300))


class WorkflowStep(Base):
    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("run_id", "step_id", "item_index", name="uq_workflow_steps_run_step_item"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(63))
    # -1 is the step as a whole; 0.. are for_each items.
    item_index: Mapped[int] = mapped_column(Integer, default=-1)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    output: Mapped[dict | list | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class WorkflowApproval(Base):
    """A human approval a subject waits for: a workflow run's step, or an agent conversation's tool call.

    ``subject`` says which: for ``workflow``, ``run_id`` is a ``workflow_runs`` id; for ``conversation``, it is
    the conversation's id and ``step_id`` the tool call's key. So ``run_id`` names no table (no foreign key);
    the row goes with its organization. ``details`` is what the approver is shown besides the message (for a
    conversation: the exact tool call, fixed when it was requested).
    """

    __tablename__ = "workflow_approvals"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_workflow_approvals_run_step"),
        Index("ix_workflow_approvals_org_status", "org_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(20), default="workflow")
    run_id: Mapped[str] = mapped_column(String(200))
    step_id: Mapped[str] = mapped_column(String(63))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    details: Mapped[dict | None] = mapped_column(JSON)
    owner_email: Mapped[str] = mapped_column(String(320))
    workflow_name: Mapped[str] = mapped_column(String(200))
    approvers: Mapped[list] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    on_timeout: Mapped[str] = mapped_column(String(10), default="fail")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(400))
    comment: Mapped[str | None] = mapped_column(Text)


class WorkflowExecutor(Base):
    """A live process that executes runs (a worker or a foreground runner), with its heartbeat."""

    __tablename__ = "workflow_executors"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowLimit(Base):
    """Per-organization limits on one step kind, enforced across every worker."""

    __tablename__ = "workflow_limits"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    rate_period: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowStepSlot(Base):
    """One limited step action in flight (or recently started, for the rate window).

    A slot counts against ``max_concurrent`` until released, and only while its
    executor is alive (so a killed worker's slots free themselves); it counts
    against the rate window by ``started_at`` until the window has passed.
    """

    __tablename__ = "workflow_step_slots"
    __table_args__ = (Index("ix_workflow_step_slots_org_kind_started", "org_id", "kind", "started_at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    executor_id: Mapped[str] = mapped_column(String(100))
    step_key: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
