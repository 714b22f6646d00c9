"""``cristal research`` as a durable run: a one-step workflow on the DBOS engine, in the foreground.

The question becomes a workflow run (name ``research``, one ``research``
step whose spec pins the notes' checkpoint id), listed by ``cristal workflow
status``/``list`` like any other run. The step runs in this process and
reports progress to the caller through :func:`listening`; the notes are
checkpointed in the database after every phase. If the process dies, the run
is PENDING in DBOS: ``cristal worker`` takes it over, or ``cristal research
--resume RUN_ID`` does it here; either way the step runs again, finds the
checkpoint and continues without repeating searches or model calls. A run
that ended partial (model failure, budget) is continued by a new run
(``retry_of`` the old one) on the same checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import AccessDenied, CristalError, InvalidInput, NotFound
from cristal.identity.directory import org_by_slug
from cristal.identity.principal import Principal
from cristal.research.run import Budget, Progress, check_question, ensure_searchable, resolve_mode
from cristal.research.store import CHECKPOINT_ID, CheckpointStore, new_run_id

WORKFLOW = "research"
STEP = "research"

_listeners: dict[str, Progress] = {}
_lock = threading.Lock()


class ResearchRunFailed(CristalError):
    """The run failed before it produced even a partial report (e.g. its owner lost access)."""

    exit_code = 1


def checkpoint_for(key: str) -> str:
    """The checkpoint id a ``research`` step derives from its idempotency key (stable across replays)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@contextmanager
def listening(run_id: str, progress: Progress | None) -> Iterator[None]:
    """Deliver the progress of workflow run ``run_id`` (its research step runs in this process) to ``progress``."""
    if progress is None:
        yield
        return
    with _lock:
        _listeners[run_id] = progress
    try:
        yield
    finally:
        with _lock:
            _listeners.pop(run_id, None)


def progress_for(run_id: str) -> Progress | None:
    with _lock:
        return _listeners.get(run_id)


