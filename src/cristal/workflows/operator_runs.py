"""``cristal operate`` as a durable run: a one-step ``operate`` workflow on the DBOS engine, in the foreground.

The task becomes a workflow run (name ``operate``, one ``operate`` step),
listed by ``cristal workflow status``/``list`` like any other run, and runs
here: the step (:func:`cristal.operator.workflow.operate`) gets what cannot be
stored with the run -- secret values, the progress printer, the full result --
as the run's extra ``LOCAL`` in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from cristal.config import Settings
from cristal.db import Database
from cristal.operator.run import Progress, RunConfig, RunResult
from cristal.operator.safety import Secrets
from cristal.operator.workflow import LOCAL, LOCAL_RECORD, STEP_ID, WORKFLOW_NAME, Local
from cristal.workflows import service
from cristal.workflows.spec import Compiled, load_workflow_text


def operate_workflow(config: RunConfig, *, approvers: list[str], approval_timeout: float,
                     secret_names: list[str]) -> tuple[Compiled, dict[str, Any]]:
    """The one-step workflow for a ``cristal operate`` command, and its inputs.

    Free text (the task, URLs, the record path) travels as inputs, so braces in
    it are never read as templates; secrets are listed by name only (their
    values reach the step as the run's ``LOCAL`` extra). The record path is the
    employee's own file, so it goes in ``LOCAL_RECORD``, set after validation.
    """
    step: dict[str, Any] = {
        "task": "{{ inputs.task }}", "start_url": "{{ inputs.start_url }}", "allow_domains": list(config.allow_domains),
        "allow_writes": list(config.allow_writes),
        "secrets": secret_names, "max_steps": config.max_steps, "max_seconds": config.max_seconds, "model": config.model,
        "approvers": approvers, "approval_timeout": approval_timeout, "allow_irreversible": config.allow_irreversible,
        "screenshots": config.screenshots, "vision": config.vision,
    }
    inputs: dict[str, Any] = {"task": config.task, "start_url": config.start_url}
    if config.record is not None:
        inputs["record"] = str(config.record.expanduser().resolve())
    doc = {"name": WORKFLOW_NAME, "description": "cristal operate", "inputs": {k: None for k in inputs},
           "steps": [{"id": STEP_ID, "operate": step}]}
    compiled = load_workflow_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), origin="cristal operate")
    if config.record is not None:
        compiled.steps[0]["spec"][LOCAL_RECORD] = "{{ inputs.record }}"
    return compiled, inputs


@dataclass
class OperatorRun:
    """How a foreground ``cristal operate`` run ended: the step's result, or why the run failed without one."""

    run_id: str
    result: RunResult | None
    error: str | None


def run_task(db: Database, settings: Settings, org_slug: str, email: str, config: RunConfig, *, approvers: list[str],
             approval_timeout: float, secrets: Secrets, progress: Progress | None = None,
             on_created: Callable[[str], None] | None = None) -> OperatorRun:
    """Run ``config``'s task as a new one-step workflow run in this process, as employee ``email``.

    ``on_created(run_id)`` is called once the run is recorded, before it starts.
    The step's own result (or the run's error) says what happened, not the run's
    return value.
    """
    compiled, inputs = operate_workflow(config, approvers=approvers, approval_timeout=approval_timeout,
                                        secret_names=secrets.names)
    run = service.create_run(db, compiled, org_slug, email, inputs)
    local = Local(secrets=secrets.mapping(), progress=progress)
    if on_created is not None:
        on_created(run.run_id)
    service.run_here(db, settings, run, extras={LOCAL: local})
    if local.results:
        return OperatorRun(run.run_id, local.results[-1], None)
    error = service.run_status(db, run.run_id, email).get("error") or "the run ended without a result"
    return OperatorRun(run.run_id, None, error.removeprefix(f"step {STEP_ID!r} failed: "))
