"""Two syncs of one source at once (issue 16, finding 11).

As found: two first syncs of one source ran together and one failed with
exit 70 (``IntegrityError UNIQUE documents.source_id, external_id``). Now the
second one is refused at once with a one-line message and exit 75, in the
same process or another, on SQLite and PostgreSQL, and the first completes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cristal.db import Database
from cristal.errors import Busy
from cristal.identity import orgs
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.schema import Document
from cristal.knowledge.sync import SyncReport, sync_source

from .test_sync_kill import make_tree

BACKENDS = ("sqlite", "postgres")
INSTALLATION = Principal.installation("test-operator")
BUSY = "source 'notes' of 'acme' is being synced by another process; try again when it has finished"


def documents(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Document)) or 0


def can_write(db: Database) -> bool:
    """Whether nobody holds SQLite's write lock right now (PostgreSQL writers do not block each other here)."""
    if not db.is_sqlite:
        return True
    conn = sqlite3.connect(db.engine.url.database, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def stop_outside_a_write(proc: subprocess.Popen, db: Database) -> None:
    """SIGSTOP ``proc`` at a moment it holds no write transaction (the second sync must be able to write its audit record)."""
    for _ in range(500):
        os.kill(proc.pid, signal.SIGSTOP)
        if can_write(db):
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError("the first sync was always inside a write transaction")


def test_a_second_sync_during_a_first_one_is_refused_and_the_first_completes(db: Database, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", 30)
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        sources.add_source(s, INSTALLATION, "acme", "notes", "files", str(tree))
    first_is_indexing, second_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def pause_after_the_first_document(phase: str, done: int, total: int) -> None:
        if phase == "index" and done == 1:
            first_is_indexing.set()
            second_done.wait(60)

    def first() -> None:
        try:
            outcome["first"] = sync_source(db, INSTALLATION, "acme", "notes", embed=False, progress=pause_after_the_first_document)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever the first sync raised
            outcome["first"] = exc

    worker = threading.Thread(target=first)
    worker.start()
    assert first_is_indexing.wait(60)
    try:
        with pytest.raises(Busy, match="is being synced by another process"):
            sync_source(db, INSTALLATION, "acme", "notes", embed=False)
    finally:
        second_done.set()
        worker.join(120)
    report = outcome["first"]
    assert isinstance(report, SyncReport), report
    assert report.added == 30 and documents(db) == 30
    assert sync_source(db, INSTALLATION, "acme", "notes", embed=False).unchanged == 30  # the lock was released


def test_two_sync_processes_at_once(cli, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # the cli fixture is an untyped function with an env attribute
    tree = make_tree(tmp_path / "tree", 300)
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        sources.add_source(s, INSTALLATION, "acme", "notes", "files", str(tree))
    first = subprocess.Popen(
        [sys.executable, "-m", "cristal", "sync", "notes", "--org", "acme", "--keyword-only", "--json"],
        env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Hold the first sync still in the middle of its first sync, then start a second one.
        deadline = time.monotonic() + 120
        while first.poll() is None and documents(db) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, "the first sync must still be running"
        stop_outside_a_write(first, db)
        assert 0 < documents(db) < 300
        second = cli("sync", "notes", "--org", "acme", "--keyword-only")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.code == 75 and second.stderr.strip() == f"error: {BUSY}"
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert documents(db) == 300
    again = cli("sync", "notes", "--org", "acme", "--keyword-only")
    assert again.code == 0 and "300 unchanged" in again.stdout
