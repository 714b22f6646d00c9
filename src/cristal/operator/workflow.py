"""The Operator inside a durable run: the ``operate`` workflow step, its approvals, secrets and record.

An ``operate`` step runs one Operator task inside a workflow run, as the run's
owner. Irreversible-looking actions become approvals in ``workflow_approvals``
(one per action, id derived from run, step, item and action index) that the
named approvers decide with ``cristal approvals``; meanwhile the step waits
with its browser open and the step shows as ``waiting``.

A browser session cannot survive a crash. When the engine runs an ``operate``
step again after one (its checkpoint was never written), the step does not
start over — that would repeat actions already done in the web apps — but
fails as interrupted; the trajectory recorded so far is kept.

``cristal operate`` is a one-step workflow run in the foreground, started by
:mod:`cristal.workflows.operator_runs`. What cannot be stored with the run
(secret values given on the command line, the progress printer, the full
result for ``--json``) is handed to the step as the run's extra ``LOCAL``
(:func:`cristal.durable.runtime.run_here`) in this process.

Workflow files come from any employee (the REST API takes their text), so a
step may read only its organization's secret variables
(``CRISTAL_SECRET_<ORG>_<NAME>``, checked here against the run's organization)
and writes its record only under ``$CRISTAL_HOME/records/<org>/``. The
``cristal operate --record FILE`` path of the employee's own choosing travels
in ``LOCAL_RECORD``, a spec key that validation of workflow text refuses, so
only code can set it.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from cristal.actions import ActionError as StepError
from cristal.actions.base import StepRef as Meta
from cristal.config import Settings, secret_from_env
from cristal.db import Database
from cristal.db.schema import AuditRecord, Organization, utcnow
from cristal.durable import approvals
from cristal.durable.runtime import extra
from cristal.durable.schema import WorkflowApproval, WorkflowRun, WorkflowStep
from cristal.errors import CristalError, InvalidInput
from cristal.identity.principal import Principal
from cristal.operator.browser import Timing
from cristal.operator.record import RECORD_NAME, mark_interrupted
from cristal.operator.run import ApprovalDecision, Progress, RunConfig, RunResult, run_operator
from cristal.operator.safety import SECRET_ENV_PREFIX, Secrets

STEP_ID = "operate"
WORKFLOW_NAME = "operate"
# Spec key for `cristal operate --record FILE`: set by code after validation (workflow text cannot: unknown field).
LOCAL_RECORD = "local_record"
_VAR_REST = re.compile(r"^[A-Za-z0-9_]+$")
LOCAL = "operator.local"  # the run extra a foreground `cristal operate` hands its step


# ---------------------------------------------------------------------------
# What a foreground run hands to its step in this process


@dataclass
class Local:
    """Process-local companions of a run: never stored, gone with the process."""

    secrets: dict[str, str] = field(default_factory=dict)
    progress: Progress | None = None
    timing: Timing | None = None
    results: list[RunResult] = field(default_factory=list)


def _local(run_id: str) -> Local | None:
    local: Local | None = extra(run_id, LOCAL)
    return local


# ---------------------------------------------------------------------------
# Ids


def operator_run_id(meta: Meta) -> str:
    """The Operator run's id: the same for the same step (and item) of the same workflow run."""
    return "op_" + hashlib.sha256(meta.key.encode()).hexdigest()[:16]


def approval_step_id(meta: Meta, action_index: int) -> str:
    """The ``step_id`` of an action's approval row: unique per (run, step, item, action index), at most 63 characters."""
    suffix = f"@{action_index}" if meta.item_index is None else f"@{meta.item_index}.{action_index}"
    base = meta.step_id
    if len(base) + len(suffix) > 63:  # keep it unique when the step id has to be shortened
        base = base[:40] + "~" + hashlib.sha256(base.encode()).hexdigest()[:8]
    return base + suffix


# ---------------------------------------------------------------------------
# The step


