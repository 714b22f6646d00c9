"""``cristal research`` as a durable run: a one-step workflow on the DBOS engine, in the foreground.

The question becomes a workflow run (name ``research``, one ``research``
step whose spec pins the notes' checkpoint id -- set by code after validation,
since workflow text may not name a checkpoint), listed by ``cristal workflow
status``/``list`` like any other run. The step runs in this process and
reports progress to the caller through the run's extras
(:func:`cristal.durable.runtime.run_here`, read by
:func:`cristal.research.checkpoints.progress_for`); the notes are
checkpointed in the database after every phase. If the process dies, the run
is PENDING in DBOS: ``cristal worker`` takes it over, or ``cristal research
--resume RUN_ID`` does it here; either way the step runs again, finds the
checkpoint and continues without repeating searches or model calls. A run
that ended partial (model failure, budget) is continued by a new run
(``retry_of`` the old one) on the same checkpoint.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import AccessDenied, CristalError, InvalidInput, NotFound
from cristal.identity.directory import org_by_slug
from cristal.identity.principal import Principal
from cristal.research.ceilings import RESEARCH_MAX_SECONDS, RESEARCH_MAX_TOKENS
from cristal.research.checkpoints import PROGRESS, claim_checkpoint
from cristal.research.run import Budget, Progress, check_question, ensure_searchable, resolve_mode
from cristal.research.store import CHECKPOINT_ID, CheckpointStore, new_run_id
from cristal.workflows import service
from cristal.workflows.spec import Compiled, load_workflow_text

WORKFLOW = "research"
STEP = "research"


class ResearchRunFailed(CristalError):
    """The run failed before it produced even a partial report (e.g. its owner lost access)."""

    exit_code = 1


def check_budget(budget: Budget) -> None:
    """The limits a workflow's research step has (see ``ResearchSpec``), as one-line errors about the options."""
    if budget.max_tokens > RESEARCH_MAX_TOKENS:
        raise InvalidInput(f"--max-tokens: at most {RESEARCH_MAX_TOKENS} tokens per research run")
    if budget.max_seconds > RESEARCH_MAX_SECONDS:
        raise InvalidInput(f"--max-seconds: at most {RESEARCH_MAX_SECONDS:g} seconds per research run")


def definition_text(mode: str, lang: str | None, budget: Budget) -> str:
    """The one-step workflow; the question is an input, so it is data and never read as a template."""
    spec: dict[str, Any] = {"question": "{{ inputs.question }}", "mode": mode, "max_steps": budget.max_steps,
                            "max_tokens": budget.max_tokens, "max_seconds": budget.max_seconds}
    if lang is not None:
        spec["lang"] = lang
    document = {"name": WORKFLOW, "inputs": {"question": None}, "steps": [{"id": STEP, "research": spec}]}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def start(db: Database, settings: Settings, principal: Principal, question: str | None, *, mode: str = "auto",
          lang: str | None = None, budget: Budget | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Research ``question`` as a new durable run in this process; the result document (as ``--json`` prints it).

    Bad input is refused before any run is recorded.
    """
    budget = budget or Budget()
    check_budget(budget)
    if principal.is_installation:
        raise AccessDenied("research runs as an employee: pass --as EMAIL (the installation principal cannot read company data)")
    question, _answer_lang = check_question(question, lang)
    chosen = resolve_mode(settings, db, principal, mode)
    ensure_searchable(db, principal)
    checkpoint = new_run_id()  # random: nobody can guess it in advance
    compiled = load_workflow_text(definition_text(chosen, lang, budget), origin="cristal-research")
    compiled.steps[0]["spec"]["checkpoint"] = checkpoint  # after validation: workflow text cannot set it
    run = service.create_run(db, compiled, principal.org_slug or "", principal.name, {"question": question})
    return _execute(db, settings, run, checkpoint, principal, progress)


def resume(db: Database, settings: Settings, principal: Principal, ref: str, *, lang: str | None = None,
           budget: Budget | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Continue research run ``ref`` (a workflow run id, or a checkpoint id) in this process.

    A run whose process died is taken over (same run id); a run that ended
    partial or failed is continued by a new run on the same notes; a complete
    run is returned as it is.
    """
    from cristal.durable.schema import WorkflowRun

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
        org_id, owner_label = org.id, f"user:{row.owner_email}@{org.slug}"
    service.run_status(db, run_id, principal.name)  # the owner (or an admin) only; audited
    spec = definition["steps"][0]["spec"]
    # The notes the run's step worked on (as the step chose them: the run's owner's, never someone else's).
    checkpoint = claim_checkpoint(store, org_id, owner_label, f"{run_id}:{steps[0]['id']}", spec.get("checkpoint"))
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
        check_budget(budget)
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
    service.run_here(db, settings, run, watch=_wait, extras={PROGRESS: progress})
    return _outcome(db, run.run_id, checkpoint, principal)


class Interrupted(CristalError):
    """The employee stopped a foreground run (Ctrl-C); the run stays pending for a worker or ``--resume``."""

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
    import cristal.workflows.engine  # noqa: F401 - registers the DBOS workflow the run resumes in
    from cristal.durable.runtime import run_here

    def announce() -> None:
        if progress is not None:
            progress("run", f"taking over run {run_id} from a process that stopped")

    run_here(db, settings, run_id, watch=_wait, extras={PROGRESS: progress}, on_take_over=announce)
    return _outcome(db, run_id, checkpoint, principal)


def _outcome(db: Database, run_id: str, checkpoint: str, principal: Principal) -> dict[str, Any]:
    """The report the run left in its checkpoint; a run that failed without one is an error."""
    status = service.run_status(db, run_id, principal.name)
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

