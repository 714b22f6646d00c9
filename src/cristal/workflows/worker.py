"""``cristal worker``: runs queued runs, resumes pending ones, takes over runs of dead processes."""

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
    from cristal.workflows.engine import launch, recover_dead, shutdown

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    executor = launch(db, settings, kind="worker", worker_concurrency=concurrency)
    note(f"worker {executor} started")
    try:
        while not stop.is_set():
            try:
                dead = recover_dead(db)
                if dead:
                    note(f"took over the runs of {len(dead)} stopped process(es)")
            except Exception as exc:  # noqa: BLE001 - keep serving; the next scan retries
                note(f"recovery scan failed: {type(exc).__name__}: {exc}")
            stop.wait(SCAN_SECONDS)
    finally:
        note("worker stopping")
        shutdown()