def operate(db: Database, settings: Settings, meta: Meta, principal: Principal, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the step's task; its output is the run's result (``done``), anything else fails the step."""
    op_id = operator_run_id(meta)
    record = record_path(settings, principal.org_slug or "", spec, op_id)
    if _started_before(db, op_id):
        _cancel_open_approvals(db, meta)
        reason = "interrupted: the browser session was lost (the process running this step stopped mid-task)"
        if record is not None and mark_interrupted(record, reason):
            reason += f"; the record so far is kept in {record}"
        raise StepError(reason + "; its actions are not repeated: check the web application, then run the task again")
    local = _local(meta.run_id)
    max_seconds = float(spec["max_seconds"]) if meta.timeout is None else min(float(spec["max_seconds"]), meta.timeout)
    config = RunConfig(
        task=str(spec["task"]), start_url=str(spec["start_url"]), allow_domains=tuple(str(d) for d in spec["allow_domains"]),
        allow_writes=tuple(str(d) for d in spec.get("allow_writes") or ()),
        secrets=_secrets(db, spec["secrets"], local, principal.org_slug or ""), allow_irreversible=bool(spec["allow_irreversible"]),
        max_steps=int(spec["max_steps"]), max_seconds=max_seconds, record=record,
        screenshots=bool(spec.get("screenshots")) and record is not None, vision=bool(spec.get("vision")), model=spec.get("model"),
        run_id=op_id, workflow_run_id=meta.run_id,
    )
    if local is not None and local.timing is not None:
        config.timing = local.timing
    progress = local.progress if local is not None else None
    if not config.allow_irreversible:
        approvers = list(spec.get("approvers") or []) or [f"user:{meta.owner_email.lower()}"]
        config.approve = _Approvals(db, meta, approvers, float(spec["approval_timeout"]), config.task, progress,
                                    settings.operator_approval_poll_seconds)
    try:
        result = run_operator(db, principal, config, settings=settings, progress=progress)
    except CristalError as exc:  # bad input found at run time (templated values), no model configured ...
        raise StepError(exc.message) from None
    if local is not None:
        local.results.append(result)
    if result.status != "done":
        raise StepError(f"the operator run ended {result.status}: {result.reason}")
    return result.as_dict()


def _started_before(db: Database, op_id: str) -> bool:
    """Whether this step's Operator run already started (its ``operator.run`` audit record exists)."""
    with db.session() as s:
        return s.scalar(select(AuditRecord.id).where(AuditRecord.request_id == op_id, AuditRecord.action == "operator.run",
                                                     AuditRecord.decision == "allow").limit(1)) is not None


def _cancel_open_approvals(db: Database, meta: Meta) -> None:
    """Approvals the lost session was waiting for can no longer lead anywhere."""
    prefix = approval_step_id(meta, 0)[:-1]
    with db.session() as s:
        s.execute(update(WorkflowApproval).where(WorkflowApproval.run_id == meta.run_id, WorkflowApproval.status == "pending",
                                                 WorkflowApproval.step_id.startswith(prefix, autoescape=True))
                  .values(status="cancelled", decided_by="interrupted", decided_at=utcnow()))


def records_dir(settings: Settings, org_slug: str) -> Path:
    """Where the ``operate`` steps of an organization's workflows keep their records."""
    return Path(settings.home).expanduser() / "records" / org_slug


def record_path(settings: Settings, org_slug: str, spec: dict[str, Any], op_id: str) -> Path | None:
    """The step's record file: the CLI's own path, or a plain name inside the organization's records folder.

    ``record`` is checked again here because a template may have produced it.
    """
    local = spec.get(LOCAL_RECORD)
    if local:  # `cristal operate --record FILE`: the employee's own file on their own machine
        return Path(str(local)).expanduser()
    value = spec.get("record")
    if value is None or value is False or value == "":
        return None
    if value is True:
        name = f"{op_id}.json"
    elif isinstance(value, str) and RECORD_NAME.match(value) and org_slug:
        name = value
    else:
        raise StepError(f"invalid record {str(value)[:100]!r}: give a plain file name ending in .json (no folders), or true")
    return records_dir(settings, org_slug) / name


def secret_prefix(org_slug: str) -> str:
    """``CRISTAL_SECRET_<ORG>_``: the organization's secret variables (``acme-eu`` -> ``CRISTAL_SECRET_ACME_EU_``)."""
    return f"{SECRET_ENV_PREFIX}{org_slug.upper().replace('-', '_')}_"


def secret_map(spec_secrets: list[str] | dict[str, str], org_slug: str) -> dict[str, str]:
    """Placeholder name -> environment variable (``[PASSWORD]`` reads ``$CRISTAL_SECRET_<ORG>_PASSWORD``)."""
    if isinstance(spec_secrets, dict):
        return {str(k): str(v) for k, v in spec_secrets.items()}
    return {str(name): secret_prefix(org_slug) + str(name) for name in spec_secrets}


def check_secret_variable(db: Database, org_slug: str, env: str) -> str | None:
    """Why ``env`` is not a secret variable of organization ``org_slug`` (``None`` when it is).

    Prefixes can nest (``acme`` and ``acme-eu``), so a variable belongs to the
    organization with the longest matching prefix.
    """
    own = secret_prefix(org_slug)
    if not org_slug or not env.startswith(own) or not _VAR_REST.match(env[len(own):]):
        return f"{env} is not one of this organization's secret variables (they are named {own}NAME)"
    with db.session() as s:
        slugs = s.scalars(select(Organization.slug)).all()
    for other in slugs:
        prefix = secret_prefix(other)
        if other != org_slug and len(prefix) > len(own) and env.startswith(prefix):
            return f"{env} is a secret variable of another organization, not of this one (its own are named {own}NAME)"
    return None


def _secrets(db: Database, spec_secrets: list[str] | dict[str, str], local: Local | None, org_slug: str) -> Secrets:
    values: dict[str, str] = {}
    for name, env in secret_map(spec_secrets, org_slug).items():
        if local is not None and name in local.secrets:  # given on the `cristal operate` command line, in this process
            values[name] = local.secrets[name]
            continue
        problem = check_secret_variable(db, org_slug, env)
        if problem is not None:  # before any browser starts: nothing is typed
            raise StepError(f"secret {name}: {problem}")
        value = secret_from_env(env)
        if value is not None:
            values[name] = value
        else:
            raise StepError(f"secret {name}: set the environment variable {env} for the process that runs this workflow")
    try:
        return Secrets(values)
    except InvalidInput as exc:
        raise StepError(exc.message) from None


class _Approvals:
    """Asks the step's approvers about one action and waits (browser open) for their decision."""

    def __init__(self, db: Database, meta: Meta, approvers: list[str], timeout: float, task: str, progress: Progress | None,
                 poll_seconds: float) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.meta = meta
        self.approvers = approvers
        self.timeout = timeout
        self.task = task
        self.progress = progress or (lambda kind, message: None)

    def __call__(self, pending: dict[str, Any]) -> ApprovalDecision:
        meta = self.meta
        with self.db.session() as s:
            workflow = s.scalar(select(WorkflowRun.name).where(WorkflowRun.id == meta.run_id)) or WORKFLOW_NAME
        message = (f"The Operator asks to {pending['description']} on {pending['url']} ({pending['reason']}). "
                   f"Task: {self.task[:500]}")
        spec = {"approvers": self.approvers, "message": message, "on_timeout": "fail"}
        approval_id = approvals.request(self.db, meta.run_id, approval_step_id(meta, int(pending["step"])), meta.org_id,
                                        meta.owner_email, workflow, spec, self.timeout)
        self._step_status("running", "waiting")
        who = next((a.removeprefix("user:") for a in self.approvers if a.startswith("user:")), "EMAIL")
        self.progress("approval", f"waiting for approval {approval_id} by {', '.join(self.approvers)}: {pending['description']}\n"
                                  f"  approve: cristal approvals approve {approval_id} --as {who}\n"
                                  f"  reject:  cristal approvals reject {approval_id} --as {who}")
        try:
            state = approvals.await_decision(lambda: approvals.check(self.db, approval_id), time.sleep, self.poll_seconds)
        finally:
            self._step_status("waiting", "running")
        decision = {"approved": "approved", "rejected": "rejected", "cancelled": "cancelled"}.get(state["decision"], "timeout")
        self.progress("decided", f"approval {approval_id}: {decision}" + (f" by {state['by']}" if state.get("by") else ""))
        return ApprovalDecision(decision, approval_id, state.get("by"), state.get("comment"))

    def _step_status(self, old: str, new: str) -> None:
        # Only the step's row: the run stays "running" (a process holds its browser), so watchers keep watching.
        item = -1 if self.meta.item_index is None else self.meta.item_index
        with self.db.session() as s:
            s.execute(update(WorkflowStep).where(WorkflowStep.run_id == self.meta.run_id, WorkflowStep.step_id == self.meta.step_id,
                                                 WorkflowStep.item_index == item, WorkflowStep.status == old).values(status=new))
