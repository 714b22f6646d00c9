"""Per-organization rate and concurrency limits on step kinds, enforced across every worker.

An admin sets, for one organization and one action kind (``llm``, ``http``, ``sql``, ``python``,
``research``, ``operate``), a maximum number of actions in flight and/or a maximum number started
per period (``cristal workflow limits``). Each step action of that kind first takes a *slot*:

* one transaction serializes the organization's takers of that kind — it starts by touching the
  ``workflow_limits`` row, which is a row lock on PostgreSQL and the write lock on SQLite — then
  counts the slots in flight (unreleased, held by an executor whose heartbeat is fresh) and the
  slots started within the period, and inserts a slot only under both limits;
* otherwise the action waits (exactly until the rate window frees up, or polling with jitter for
  a concurrency slot) and tries again; retries of a failed action take a new slot each attempt,
  so a backoff sleep never holds one.

Why not DBOS queues: a DBOS queue limits *workflows*; limiting a step would make each limited
step a child workflow with its own queue per organization and kind, a polling thread per queue
in every worker and up to a polling interval of added latency. A slot costs two small writes and
nothing while no limit is set. A killed worker's slots stop counting as soon as its executor row
is gone or stale (the same liveness test that hands its runs to another worker).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.durable.durations import parse_duration
from cristal.durable.runtime import STALE_AFTER_SECONDS
from cristal.durable.schema import WorkflowExecutor, WorkflowLimit, WorkflowStepSlot
from cristal.durable.store import rows_changed
from cristal.errors import InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, member

LIMITED_KINDS = ("llm", "http", "sql", "python", "research", "operate")
CACHE_SECONDS = 2.0
POLL_MIN, POLL_MAX = 0.05, 0.5
KEEP_RELEASED = timedelta(minutes=5)
MIN_PERIOD = 0.001  # a rate window shorter than a millisecond counts nothing: no limit at all
MAX_PERIOD = 366 * 86400.0



class _LimitCache:
    """Whether (organization, kind) has a limit, as read at most ``CACHE_SECONDS`` ago; one per database."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, str], tuple[float, bool]] = {}
        self.lock = threading.Lock()



def parse_rate(text: str) -> tuple[int, float]:
    """``"10/s"``, ``"600/m"``, ``"5/10s"``, ``"2"`` (per second) → (limit, period seconds)."""
    raw = str(text).strip()
    count, _, per = raw.partition("/")
    try:
        limit = int(count)
        period = parse_duration(("1" + per) if per[:1].isalpha() else per) if per else 1.0
    except ValueError:
        raise InvalidInput(f"invalid rate {raw!r}: use N/PERIOD, e.g. 10/s, 600/m or 5/10s") from None
    if limit < 1:
        raise InvalidInput(f"invalid rate {raw!r}: at least 1 per period")
    # parse_duration refuses zero, but not a period too short to count anything in, nor one too
    # long for a datetime window (an OverflowError would then fail every step of the kind).
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        raise InvalidInput(f"invalid rate {raw!r}: the period must be from {MIN_PERIOD:g}s to {MAX_PERIOD / 86400:g} days")
    return limit, period


def set_limits(db: Database, org_slug: str, email: str, kind: str, *, max_concurrent: int | None = None,
               rate: str | None = None, clear: bool = False) -> dict[str, Any]:
    """Set (or with ``clear`` remove) the limits of one step kind in an organization (admins)."""
    if kind not in LIMITED_KINDS:
        raise InvalidInput(f"invalid step kind {kind!r} for limits: use one of {', '.join(LIMITED_KINDS)}")
    if max_concurrent is not None and max_concurrent < 1:
        raise InvalidInput("--concurrency must be at least 1")
    parsed = parse_rate(rate) if rate is not None else None
    if not clear and max_concurrent is None and parsed is None:
        # A row without either limit would make every step of the kind take slots for nothing.
        raise InvalidInput("give --concurrency N and/or --rate N/PERIOD, or --clear to remove the limits")
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        require(s, principal, "workflow.limits", in_org(org, "workflow-limits", kind),
                details={"kind": kind, "max_concurrent": max_concurrent, "rate": rate, "clear": clear})
        row = s.get(WorkflowLimit, (org.id, kind))
        if clear:
            if row is not None:
                s.delete(row)
        else:
            if row is None:
                row = WorkflowLimit(org_id=org.id, kind=kind)
                s.add(row)
            if max_concurrent is not None:
                row.max_concurrent = max_concurrent
            if parsed is not None:
                row.rate_limit, row.rate_period = parsed
            row.updated_at = utcnow()
    return {"org": org_slug, "limits": list_limits(db, org_slug, email)}


