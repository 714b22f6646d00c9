"""The durable engine: workflow files interpreted inside one DBOS Transact workflow.

How DBOS is used
----------------
* One DBOS workflow function, ``cristal_run``, interprets a compiled
  definition (carried in the run's input, so an edited file never changes a
  run under way). The DBOS workflow id *is* the Cristal run id.
* Every step action (sql, http, python, llm), every approval request/check,
  and the owner's authorization at the start of a run is a DBOS step
  (``DBOS.run_step``): its result (or error) is checkpointed, so after a crash
  the run is replayed and completed steps return their checkpoint instead of
  running again. A step interrupted mid-way runs again with the *same*
  idempotency key ``run_id:step_id[:item_index]``.
* ``for_each`` fans out: with ``concurrency: N`` step ids are drawn in order
  with ``DBOS.reserve_step`` (deterministic) and run on N threads.
* ``workflow`` steps are DBOS child workflows with id ``run_id.step_id[.i]``.
* Approvals wait in ``DBOS.recv`` (durable, with a timeout), woken by
  ``DBOSClient.send`` from ``cristal approvals approve``; the approval row in
  ``workflow_approvals`` is the truth, re-checked after every wake-up.
* Storage: DBOS's system tables live in PostgreSQL schema ``dbos`` of the same
  database, or on SQLite in a sibling file ``<name>-dbos.db`` opened through
  an engine in WAL mode (DBOS's own SQLite engine uses a rollback journal).
* Each process gets its own DBOS executor id and a heartbeat row in
  ``workflow_executors``; ``cristal worker`` recovers PENDING runs of executors
  that are gone (dead pid on this host, or, on any host, no heartbeat for
  ``STALE_AFTER_SECONDS``). DBOS's recovery re-enqueues such a run and its
  dequeue admits one runner, so several workers recovering the same dead
  executor at once still resume each run once.
* Step actions of a kind an organization has limited take a slot first
  (``limits``), so the limit holds across all workers.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.engine import Engine, make_url

from cristal.actions import Registry, build_registry
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.errors import CristalError, InvalidInput
from cristal.workflows import limits, store, templates
from cristal.workflows.schema import WorkflowExecutor, WorkflowRun
from cristal.workflows.steps import Meta, StepError, check_size, perform

APP_NAME = "cristal"
APP_VERSION = "cristal-workflows-1"
RUN_QUEUE = "cristal-runs"
WORKFLOW_NAME = "cristal_run"
HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 30.0


class WorkflowFailed(CristalError):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (WorkflowFailed, (self.message,))


class _Stop(Exception):
    """A rejected approval with ``on_reject: stop`` ends the run."""


# ---------------------------------------------------------------------------
# Process state: one DBOS instance per process


class _State:
    db: Database | None = None
    settings: Settings | None = None
    executor_id: str | None = None
    kind: str | None = None
    stop = threading.Event()
    heartbeat: threading.Thread | None = None


STATE = _State()


def queue_poll_seconds() -> float:
    return float(os.environ.get("CRISTAL_WORKER_POLL_SECONDS", "0.2"))


def approval_poll_seconds() -> float:
    return float(os.environ.get("CRISTAL_WORKFLOW_APPROVAL_POLL_SECONDS", "60"))


def _sqlite_dbos_path(db: Database) -> Path:
    database = make_url(db.url).database
    if not database or database == ":memory:":
        raise InvalidInput("workflows need a database file or PostgreSQL, not an in-memory SQLite database")
    path = Path(database).expanduser()
    return path.with_name(f"{path.stem}-dbos{path.suffix or '.db'}")


def _wal_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = "IMMEDIATE"  # as DBOS's own engine: writers serialize up front
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
        event.listen(engine, "connect", _wal_pragmas)
        return url, engine
    return make_url(db.url).render_as_string(hide_password=False), None


_MIGRATED: set[str] = set()


def migrate_system_database(db: Database) -> None:
    """Create or upgrade DBOS's system tables (idempotent), so a client can enqueue before any worker ran."""
    url, engine = system_database(db)
    if url in _MIGRATED:
        return
    if engine is not None:
        with engine.connect() as conn:  # sets WAL on the file before DBOS touches it
            conn.exec_driver_sql("select 1")
        engine.dispose()
    DBOS.migrate(url, schema="dbos")
    _MIGRATED.add(url)


