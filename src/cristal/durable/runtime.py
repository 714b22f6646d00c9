"""The DBOS runtime of this process: launch, shutdown, executors and their heartbeat, recovery, takeover.

How DBOS is used
----------------
* Every run (a workflow, ``cristal research``, ``cristal operate``) is one
  DBOS workflow, registered by the workflow interpreter under ``RUN_WORKFLOW``;
  the DBOS workflow id *is* the Cristal run id.
* Storage: DBOS's system tables live in PostgreSQL schema ``dbos`` of the same
  database, or on SQLite in a sibling file ``<name>-dbos.db`` opened through
  an engine in WAL mode (DBOS's own SQLite engine uses a rollback journal).
* Each process that runs runs gets its own DBOS executor id and a heartbeat
  row in ``workflow_executors``; ``cristal worker`` recovers PENDING runs of
  executors that are gone (dead pid on this host, or, on any host, no
  heartbeat for ``STALE_AFTER_SECONDS``). DBOS's recovery re-enqueues such a
  run and its dequeue admits one runner, so several workers recovering the
  same dead executor at once still resume each run once.
* Processes that only enqueue or wake runs (the HTTP server, ``cristal
  approvals``) use one DBOS client per database (:func:`client`).

State
-----
DBOS keeps one instance per process and calls a run's workflow function with
the run's input alone, so that function finds the :class:`Runtime` launched in
this process through :func:`current` -- the one process-wide slot. Everything
else hangs off an object that is passed around: the runtime (executor,
heartbeat, what a foreground caller hands to its run's steps in
:class:`RunExtras`), or the :class:`~cristal.db.Database` (its DBOS client, the
limit cache).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID, WorkflowHandle
from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.engine import Engine, make_url

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.durable.schema import WorkflowExecutor
from cristal.errors import InvalidInput

APP_NAME = "cristal"
APP_VERSION = "cristal-workflows-1"
RUN_QUEUE = "cristal-runs"
RUN_WORKFLOW = "cristal_run"  # the DBOS workflow that executes every run (see cristal.workflows.engine)
HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 30.0

T = TypeVar("T")


# ---------------------------------------------------------------------------
# DBOS's system database


def _sqlite_dbos_path(db: Database) -> Path:
    database = make_url(db.url).database
    if not database or database == ":memory:":
        raise InvalidInput("workflows need a database file or PostgreSQL, not an in-memory SQLite database")
    path = Path(database).expanduser()
    return path.with_name(f"{path.stem}-dbos{path.suffix or '.db'}")


def wal_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Connection setup of the SQLite system database: WAL, and writers that serialize up front."""
    dbapi_connection.isolation_level = "IMMEDIATE"  # as DBOS's own engine does
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def system_database(db: Database) -> tuple[str, Engine | None]:
    """DBOS's system database: URL and (for SQLite) a WAL engine."""
    if db.is_sqlite:
        path = _sqlite_dbos_path(db)
        url = f"sqlite:///{path}"
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=20, max_overflow=20)
        event.listen(engine, "connect", wal_pragmas)
        return url, engine
    return make_url(db.url).render_as_string(hide_password=False), None


def migrate_system_database(db: Database) -> None:
    """Create or upgrade DBOS's system tables (once per database object), so a client can enqueue
    before any worker ran."""
    db.attached("durable.system-database-migrated", lambda: _migrate(db))


def _migrate(db: Database) -> bool:
    url, engine = system_database(db)
    if engine is not None:
        with engine.connect() as conn:  # sets WAL on the file before DBOS touches it
            conn.exec_driver_sql("select 1")
        engine.dispose()
    DBOS.migrate(url, schema="dbos")
    return True


def new_client(db: Database) -> DBOSClient:
    """A DBOS client of its own (the caller destroys it)."""
    migrate_system_database(db)
    url, engine = system_database(db)
    if engine is not None:
        return DBOSClient(system_database_url=url, system_database_engine=engine, application_name=APP_NAME)
    return DBOSClient(system_database_url=url, application_name=APP_NAME)


def client(db: Database) -> DBOSClient:
    """The database's DBOS client, for as long as ``db`` lives: an HTTP server enqueues on every call,
    and a new client (a connection pool, a migration check) costs more than the enqueue."""
    return db.attached("durable.client", lambda: new_client(db))


def enqueue(db: Database, run_id: str, payload: dict[str, Any]) -> None:
    """Queue run ``run_id`` for ``cristal worker``; queuing an id DBOS already has is a no-op, so a
    repeated call never starts a second run."""
    client(db).enqueue({"queue_name": RUN_QUEUE, "workflow_name": RUN_WORKFLOW, "workflow_id": run_id,
                        "app_version": APP_VERSION}, payload)


# ---------------------------------------------------------------------------
# What a foreground caller hands to the steps of its run


