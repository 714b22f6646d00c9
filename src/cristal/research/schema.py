"""The research layer's table: the checkpointed notes of every research run.

A research run saves its notes here after every phase, so any process that
reaches the same database -- the foreground ``cristal research``, or a
``cristal worker`` on another machine taking over a run whose process died --
resumes it where it stopped, without repeating searches or model calls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cristal.db.schema import Base, UTCDateTime, utcnow


class ResearchRun(Base):
    __tablename__ = "research_runs"
    __table_args__ = (Index("ix_research_runs_org_created", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the checkpoint id (12 hex)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    principal: Mapped[str] = mapped_column(String(400))  # who asked; only they may resume
    question: Mapped[str] = mapped_column(Text)
    # The durable workflow run that last worked on these notes (a resume after a failure is a new run).
    workflow_run_id: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, complete, partial, no_results
    notes: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