def dbos_client(db: Database) -> DBOSClient:
    migrate_system_database(db)
    url, engine = system_database(db)
    if engine is not None:
        return DBOSClient(system_database_url=url, system_database_engine=engine, application_name=APP_NAME)
    return DBOSClient(system_database_url=url, application_name=APP_NAME)


_SHARED: dict[str, DBOSClient] = {}
_SHARED_LOCK = threading.Lock()


def shared_client(db: Database) -> DBOSClient:
    """One DBOS client per database for the life of the process: an HTTP server enqueues on every
    call, and a new client (a connection pool, a migration check) costs more than the enqueue."""
    with _SHARED_LOCK:
        client = _SHARED.get(db.url)
        if client is None:
            client = _SHARED[db.url] = dbos_client(db)
        return client


def launch(db: Database, settings: Settings, *, kind: str = "runner", worker_concurrency: int = 16) -> str:
    """Start DBOS in this process (once); ``kind="worker"`` also dequeues queued runs."""
    if STATE.executor_id is not None:
        return STATE.executor_id
    STATE.db, STATE.settings, STATE.kind = db, settings, kind
    executor_id = f"{kind}-{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    url, engine = system_database(db)
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": url,
        "application_version": APP_VERSION,
        "executor_id": executor_id,
        "log_level": os.environ.get("CRISTAL_DBOS_LOG_LEVEL", "CRITICAL"),
        "run_admin_server": False,
        "notification_listener_polling_interval_sec": 0.1,
    }  # type: ignore[typeddict-unknown-key]
    if engine is not None:
        config["system_database_engine"] = engine
    else:
        config["dbos_system_schema"] = "dbos"
    with db.session() as s:
        s.add(WorkflowExecutor(id=executor_id, kind=kind, host=socket.gethostname()[:255], pid=os.getpid()))
    try:
        DBOS(config=config)
    except TypeError:
        config.pop("run_admin_server", None)  # type: ignore[misc]
        DBOS(config=config)
    DBOS.listen_queues([RUN_QUEUE] if kind == "worker" else [])
    DBOS.launch()
    # A worker claims at most ``worker_concurrency`` runs per poll of the queue, so the poll interval
    # bounds throughput (16 runs per 1 s poll is 16 runs/s); DBOS's 1 s default is too slow for short runs.
    DBOS.register_queue(RUN_QUEUE, worker_concurrency=worker_concurrency, polling_interval_sec=queue_poll_seconds(),
                        on_conflict="always_update")
    STATE.executor_id = executor_id
    STATE.stop.clear()
    STATE.heartbeat = threading.Thread(target=_heartbeat, name="cristal-heartbeat", daemon=True)
    STATE.heartbeat.start()
    return executor_id


def _heartbeat() -> None:
    while not STATE.stop.wait(HEARTBEAT_SECONDS):
        try:
            with STATE.db.session() as s:  # type: ignore[union-attr]
                s.execute(update(WorkflowExecutor).where(WorkflowExecutor.id == STATE.executor_id).values(last_seen=utcnow()))
        except Exception:  # noqa: BLE001 - a missed beat is retried
            pass


def shutdown() -> None:
    """Stop DBOS; runs in flight stay PENDING and a worker takes them over."""
    if STATE.executor_id is None:
        return
    STATE.stop.set()
    try:
        DBOS.destroy(workflow_completion_timeout_sec=0)
        _detach_waiting_threads()
    finally:
        try:
            with STATE.db.session() as s:  # type: ignore[union-attr]
                s.execute(delete(WorkflowExecutor).where(WorkflowExecutor.id == STATE.executor_id))
        except Exception:  # noqa: BLE001
            pass
        STATE.executor_id = None


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
    for worker in list(queues):
        if worker.name.startswith("dbos-executor") and worker.is_alive():
            queues.pop(worker, None)
            lock = getattr(worker, "_tstate_lock", None)
            if shutdown_locks is not None and lock is not None:
                with threading._shutdown_locks_lock:  # type: ignore[attr-defined]
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


def dead_executors(db: Database) -> set[str]:
    """Executors with PENDING runs that are no longer alive."""
    pending = DBOS.list_workflows(status=["PENDING"], name=WORKFLOW_NAME, load_input=False, load_output=False)
    owners = {w.executor_id for w in pending if w.executor_id}
    host = socket.gethostname()[:255]
    alive: set[str] = set()
    stale_before = utcnow() - timedelta(seconds=STALE_AFTER_SECONDS)
    with db.session() as s:
        for ex in s.scalars(select(WorkflowExecutor)):
            if ex.host == host:
                ok = _pid_alive(ex.pid) and ex.last_seen >= stale_before - timedelta(seconds=STALE_AFTER_SECONDS)
            else:
                ok = ex.last_seen >= stale_before
            if ok:
                alive.add(ex.id)
            else:
                s.delete(ex)
    return owners - alive - {STATE.executor_id}


