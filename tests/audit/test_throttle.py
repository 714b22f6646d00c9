"""The audit throttle: full records up to a limit per window, a count beyond it, one summary per window.

Time is passed in explicitly (``now=``), so no test waits for a window to end.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from cristal.audit.log import AuditEntry, query_audit
from cristal.audit.throttle import AuditThrottle, Bucket, Event
from cristal.db import Database
from cristal.db.schema import AuditRecord, AuditWindow

BACKENDS = ("sqlite", "postgres")

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # the start of a 300 s window
ACTION = "apikey.authenticate"


def event(source: str = "203.0.113.9") -> Event:
    return Event(org_id=None, org_slug=None, actor=f"anonymous:{source}", action=ACTION, resource="apikey",
                 reason="invalid API key", details={"source": source})


def by_source(source: str = "203.0.113.9", limit: int = 3) -> Bucket:
    return Bucket(f"{ACTION}|source:{source}", limit, f"anonymous:{source}", "apikey", "per source address")


def everyone(limit: int) -> Bucket:
    return Bucket(f"{ACTION}|all", limit, "anonymous", "apikey", "for the installation")


def records(db: Database) -> list[AuditEntry]:
    with db.session() as s:
        return query_audit(s, None, action=ACTION)


def test_beyond_the_limit_events_are_counted_and_summarized_once(db: Database) -> None:
    throttle = AuditThrottle(db, window_seconds=300)
    written = [throttle.record(event(), [by_source()], now=T0 + timedelta(seconds=n)) for n in range(7)]
    assert written == [True, True, True, False, False, False, False]
    assert len(records(db)) == 3
    assert throttle.sweep(now=T0 + timedelta(seconds=299)) == 0  # the window is still open
    assert throttle.sweep(now=T0 + timedelta(seconds=300)) == 1
    summary = records(db)[0]
    assert summary.actor == "anonymous:203.0.113.9" and summary.decision == "deny" and summary.resource == "apikey"
    assert summary.reason.startswith("4 more suppressed between 2026-03-02 09:00:00 and 2026-03-02 09:05:00 UTC")
    assert "at most 3 recorded in full per source address per 300 s" in summary.reason
    assert summary.details["suppressed"] == 4
    assert throttle.sweep(now=T0 + timedelta(seconds=900)) == 0
    assert len(records(db)) == 4
    with db.session() as s:  # the counts are gone, the records stay
        assert s.scalar(select(func.count()).select_from(AuditWindow)) == 0
    # A new window starts afresh.
    assert throttle.record(event(), [by_source()], now=T0 + timedelta(seconds=301))


def test_a_window_that_suppressed_nothing_leaves_no_summary(db: Database) -> None:
    throttle = AuditThrottle(db, window_seconds=60)
    assert throttle.record(event(), [by_source()], now=T0)
    assert throttle.sweep(now=T0 + timedelta(hours=1)) == 0
    assert len(records(db)) == 1


def test_each_suppressed_event_is_counted_by_the_bucket_that_refused_it(db: Database) -> None:
    throttle = AuditThrottle(db, window_seconds=300)
    for source in ("198.51.100.1",) * 3 + ("198.51.100.2",) * 3:
        throttle.record(event(source), [by_source(source, limit=2), everyone(limit=3)], now=T0)
    assert len(records(db)) == 3  # two from .1, then the installation-wide limit lets one of .2 through
    assert throttle.sweep(now=T0 + timedelta(seconds=300)) == 3
    summaries = {r.actor: r.details["suppressed"] for r in records(db) if r.details.get("suppressed")}
    assert summaries == {"anonymous:198.51.100.1": 1, "anonymous:198.51.100.2": 1, "anonymous": 1}
    assert sum(summaries.values()) == 6 - 3


def test_two_processes_share_one_count_and_write_one_summary(db: Database, db_url: str) -> None:
    # Two Database objects on one URL are what two `cristal serve` processes have.
    other = Database(db_url)
    try:
        a, b = AuditThrottle(db, window_seconds=300), AuditThrottle(other, window_seconds=300)
        for n in range(10):
            (a if n % 2 else b).record(event(), [by_source(limit=4)], now=T0 + timedelta(seconds=n))
        assert len(records(db)) == 4
        later = T0 + timedelta(seconds=600)
        done: list[int] = []
        sweepers = [threading.Thread(target=lambda t=t: done.append(t.sweep(now=later))) for t in (a, b, a, b)]
        for t in sweepers:
            t.start()
        for t in sweepers:
            t.join()
        assert sorted(done) == [0, 0, 0, 1]
        assert [r.details["suppressed"] for r in records(db) if r.details.get("suppressed")] == [6]
    finally:
        other.dispose()


def test_concurrent_failures_never_exceed_the_limit(db: Database) -> None:
    throttle = AuditThrottle(db, window_seconds=300)
    results: list[bool] = []
    lock = threading.Lock()

    def attack() -> None:
        for _ in range(5):
            ok = throttle.record(event(), [by_source(limit=10)], now=T0)
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=attack) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 10 and len(results) == 30
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == ACTION)) == 10
        assert s.scalar(select(AuditWindow.count)) == 30