def list_limits(db: Database, org_slug: str, email: str) -> list[dict[str, Any]]:
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        require(s, principal, "workflow.deployments", in_org(org, "workflow-limits"))
        rows = s.scalars(select(WorkflowLimit).where(WorkflowLimit.org_id == org.id).order_by(WorkflowLimit.kind))
        return [{"kind": r.kind, "max_concurrent": r.max_concurrent,
                 "rate": f"{r.rate_limit}/{r.rate_period:g}s" if r.rate_limit else None} for r in rows]


def _limited(db: Database, org_id: int, kind: str) -> bool:
    """Whether a limit exists (cached briefly: a step of an unlimited kind costs no query)."""
    cache = db.attached("durable.limits", _LimitCache)
    key = (org_id, kind)
    now = time.monotonic()
    with cache.lock:
        hit = cache.seen.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    with db.session() as s:
        found = s.get(WorkflowLimit, (org_id, kind)) is not None
    with cache.lock:
        cache.seen[key] = (now, found)
    return found


def _try_take(db: Database, org_id: int, kind: str, executor_id: str, step_key: str) -> tuple[int | None, float]:
    """One attempt: ``(slot id, 0)`` or ``(None, seconds to wait)``."""
    now = utcnow()
    with db.session() as s:
        # The first statement writes: PostgreSQL locks the row, SQLite takes its write lock, so
        # the counts below cannot change until this transaction ends.
        touched = s.execute(update(WorkflowLimit).where(WorkflowLimit.org_id == org_id, WorkflowLimit.kind == kind)
                            .values(updated_at=WorkflowLimit.updated_at).execution_options(synchronize_session=False))
        limit = s.get(WorkflowLimit, (org_id, kind)) if rows_changed(touched) else None
        if limit is None:
            return -1, 0.0  # the limit was removed meanwhile
        mine = (WorkflowStepSlot.org_id == org_id, WorkflowStepSlot.kind == kind)
        if limit.max_concurrent:
            fresh = now - timedelta(seconds=STALE_AFTER_SECONDS)
            live = select(WorkflowExecutor.id).where(WorkflowExecutor.last_seen >= fresh)
            in_flight = s.scalar(select(func.count()).select_from(WorkflowStepSlot)
                                 .where(*mine, WorkflowStepSlot.released_at.is_(None),
                                        WorkflowStepSlot.executor_id.in_(live)))
            if (in_flight or 0) >= limit.max_concurrent:
                return None, -1.0
        if limit.rate_limit and limit.rate_period:
            window = now - timedelta(seconds=limit.rate_period)
            starts = list(s.scalars(select(WorkflowStepSlot.started_at).where(*mine, WorkflowStepSlot.started_at > window)
                                    .order_by(WorkflowStepSlot.started_at.desc()).limit(limit.rate_limit)))
            if len(starts) >= limit.rate_limit:
                # The oldest of the last ``limit`` starts leaves the window at this moment.
                return None, max(0.01, (starts[-1] - window).total_seconds())
        slot = WorkflowStepSlot(org_id=org_id, kind=kind, executor_id=executor_id, step_key=step_key[:300], started_at=now)
        s.add(slot)
        s.flush()
        return slot.id, 0.0


@contextmanager
def slot(db: Database, org_id: int, kind: str, step_key: str, executor_id: str) -> Iterator[None]:
    """Hold one slot of ``kind`` in the organization for the body (no-op without a limit)."""
    if kind not in LIMITED_KINDS or not _limited(db, org_id, kind):
        yield
        return
    poll = POLL_MIN
    while True:
        slot_id, wait = _try_take(db, org_id, kind, executor_id, step_key)
        if slot_id is not None:
            break
        if wait < 0:  # concurrency: someone must finish first
            wait = poll * random.uniform(0.5, 1.5)
            poll = min(POLL_MAX, poll * 1.5)
        time.sleep(wait)
    if slot_id == -1:
        yield
        return
    try:
        yield
    finally:
        with db.session() as s:
            s.execute(update(WorkflowStepSlot).where(WorkflowStepSlot.id == slot_id).values(released_at=utcnow()))


def sweep(db: Database) -> None:
    """Forget slots no limit can count any more: released before the longest rate window, or held
    by an executor that is gone."""
    with db.session() as s:
        longest = s.scalar(select(func.max(WorkflowLimit.rate_period))) or 0.0
        keep = max(KEEP_RELEASED, timedelta(seconds=float(longest)))
        s.execute(delete(WorkflowStepSlot).where(WorkflowStepSlot.started_at < utcnow() - keep,
                                                 (WorkflowStepSlot.released_at.is_not(None))
                                                 | WorkflowStepSlot.executor_id.not_in(select(WorkflowExecutor.id))))
