"""Checkpoints of research runs, in the database, so an interrupted run resumes where it stopped.

The notes of each run are one row of ``research_runs`` (see
:mod:`cristal.research.schema`), rewritten in one transaction after every
phase: a crash leaves the previous checkpoint intact, and any process on the
same database -- SQLite on one machine, PostgreSQL for many -- can resume it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.identity.directory import org_by_slug
from cristal.research.notes import Notes
from cristal.research.schema import ResearchRun

CHECKPOINT_ID = re.compile(r"^[0-9a-f]{12}$")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def check_id(run_id: str | None) -> str:
    if run_id is None or not CHECKPOINT_ID.match(run_id):
        raise InvalidInput(f"not a research run id: {run_id!r} (12 hexadecimal characters)")
    return run_id


class CheckpointStore:
    """Research notes by checkpoint id, in the ``research_runs`` table of ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, run_id: str, notes: Notes, result: dict[str, Any] | None = None, *,
             workflow_run_id: str | None = None) -> None:
        check_id(run_id)
        with self.db.session() as s:
            row = s.get(ResearchRun, run_id)
            org_id = org_by_slug(s, notes.org).id
            if row is None:
                row = ResearchRun(id=run_id, org_id=org_id, principal=notes.principal,
                                  question=notes.question, created_at=utcnow())
                s.add(row)
            elif (row.org_id, row.principal) != (org_id, notes.principal):
                # Never overwrite someone else's notes (checkpoint ids are chosen so this does not happen).
                raise AccessDenied(f"research run {run_id} belongs to someone else")
            row.notes = notes.as_dict()
            row.result = result
            row.status = (result or {}).get("status") or "running"
            row.updated_at = utcnow()
            if workflow_run_id is not None:
                row.workflow_run_id = workflow_run_id

    def owner(self, run_id: str) -> tuple[int, str] | None:
        """(organization id, principal label) of checkpoint ``run_id``; ``None`` if there is none."""
        with self.db.session() as s:
            row = s.get(ResearchRun, check_id(run_id))
            return None if row is None else (row.org_id, row.principal)

    def exists(self, run_id: str) -> bool:
        with self.db.session() as s:
            return s.get(ResearchRun, check_id(run_id)) is not None

    def load(self, run_id: str) -> tuple[Notes, dict[str, Any] | None]:
        with self.db.session() as s:
            row = s.get(ResearchRun, check_id(run_id))
            if row is None:
                raise NotFound(f"no research run {run_id}")
            notes, result = row.notes, row.result
        try:
            return Notes.from_dict(notes), result
        except (TypeError, KeyError, ValueError) as exc:
            raise InvalidInput(f"the checkpoint of research run {run_id} is unreadable: {exc}") from None

    def workflow_run_of(self, run_id: str) -> str | None:
        """The workflow run that last worked on checkpoint ``run_id`` (``NotFound`` if there is none)."""
        with self.db.session() as s:
            row = s.get(ResearchRun, check_id(run_id))
            if row is None:
                raise NotFound(f"no research run {run_id}")
            return row.workflow_run_id