def recover_dead(db: Database) -> list[str]:
    """Take over the PENDING runs of executors that died; returns their ids."""
    dead = sorted(dead_executors(db))
    if dead:
        DBOS._recover_pending_workflows(dead)
    return dead


# ---------------------------------------------------------------------------
# The DBOS workflow


def _authorize_run(org_id: int, owner_email: str, name: str, run_id: str) -> None:
    from cristal.identity.authorize import require
    from cristal.identity.directory import in_org
    from cristal.workflows.steps import owner

    with STATE.db.session() as s:  # type: ignore[union-attr]
        org, principal = owner(s, org_id, owner_email)
        require(s, principal, "workflow.run", in_org(org, "workflow", name), request_id=run_id)


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=50)
def cristal_run(payload: dict[str, Any]) -> dict[str, Any]:
    run_id = DBOS.workflow_id
    assert run_id is not None
    return Interpreter(run_id, payload).execute()


class Interpreter:
    def __init__(self, run_id: str, payload: dict[str, Any]) -> None:
        self.run_id = run_id
        self.definition = payload["definition"]
        self.org_id = int(payload["org_id"])
        self.owner_email = payload["owner_email"]
        self.seed: dict[str, Any] = payload.get("seed") or {}
        self.db: Database = STATE.db  # type: ignore[assignment]
        self.settings: Settings = STATE.settings  # type: ignore[assignment]
        self.actions = build_registry()
        self.context: dict[str, Any] = {
            "inputs": payload["inputs"],
            "steps": {},
            "run": {"id": run_id, "owner": self.owner_email, "workflow": self.definition["name"]},
        }

    # -- the run

    def execute(self) -> dict[str, Any]:
        store.set_run_status(self.db, self.run_id, "running")
        try:
            DBOS.run_step({"name": "authorize-run"}, _authorize_run, self.org_id, self.owner_email,
                          self.definition["name"], self.run_id)
            for position, step in enumerate(self.definition["steps"]):
                if step["id"] in self.seed:
                    seeded = self.seed[step["id"]]
                    self._remember(step, seeded["output"], seeded["status"])
                    store.step_finished(self.db, self.run_id, step["id"], -1, position, step["kind"], "reused",
                                        output=seeded["output"])
                    continue
                self._step(position, step)
            outputs = self.definition.get("outputs")
            if outputs:
                try:
                    result = check_size("outputs", templates.render(outputs, self.context))
                except (templates.TemplateFailure, StepError) as exc:
                    raise WorkflowFailed(f"outputs: {exc}") from None
            else:
                result = {k: v["output"] for k, v in self.context["steps"].items()}
        except _Stop as stop:
            store.set_run_status(self.db, self.run_id, "rejected", error=str(stop))
            return {"status": "rejected", "reason": str(stop)}
        except (WorkflowFailed, StepError, CristalError) as exc:
            store.set_run_status(self.db, self.run_id, "failed", error=str(exc))
            raise WorkflowFailed(str(exc)) from None
        store.set_run_status(self.db, self.run_id, "succeeded", result=result)
        return result

    def _remember(self, step: dict[str, Any], output: Any, status: str) -> None:
        entry = {"output": output, "status": status}
        if step["kind"] == "sql":
            entry["rows"] = output
        self.context["steps"][step["id"]] = entry

    def _fail(self, step: dict[str, Any], position: int, message: str, item: int = -1) -> WorkflowFailed:
        store.step_finished(self.db, self.run_id, step["id"], item, position, step["kind"], "failed", error=message)
        if item != -1:
            store.step_finished(self.db, self.run_id, step["id"], -1, position, step["kind"], "failed", error=message)
        return WorkflowFailed(f"step {step['id']!r} failed: {message}")

    def _step(self, position: int, step: dict[str, Any]) -> None:
        sid, kind = step["id"], step["kind"]
        key = f"{self.run_id}:{sid}"
        store.step_started(self.db, self.run_id, sid, -1, position, kind, key)
        try:
            if step.get("for_each") is not None:
                items = templates.render(step["for_each"], self.context)
                if not isinstance(items, list):
                    raise self._fail(step, position, f"for_each must give a list, got {type(items).__name__}")
                output = self._fan_out(position, step, items)
                status = "succeeded"
            else:
                when = step.get("when")
                if when is not None and not templates.render(when, self.context):
                    self._remember(step, None, "skipped")
                    store.step_finished(self.db, self.run_id, sid, -1, position, kind, "skipped")
                    return
                spec = templates.render(step["spec"], self.context)
                output = self._one(position, step, spec, None)
                status = "succeeded"
        except templates.TemplateFailure as exc:
            raise self._fail(step, position, str(exc)) from None
        try:
            output = check_size(sid, output)
        except StepError as exc:
            raise self._fail(step, position, str(exc)) from None
        self._remember(step, output, status)
        store.step_finished(self.db, self.run_id, sid, -1, position, kind, status, output=output)

    def _one(self, position: int, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        kind = step["kind"]
        if kind == "approval":
            return self._approval(position, step, spec)
        if kind == "workflow":
            return self._child(position, step, spec, item)
        meta = Meta(self.run_id, step["id"], item, self.org_id, self.owner_email, step.get("timeout"))
        try:
            result = DBOS.run_step({"name": meta.key.removeprefix(self.run_id + ":")}, _action, self.actions, kind, meta, spec,
                                  step.get("retry"))
        except StepError as exc:
            raise self._fail(step, position, f"{exc.message}", -1 if item is None else item) from None
        return result["output"]

    def _fan_out(self, position: int, step: dict[str, Any], items: list[Any]) -> list[Any]:
        chosen: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(items):
            ctx = {**self.context, "item": item}
            when = step.get("when")
            if when is not None and not templates.render(when, ctx):
                continue
            chosen.append((index, templates.render(step["spec"], ctx)))
        limit = int(step.get("concurrency") or 1)
        if step["kind"] == "workflow":
            return self._child_fan_out(position, step, chosen, limit)
        results: dict[int, Any] = {}
        errors: list[tuple[int, str]] = []
        if limit <= 1 or len(chosen) <= 1:
            for index, spec in chosen:
                results[index] = self._item(position, step, spec, index, None)
        else:
            # Step ids are drawn in item order here, so a replay finds every item's checkpoint.
            reservations = [(index, spec, DBOS.reserve_step()) for index, spec in chosen]
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"cristal-{step['id']}") as pool:
                futures = {index: pool.submit(contextvars.copy_context().run, self._item, position, step, spec, index, reservation)
                           for index, spec, reservation in reservations}
                for index, future in futures.items():
                    try:
                        results[index] = future.result()
                    except WorkflowFailed as exc:
                        errors.append((index, str(exc)))
            if errors:
                raise WorkflowFailed(errors[0][1])
        return [results[i] for i, _ in chosen]

    def _item(self, position: int, step: dict[str, Any], spec: dict[str, Any], index: int, reservation: Any) -> Any:
        meta = Meta(self.run_id, step["id"], index, self.org_id, self.owner_email, step.get("timeout"))
        store.step_started(self.db, self.run_id, step["id"], index, position, step["kind"], meta.key)
        name = meta.key.removeprefix(self.run_id + ":")
        try:
            if reservation is None:
                result = DBOS.run_step({"name": name}, _action, self.actions, step["kind"], meta, spec, step.get("retry"))
            else:
                result = reservation.run({"name": name}, _action, self.actions, step["kind"], meta, spec, step.get("retry"))
            output = check_size(f"{step['id']}[{index}]", result["output"])
        except StepError as exc:
            raise self._fail(step, position, f"item {index}: {exc.message}", index) from None
        store.step_finished(self.db, self.run_id, step["id"], index, position, step["kind"], "succeeded",
                            output=output, attempts=result["attempts"])
        return output

    # -- sub-workflows

    def _child_payload(self, spec: dict[str, Any]) -> dict[str, Any]:
        from cristal.workflows.spec import Compiled, parse_inputs

        definition = spec["definition"]
        inputs = parse_inputs(Compiled(Path(definition["file"]), definition), spec.get("inputs") or {})
        return {"definition": definition, "inputs": inputs, "org_id": self.org_id, "owner_email": self.owner_email}

    def _start_child(self, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        child_id = f"{self.run_id}.{step['id']}" + ("" if item is None else f".{item}")
        try:
            payload = self._child_payload(spec)
        except InvalidInput as exc:
            raise StepError(str(exc)) from None
        DBOS.run_step({"name": f"{step['id']}:register" + ("" if item is None else f":{item}")}, _register_child,
                      child_id, self.run_id, payload)
        with SetWorkflowID(child_id):
            return DBOS.start_workflow(cristal_run, payload)

    def _child(self, position: int, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        try:
            handle = self._start_child(step, spec, item)
            return handle.get_result()
        except (WorkflowFailed, StepError) as exc:
            raise self._fail(step, position, str(exc)) from None

    def _child_fan_out(self, position: int, step: dict[str, Any], chosen: list[tuple[int, dict]], limit: int) -> list[Any]:
        results: list[Any] = []
        handles: list[tuple[int, Any]] = []
        try:
            for index, spec in chosen:
                handles.append((index, self._start_child(step, spec, index)))
                if len(handles) >= limit:
                    results.append(handles.pop(0)[1].get_result())
            while handles:
                results.append(handles.pop(0)[1].get_result())
        except (WorkflowFailed, StepError) as exc:
            raise self._fail(step, position, str(exc)) from None
        return results

    # -- approvals

    def _approval(self, position: int, step: dict[str, Any], spec: dict[str, Any]) -> Any:
        from cristal.workflows import approvals

        sid = step["id"]
        approval_id = DBOS.run_step({"name": f"{sid}:request"}, approvals.request, self.run_id, sid, self.org_id,
                                    self.owner_email, self.definition["name"], spec, step.get("timeout"))
        store.step_waiting(self.db, self.run_id, sid, position)
        while True:
            state = DBOS.run_step({"name": f"{sid}:check"}, approvals.check, approval_id)
            if state["status"] != "pending":
                break
            wait = approval_poll_seconds()
            if state.get("remaining") is not None:
                wait = max(0.01, min(wait, state["remaining"]))
            DBOS.recv(topic=approval_id, timeout_seconds=wait)
        store.step_resumed(self.db, self.run_id, sid)
        output = {k: state[k] for k in ("approval_id", "decision", "by", "at", "comment")}
        if state["decision"] == "failed":
            raise self._fail(step, position, f"approval {approval_id} timed out with no decision")
        if state["decision"] == "cancelled":
            raise self._fail(step, position, f"approval {approval_id} was cancelled")
        if state["decision"] == "rejected" and spec.get("on_reject", "stop") == "stop":
            self._remember(step, output, "succeeded")
            store.step_finished(self.db, self.run_id, sid, -1, position, step["kind"], "rejected", output=output)
            raise _Stop(f"approval {approval_id} rejected by {state['by']}")
        return output


def _register_child(child_id: str, parent_id: str, payload: dict[str, Any]) -> None:
    with STATE.db.session() as s:  # type: ignore[union-attr]
        if s.get(WorkflowRun, child_id) is not None:
            return
        parent = s.get(WorkflowRun, parent_id)
        s.add(WorkflowRun(id=child_id, org_id=payload["org_id"], owner_user_id=parent.owner_user_id if parent else None,
                          owner_email=payload["owner_email"], name=payload["definition"]["name"],
                          file=payload["definition"].get("file", ""), definition=payload["definition"],
                          inputs=payload["inputs"], status="queued", parent_run_id=parent_id))


def _action(actions: Registry, kind: str, meta: Meta, spec: dict[str, Any], retry: dict[str, Any] | None) -> dict[str, Any]:
    """One step action, retried per the step's ``retry`` (checkpointed by DBOS as a whole)."""
    attempts = int((retry or {}).get("attempts", 1))
    delay = float((retry or {}).get("backoff", 1.0))
    factor = float((retry or {}).get("factor", 2.0))
    db, settings = STATE.db, STATE.settings
    action = actions.get(kind)
    limit = action.limit if action is not None else None
    for attempt in range(1, attempts + 1):
        try:
            # A slot per attempt (not per step): a retry's backoff sleep must not hold one.
            with limits.slot(db, meta.org_id, limit, meta.key, STATE.executor_id) if limit else nullcontext():  # type: ignore[arg-type]
                output = perform(actions, db, settings, kind, meta, spec)  # type: ignore[arg-type]
            return {"output": check_size(meta.step_id, output), "attempts": attempt}
        except StepError as exc:
            if not exc.retriable or attempt == attempts:
                raise StepError(exc.message + (f" (after {attempt} attempts)" if attempt > 1 else "")) from None
        except CristalError as exc:
            raise StepError(exc.message) from None
        time.sleep(delay)
        delay *= factor
    raise StepError("no attempt made")  # pragma: no cover


def payload_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)