class RunExtras:
    """Per-run companions that cannot be stored with a run (a progress printer, secret values typed
    on the command line, results for ``--json``): attached by the caller that runs the run in this
    process, read by its steps, gone with the process."""

    def __init__(self) -> None:
        self._by_run: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def attached(self, run_id: str, extras: dict[str, Any]) -> Iterator[None]:
        with self._lock:
            self._by_run[run_id] = dict(extras)
        try:
            yield
        finally:
            with self._lock:
                self._by_run.pop(run_id, None)

    def get(self, run_id: str, name: str) -> Any:
        with self._lock:
            return self._by_run.get(run_id, {}).get(name)


# ---------------------------------------------------------------------------
# The runtime


class Runtime:
    """DBOS launched in this process, as one executor with a heartbeat row."""

    def __init__(self, db: Database, settings: Settings, kind: str) -> None:
        self.db = db
        self.settings = settings
        self.kind = kind
        self.executor_id = f"{kind}-{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.extras = RunExtras()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _start(self, worker_concurrency: int) -> None:
        url, engine = system_database(self.db)
        config: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": url,
            "application_version": APP_VERSION,
            "executor_id": self.executor_id,
            "log_level": self.settings.dbos_log_level,
            "run_admin_server": False,  # type: ignore[typeddict-unknown-key]  # accepted by DBOS, missing from its TypedDict
            "notification_listener_polling_interval_sec": 0.1,
        }
        if engine is not None:
            config["system_database_engine"] = engine
        else:
            config["dbos_system_schema"] = "dbos"
        with self.db.session() as s:
            s.add(WorkflowExecutor(id=self.executor_id, kind=self.kind, host=socket.gethostname()[:255], pid=os.getpid()))
        DBOS(config=config)
        DBOS.listen_queues([RUN_QUEUE] if self.kind == "worker" else [])
        DBOS.launch()
        # A worker claims at most ``worker_concurrency`` runs per poll of the queue, so the poll interval
        # bounds throughput (16 runs per 1 s poll is 16 runs/s); DBOS's 1 s default is too slow for short runs.
        DBOS.register_queue(RUN_QUEUE, worker_concurrency=worker_concurrency,
                            polling_interval_sec=self.settings.worker_poll_seconds, on_conflict="always_update")
        self._heartbeat = threading.Thread(target=self._beat, name="cristal-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with self.db.session() as s:
                    s.execute(update(WorkflowExecutor).where(WorkflowExecutor.id == self.executor_id)
                              .values(last_seen=utcnow()))
            except Exception:  # noqa: BLE001 - a missed beat is retried
                pass

    def start(self, workflow: Callable[[dict[str, Any]], Any], run_id: str, payload: dict[str, Any]) -> WorkflowHandle[Any]:
        """Start run ``run_id`` on this executor."""
        with SetWorkflowID(run_id):
            return DBOS.start_workflow(workflow, payload)

    def dead_executors(self) -> set[str]:
        """Executors with PENDING runs that are no longer alive."""
        pending = DBOS.list_workflows(status=["PENDING"], name=RUN_WORKFLOW, load_input=False, load_output=False)
        owners = {w.executor_id for w in pending if w.executor_id}
        host = socket.gethostname()[:255]
        alive: set[str] = set()
        stale_before = utcnow() - timedelta(seconds=STALE_AFTER_SECONDS)
        with self.db.session() as s:
            for ex in s.scalars(select(WorkflowExecutor)):
                if ex.host == host:
                    ok = _pid_alive(ex.pid) and ex.last_seen >= stale_before - timedelta(seconds=STALE_AFTER_SECONDS)
                else:
                    ok = ex.last_seen >= stale_before
                if ok:
                    alive.add(ex.id)
                else:
                    s.delete(ex)
        return owners - alive - {self.executor_id}

    def recover_dead(self) -> list[str]:
        """Take over the PENDING runs of executors that died; returns their ids."""
        dead = sorted(self.dead_executors())
        if dead:
            DBOS._recover_pending_workflows(dead)  # DBOS's recovery of named executors (not public API)
        return dead

    def take_over(self, run_id: str, before: Callable[[], None] | None = None) -> WorkflowHandle[Any] | None:
        """Resume here run ``run_id`` whose process died (what ``cristal worker`` would do), calling
        ``before()`` just before it resumes.

        ``None`` when the run is no longer pending (nothing to do); a run still
        alive elsewhere or waiting in the queue is refused.
        """
        status = DBOS.get_workflow_status(run_id)
        if status is not None and status.status == "ENQUEUED":
            raise InvalidInput(f"run {run_id} is queued for `cristal worker`; see `cristal workflow status {run_id}`")
        if status is None or status.status != "PENDING":
            return None
        if status.executor_id not in self.dead_executors():
            raise InvalidInput(f"run {run_id} is still running in another process; see `cristal workflow status {run_id}`")
        if before is not None:
            before()
        handles = DBOS._recover_pending_workflows([status.executor_id])  # see recover_dead
        return next((h for h in handles if h.get_workflow_id() == run_id), None)

    def shutdown(self) -> None:
        """Stop DBOS; runs in flight stay PENDING and a worker takes them over."""
        self._stop.set()
        try:
            DBOS.destroy(workflow_completion_timeout_sec=0)
            _detach_waiting_threads()
        finally:
            try:
                with self.db.session() as s:
                    s.execute(delete(WorkflowExecutor).where(WorkflowExecutor.id == self.executor_id))
            except Exception:  # noqa: BLE001 - the row goes stale and is swept by the next recovery scan
                pass


class _Process:
    """The runtime launched in this process (see the module's docstring: the one process-wide slot)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.lock = threading.Lock()


_PROCESS = _Process()


def launch(db: Database, settings: Settings, *, kind: str = "runner", worker_concurrency: int = 16) -> Runtime:
    """Start DBOS in this process (once: a second call returns the runtime already launched);
    ``kind="worker"`` also dequeues queued runs."""
    with _PROCESS.lock:
        if _PROCESS.runtime is None:
            runtime = Runtime(db, settings, kind)
            runtime._start(worker_concurrency)  # under the lock: one runtime per process
            _PROCESS.runtime = runtime
        return _PROCESS.runtime


def current() -> Runtime:
    """The runtime launched in this process (inside a run there always is one)."""
    runtime = _PROCESS.runtime
    if runtime is None:
        raise RuntimeError("the durable runtime is not launched in this process")
    return runtime


def extra(run_id: str, name: str) -> Any:
    """What the caller running ``run_id`` in this process attached under ``name`` (``None``: nothing,
    or no runtime here, as when a step is called directly)."""
    runtime = _PROCESS.runtime
    return None if runtime is None else runtime.extras.get(run_id, name)


def shutdown() -> None:
    """Stop the runtime launched in this process, if any."""
    with _PROCESS.lock:
        runtime, _PROCESS.runtime = _PROCESS.runtime, None
    if runtime is not None:
        runtime.shutdown()


def wait_quietly(handle: WorkflowHandle[Any]) -> None:
    """Wait for a run; a failed run's error is not raised (its outcome is in the run store)."""
    try:
        handle.get_result()
    except Exception:  # noqa: BLE001 - the caller reads what happened from the run's rows
        pass


def run_here(db: Database, settings: Settings, run_id: str, *, workflow: Callable[[dict[str, Any]], Any] | None = None,
             payload: dict[str, Any] | None = None, extras: dict[str, Any] | None = None,
             watch: Callable[[WorkflowHandle[Any]], T] = wait_quietly,  # type: ignore[assignment]  # T is None then
             on_take_over: Callable[[], None] | None = None) -> T | None:
    """Run ``run_id`` in this process, wait for it with ``watch(handle)``, and shut the runtime down.

    With ``workflow`` and ``payload`` the run starts here; without, a pending
    run whose process died is taken over (``None`` when there is nothing to
    take over). ``extras`` are attached for the run's steps until the runtime
    is down. Afterwards the process can exit even if the run still waits (for
    an approval): it stays PENDING and a worker resumes it.
    """
    runtime = launch(db, settings)
    with runtime.extras.attached(run_id, extras or {}):
        try:
            if workflow is not None and payload is not None:
                handle: WorkflowHandle[Any] | None = runtime.start(workflow, run_id, payload)
            else:
                handle = runtime.take_over(run_id, on_take_over)
            return None if handle is None else watch(handle)
        finally:
            shutdown()


# ---------------------------------------------------------------------------
# Helpers


def _detach_waiting_threads() -> None:
    """Let the process exit although a run's thread still waits (e.g. in an approval's ``DBOS.recv``).

    DBOS runs workflows on a ``ThreadPoolExecutor`` whose threads the interpreter joins at exit; a
    thread waiting for an approval would hold the exit for up to the poll interval. Such a run is
    PENDING in DBOS and this executor's heartbeat row is gone, so a worker resumes it: the thread is
    dropped from the exit join (it is a daemon thread and ends with the process).
    """
    from concurrent.futures import thread as futures_thread

    queues = getattr(futures_thread, "_threads_queues", None)
    if queues is None:
        return
    shutdown_locks = getattr(threading, "_shutdown_locks", None)
    guard = getattr(threading, "_shutdown_locks_lock", None)
    for worker in list(queues):
        if worker.name.startswith("dbos-executor") and worker.is_alive():
            queues.pop(worker, None)
            lock = getattr(worker, "_tstate_lock", None)
            if shutdown_locks is not None and lock is not None and guard is not None:
                with guard:
                    shutdown_locks.discard(lock)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
