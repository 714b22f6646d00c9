"""Tables of the workflow layer: deployments (named, optionally scheduled workflows).

The tables of runs, steps, approvals, executors and limits belong to the
durable runtime (:mod:`cristal.durable.schema`) and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cristal.db.schema import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow
from cristal.durable.schema import (
    WorkflowApproval,
    WorkflowExecutor,
    WorkflowLimit,
    WorkflowRun,
    WorkflowStep,
    WorkflowStepSlot,
)

__all__ = ["WorkflowApproval", "WorkflowDeployment", "WorkflowExecutor", "WorkflowLimit", "WorkflowRun", "WorkflowStep",
           "WorkflowStepSlot"]


class WorkflowDeployment(Base):
    """A named, validated workflow stored in an organization; optionally fired by a cron schedule.

    The definition is the compiled (validated, JSON) form, so a deployment never
    depends on a file on some machine; ``source`` keeps the text it came from.
    """

    __tablename__ = "workflow_deployments"
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_workflow_deployments_org_name"),
        Index("ix_workflow_deployments_next_fire", "next_fire_at"),
        NEVER_REUSE_IDS,  # runs name their deployment by id
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    workflow: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict] = mapped_column(JSON)
    inputs: Mapped[dict] = mapped_column(JSON)
    schedule: Mapped[str | None] = mapped_column(String(120))
    deployed_by_user_id: Mapped[int | None] = mapped_column(Integer)
    deployed_by_email: Mapped[str] = mapped_column(String(320))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The next cron time to fire; NULL when unscheduled or paused. Workers claim a
    # firing by moving this forward with a compare-and-set, so one firing starts one run.
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_reason: Mapped[str | None] = mapped_column(Text)
