"""``cristal worker``: runs queued runs, resumes pending ones, takes over runs of dead processes,
and fires the cron schedules of deployed workflows (any number of workers may run: each firing
starts one run, see ``deployments``)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cristal.config import Settings
from cristal.db import Database

SCAN_SECONDS = 1.0


@dataclass(frozen=True)
class Chore:
    """A periodic job the worker runs between scans; ``run`` returns a line to note, or ``None``."""

    name: str
    every_seconds: float
    run: Callable[[], str | None]


def run_worker(db: Database, settings: Settings, *, concurrency: int = 16, note: Callable[[str], None] = lambda _m: None,
               stop: threading.Event | None = None, chores: Sequence[Chore] = ()) -> None:
    """Until SIGTERM/SIGINT (or ``stop``): dequeue runs and recover the runs of executors that are gone.

    ``chores`` are the upper layers' periodic jobs (the CLI passes the conversation purge): each runs at start
    and then every ``every_seconds``; a failing one is noted and tried again at its next time.
    """
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
    due = {chore.name: 0.0 for chore in chores}
    try:
        while not stop.is_set():
            for chore in chores:
                if time.monotonic() >= due[chore.name]:
                    due[chore.name] = time.monotonic() + chore.every_seconds
                    try:
                        line = chore.run()
                        if line:
                            note(line)
                    except Exception as exc:  # noqa: BLE001 - keep serving; the chore runs again at its next time
                        note(f"{chore.name} failed: {type(exc).__name__}: {exc}")
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
