"""``cristal worker``: runs queued runs, resumes pending ones, takes over runs of dead processes,
and fires the cron schedules of deployed workflows (any number of workers may run: each firing
starts one run, see ``deployments``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from cristal.config import Settings
from cristal.db import Database

SCAN_SECONDS = 1.0


def run_worker(db: Database, settings: Settings, *, concurrency: int = 16, note: Callable[[str], None] = lambda _m: None,
               stop: threading.Event | None = None) -> None:
    """Until SIGTERM/SIGINT (or ``stop``): dequeue runs and recover the runs of executors that are gone."""
    import cristal.workflows.engine  # noqa: F401 - registers the DBOS workflow runs execute, before DBOS launches
    from cristal.durable.limits import sweep
    from cristal.durable.runtime import launch, shutdown
    from cristal.workflows.deployments import fire_due, requeue_orphans

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    runtime = launch(db, settings, kind="worker", worker_concurrency=concurrency)
    note(f"worker {runtime.executor_id} started")
    scans = 0
    try:
        while not stop.is_set():
            try:
                dead = runtime.recover_dead()
                if dead:
                    note(f"took over the runs of {len(dead)} stopped process(es)")
            except Exception as exc:  # noqa: BLE001 - keep serving; the next scan retries
                note(f"recovery scan failed: {type(exc).__name__}: {exc}")
            try:
                fired = fire_due(db)
                if fired:
                    note(f"schedules started {len(fired)} run(s): {', '.join(fired)}")
                scans += 1
                if scans % 30 == 1:  # housekeeping, not per scan
                    requeue_orphans(db)
                    sweep(db)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next scan retries
                note(f"schedule scan failed: {type(exc).__name__}: {exc}")
            stop.wait(SCAN_SECONDS)
    finally:
        note("worker stopping")
        shutdown()
