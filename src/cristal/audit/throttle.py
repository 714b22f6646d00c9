"""Audit records for what anyone can repeat at will, a bounded number of times per window.

A wrong API key or a request for someone else's run costs the caller
nothing, so recording every one would let them fill the audit trail (which is
append-only and never pruned). ``AuditThrottle.record`` writes an event in
full only while each of its buckets (for example "failed keys from this
address" and "failed keys for this organization") is under its limit for the
current window; beyond that the event is only counted. ``sweep`` then writes
one summary record per bucket whose window is over: "N more ... suppressed".

The counts live in the database (``audit_windows``), not in memory, so every
server process on one database shares them: the limit holds for the
installation, not per process. A count and its full record are written in
one transaction; a summary is claimed with a conditional update, so when
several processes sweep at once exactly one writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from cristal.audit.log import record_values
from cristal.db import Database
from cristal.db.schema import AuditRecord, AuditWindow, utcnow


@dataclass(frozen=True)
class Bucket:
    """One limit an event counts against, and what its summary record says."""

    key: str  # what is counted together, e.g. "apikey.authenticate|org:-|source:203.0.113.9"
    limit: int  # full records per window
    actor: str  # the summary's actor: the source or caller the bucket is about
    resource: str  # the summary's resource: what was asked for, in general ("apikey", "GET /api/v1/...")
    scope: str  # for the summary's reason: "per source address", "per caller", ...


@dataclass(frozen=True)
class Event:
    """One refusal to record: the audit record's columns."""

    org_id: int | None
    org_slug: str | None
    actor: str
    action: str
    resource: str
    reason: str
    request_id: str | None = None
    details: dict[str, Any] | None = None


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


class AuditThrottle:
    """Writes refusals to the audit trail, at most ``limit`` per bucket per window; counts the rest."""

    def __init__(self, db: Database, *, window_seconds: int = 300, clock: Callable[[], datetime] = utcnow) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self.db = db
        self.window_seconds = window_seconds
        self.clock = clock

    def record(self, event: Event, buckets: Sequence[Bucket], *, now: datetime | None = None) -> bool:
        """Record ``event`` in full if every bucket has room this window; ``False`` if it was only counted.

        The buckets are counted in order and counting stops at the first full
        one, so each suppressed event is counted exactly once, by the bucket
        that refused it (and its summary says so).
        """
        moment = now or self.clock()
        start = _epoch(moment) // self.window_seconds * self.window_seconds
        with self.db.engine.begin() as conn:
            for bucket in buckets:
                if self._count(conn, bucket, event, start) > bucket.limit:
                    return False
            conn.execute(insert(AuditRecord), [record_values(
                org_id=event.org_id, org_slug=event.org_slug, actor=event.actor, action=event.action,
                resource=event.resource, decision="deny", reason=event.reason, request_id=event.request_id,
                details=event.details, at=moment)])
        return True

    def _count(self, conn: Connection, bucket: Bucket, event: Event, start: int) -> int:
        """Add one to the bucket's count for the window at ``start`` (creating its row) and return the count."""
        row = {"bucket": bucket.key[:300], "window_start": start, "window_end": start + self.window_seconds,
               "allowed": bucket.limit, "count": 1, "summarized": False, "org_id": event.org_id,
               "org_slug": event.org_slug, "actor": bucket.actor[:400], "action": event.action,
               "resource": bucket.resource[:500], "scope": bucket.scope[:100]}
        # One statement, so two processes counting at once both see a count that includes the other.
        key, add_one = ["bucket", "window_start"], {"count": AuditWindow.count + 1}
        if conn.dialect.name == "postgresql":
            on_pg = postgresql.insert(AuditWindow).values(**row).on_conflict_do_update(index_elements=key, set_=add_one)
            return int(conn.execute(on_pg.returning(AuditWindow.count)).scalar_one())
        on_sqlite = sqlite.insert(AuditWindow).values(**row).on_conflict_do_update(index_elements=key, set_=add_one)
        return int(conn.execute(on_sqlite.returning(AuditWindow.count)).scalar_one())

    def sweep(self, *, now: datetime | None = None) -> int:
        """Write the summary of every window that is over and suppressed something; returns how many were written.

        Windows that are over are then deleted: their counts are not needed
        any more, and the summary records stay in the audit trail.
        """
        moment = now or self.clock()
        current = _epoch(moment)
        written = 0
        with self.db.engine.connect() as conn:
            closed = list(conn.execute(select(AuditWindow).where(
                AuditWindow.summarized.is_(False), AuditWindow.window_end <= current,
                AuditWindow.count > AuditWindow.allowed)))
        for row in closed:
            with self.db.engine.begin() as conn:
                claimed = conn.execute(update(AuditWindow).where(
                    AuditWindow.bucket == row.bucket, AuditWindow.window_start == row.window_start,
                    AuditWindow.summarized.is_(False)).values(summarized=True)).rowcount
                if claimed != 1:  # another process summarized it a moment ago
                    continue
                conn.execute(insert(AuditRecord), [_summary(row, moment)])
                written += 1
        with self.db.engine.begin() as conn:
            conn.execute(delete(AuditWindow).where(
                AuditWindow.window_end <= current,
                or_(AuditWindow.summarized.is_(True), AuditWindow.count <= AuditWindow.allowed)))
        return written


def _summary(row: Any, at: datetime) -> dict[str, Any]:
    suppressed = row.count - row.allowed
    window = row.window_end - row.window_start
    return record_values(
        org_id=row.org_id, org_slug=row.org_slug, actor=row.actor, action=row.action, resource=row.resource,
        decision="deny",
        reason=(f"{suppressed} more suppressed between {_iso(row.window_start)} and {_iso(row.window_end)} UTC "
                f"(at most {row.allowed} recorded in full {row.scope} per {window} s)"),
        details={"suppressed": suppressed, "recorded": row.allowed, "window_start": _iso(row.window_start),
                 "window_end": _iso(row.window_end), "bucket": row.bucket},
        at=at)