def definition_text(mode: str, lang: str | None, budget: Budget, checkpoint: str) -> str:
    """The one-step workflow; the question is an input, so it is data and never read as a template."""
    spec: dict[str, Any] = {"question": "{{ inputs.question }}", "mode": mode, "max_steps": budget.max_steps,
                            "max_tokens": budget.max_tokens, "max_seconds": budget.max_seconds, "checkpoint": checkpoint}
    if lang is not None:
        spec["lang"] = lang
    document = {"name": WORKFLOW, "inputs": {"question": None}, "steps": [{"id": STEP, "research": spec}]}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def start(db: Database, settings: Settings, principal: Principal, question: str | None, *, mode: str = "auto",
          lang: str | None = None, budget: Budget | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Research ``question`` as a new durable run in this process; the result document (as ``--json`` prints it).

    Bad input is refused before any run is recorded.
    """
    from cristal.workflows import service
    from cristal.workflows.spec import load_workflow_text

    budget = budget or Budget()
    if principal.is_operator:
        raise AccessDenied("research runs as an employee: pass --as EMAIL (the operator cannot read company data)")
    question, _answer_lang = check_question(question, lang)
    chosen = resolve_mode(settings, db, principal, mode)
    ensure_searchable(db, principal)
    checkpoint = new_run_id()
    compiled = load_workflow_text(definition_text(chosen, lang, budget, checkpoint), origin="cristal-research")
    run = service.create_run(db, compiled, principal.org_slug or "", principal.name, {"question": question})
    return _execute(db, settings, run, checkpoint, principal, progress)


def resume(db: Database, settings: Settings, principal: Principal, ref: str, *, lang: str | None = None,
           budget: Budget | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Continue research run ``ref`` (a workflow run id, or a checkpoint id) in this process.

    A run whose process died is taken over (same run id); a run that ended
    partial or failed is continued by a new run on the same notes; a complete
    run is returned as it is.
    """
    from cristal.workflows import service
    from cristal.workflows.schema import WorkflowRun
    from cristal.workflows.spec import Compiled

    store = CheckpointStore(db)
    run_id = ref
    if CHECKPOINT_ID.match(ref or ""):
        run_id = store.workflow_run_of(ref) or ""
    with db.session() as s:
        row = s.get(WorkflowRun, run_id) if run_id else None
        org = org_by_slug(s, principal.org_slug or "")
        if row is None or row.org_id != org.id:
            raise NotFound(f"no research run {ref} in organization {org.slug!r}")
        steps = row.definition.get("steps") or []
        if row.name != WORKFLOW or len(steps) != 1 or steps[0].get("kind") != "research":
            raise InvalidInput(f"run {run_id} is a {row.name!r} workflow, not a research run; see `cristal workflow status {run_id}`")
        definition, inputs, file, status = copy.deepcopy(row.definition), dict(row.inputs), row.file, row.status
    service.run_status(db, run_id, principal.name)  # the owner (or an admin) only; audited
    spec = definition["steps"][0]["spec"]
    checkpoint = spec.get("checkpoint") or checkpoint_for(f"{run_id}:{STEP}")
    if store.exists(checkpoint):
        notes, finished = store.load(checkpoint)
        if notes.principal != principal.label:
            raise AccessDenied(f"research run {ref} belongs to someone else; only they can resume it")
        if finished is not None and finished.get("status") == "complete":
            return finished  # nothing left to do, whichever run completed it
    if status == "succeeded":
        return _outcome(db, run_id, checkpoint, principal)
    if status in ("failed", "cancelled", "rejected"):
        # A new run on the same notes; the budgets given now apply (the old ones were what ran out).
        budget = budget or Budget()
        spec.update(max_steps=budget.max_steps, max_tokens=budget.max_tokens, max_seconds=budget.max_seconds,
                    checkpoint=checkpoint)
        if lang is not None:
            spec["lang"] = lang
        run = service.create_run(db, Compiled(Path(file), definition), principal.org_slug or "", principal.name,
                                 inputs, retry_of=run_id)
        if progress is not None:
            progress("run", f"{run.run_id} continues {run_id} on the same notes")
        return _execute(db, settings, run, checkpoint, principal, progress)
    return _take_over(db, settings, run_id, checkpoint, principal, progress)


def _execute(db: Database, settings: Settings, run: Any, checkpoint: str, principal: Principal,
             progress: Progress | None) -> dict[str, Any]:
    from cristal.workflows import service
    from cristal.workflows.engine import shutdown

    with listening(run.run_id, progress):
        try:
            handle = service.start(db, settings, run)
            _wait(handle)
        finally:
            shutdown()
    return _outcome(db, run.run_id, checkpoint, principal)


class Interrupted(CristalError):
    exit_code = 130


def _wait(handle: Any) -> None:
    try:
        handle.get_result()
    except KeyboardInterrupt:
        run_id = handle.get_workflow_id()
        raise Interrupted(f"interrupted; run {run_id} stays pending: `cristal worker` finishes it, or "
                          f"`cristal research --resume {run_id}`") from None
    except Exception:  # noqa: BLE001 - a failed run's outcome (partial report or error) is read back by _outcome
        pass


def _take_over(db: Database, settings: Settings, run_id: str, checkpoint: str, principal: Principal,
               progress: Progress | None) -> dict[str, Any]:
    """Run here a PENDING run whose process died (what ``cristal worker`` would do)."""
    from dbos import DBOS

    from cristal.workflows.engine import dead_executors, launch, shutdown

    with listening(run_id, progress):
        launch(db, settings, kind="runner")
        try:
            status = DBOS.get_workflow_status(run_id)
            if status is not None and status.status == "PENDING":
                if status.executor_id not in dead_executors(db):
                    raise InvalidInput(f"run {run_id} is still running in another process; "
                                       f"see `cristal workflow status {run_id}`")
                if progress is not None:
                    progress("run", f"taking over run {run_id} from a process that stopped")
                for handle in DBOS._recover_pending_workflows([status.executor_id]):
                    if handle.get_workflow_id() == run_id:
                        _wait(handle)
            elif status is not None and status.status == "ENQUEUED":
                raise InvalidInput(f"run {run_id} is queued for `cristal worker`; see `cristal workflow status {run_id}`")
        finally:
            shutdown()
    return _outcome(db, run_id, checkpoint, principal)


def _outcome(db: Database, run_id: str, checkpoint: str, principal: Principal) -> dict[str, Any]:
    """The report the run left in its checkpoint; a run that failed without one is an error."""
    from cristal.workflows.service import run_status

    status = run_status(db, run_id, principal.name)
    result = None
    try:
        _notes, result = CheckpointStore(db).load(checkpoint)
    except NotFound:
        pass
    if result is not None and result.get("run_id") == run_id:
        return result
    if status["status"] in ("queued", "running", "waiting"):
        raise ResearchRunFailed(f"run {run_id} is still {status['status']}; see `cristal workflow status {run_id}`")
    raise ResearchRunFailed(f"research run {run_id} {status['status']}: {status.get('error') or 'no report was written'}")

