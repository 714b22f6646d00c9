"""Agent tools that start durable runs as the caller: ``run_workflow`` and ``operate``.

A conversation cannot hold a browser open for days or wait for a workflow's
approvals, so these tools start a run (a ``workflow_runs`` row, queued for
``cristal worker`` like every run) and answer with its id and status once it
has finished, stopped at an approval, or after ``Settings.agent_run_wait_seconds``:

* ``run_workflow`` starts the deployed workflow the agent names
  (``workflows.deployments.start_deployed``: authorized and audited as the
  caller, ``workflow.run``), with the tool call's idempotency key, so a
  repeated call of the same turn returns the run the first one started;
* ``operate`` starts the one-step Operator workflow of ``cristal operate``
  (``workflows.operator_runs.operate_workflow``) within the agent's domains and
  the organization's Operator allow-list; an irreversible-looking action waits
  for an approval by the caller (the run's owner), and the tool answers
  ``waiting_for_approval`` with the approval id.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from cristal.actions.base import ActionContext
from cristal.agents.tools import WAITING_FOR_APPROVAL
from cristal.durable.schema import WorkflowApproval, WorkflowRun
from cristal.operator.run import RunConfig
from cristal.workflows import deployments, service
from cristal.workflows.operator_runs import operate_workflow

POLL_SECONDS = 0.05


def _pending_approval(s: Any, run_id: str) -> WorkflowApproval | None:
    pending = select(WorkflowApproval).where(WorkflowApproval.run_id == run_id, WorkflowApproval.status == "pending")
    approval: WorkflowApproval | None = s.scalar(pending.order_by(WorkflowApproval.requested_at.desc()).limit(1))
    return approval


def settle(ctx: ActionContext, run_id: str) -> dict[str, Any]:
    """The run's state once it has finished or waits for an approval, or as it is after the configured wait.

    Polled from the run's own row (the caller owns it): ``run_status``, which authorizes and audits, is read
    once at the end.
    """
    deadline = time.monotonic() + ctx.settings.agent_run_wait_seconds
    while True:
        with ctx.db.session() as s:
            status = s.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id))
            waiting = _pending_approval(s, run_id) is not None
        if waiting or status not in ("queued", "running") or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    doc = service.run_status(ctx.db, run_id, ctx.principal.name, org_slug=ctx.org)
    out: dict[str, Any] = {"run_id": run_id, "workflow": doc["workflow"], "status": doc["status"]}
    with ctx.db.session() as s:
        approval = _pending_approval(s, run_id)
        if approval is not None:
            out.update(status=WAITING_FOR_APPROVAL, approval_id=approval.id, approvers=list(approval.approvers),
                       message=approval.message)
    if doc["status"] == "succeeded":
        out["result"] = doc.get("result")
    elif doc.get("error"):
        out["error"] = doc["error"]
    if out["status"] in ("queued", "running"):
        out["note"] = "the run goes on in a cristal worker; cristal workflow status RUN_ID shows how it ends"
    return out


def run_workflow(ctx: ActionContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Start the deployed workflow ``spec['workflow']`` with ``spec['inputs']`` as the caller."""
    run = deployments.start_deployed(ctx.db, ctx.org, str(spec["workflow"]), ctx.principal.name, dict(spec["inputs"]),
                                     idempotency_key=ctx.idempotency_key)
    return settle(ctx, run.run_id)


def operate(ctx: ActionContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Start an Operator run of ``spec`` (the ``operate`` action's spec) as the caller, queued for a worker."""
    config = RunConfig(task=str(spec["task"]), start_url=str(spec["start_url"]), allow_domains=tuple(spec["allow_domains"]),
                       max_steps=int(spec["max_steps"]), max_seconds=float(spec["max_seconds"]), model=spec.get("model"))
    compiled, inputs = operate_workflow(config, approvers=list(spec.get("approvers") or []),
                                        approval_timeout=float(spec["approval_timeout"]), secret_names=[])
    run = service.create_run(ctx.db, compiled, ctx.org, ctx.principal.name, inputs)
    service.enqueue(ctx.db, run)
    return settle(ctx, run.run_id)


STARTERS = {"run_workflow": run_workflow, "operate": operate}
