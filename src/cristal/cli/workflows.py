"""``cristal workflow ...``, ``cristal approvals ...`` and ``cristal worker``."""

from __future__ import annotations

import json
import os
import sys
import time

import typer
from rich.progress import SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from cristal.cli.runtime import (
    JSON,
    database,
    markup,
    note,
    open_database,
    print_json,
    progress,
    quiet_progress,
    settings,
    show,
    show_table,
)
from cristal.errors import CristalError, InvalidInput

app = typer.Typer()
workflow_app = typer.Typer(help="Durable workflows: run, inspect, cancel and retry.", no_args_is_help=True)
approvals_app = typer.Typer(help="Human approvals that workflows wait for.", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")
app.add_typer(approvals_app, name="approvals")

POLL = 0.1
_ICONS = {"pending": "·", "running": "▶", "waiting": "⏸", "succeeded": "✓", "skipped": "↷", "reused": "↺",
          "failed": "✗", "rejected": "✗", "cancelled": "■"}


class RunFailed(CristalError):
    exit_code = 1


def _finish(handle_doc: dict, json_out: bool) -> None:
    if json_out:
        print_json(handle_doc)
    status = handle_doc["status"]
    if status == "waiting":
        for step in handle_doc["steps"]:
            if step.get("approval") and step["approval"]["status"] == "pending":
                a = step["approval"]
                note("waiting for approval [bold]{}[/] by {}", a["id"], ", ".join(a["approvers"]))
                note("  approve: cristal approvals approve {} --as EMAIL   (a running `cristal worker` continues the run)", a["id"])
    elif status == "failed":
        raise RunFailed(f"run {handle_doc['run_id']} failed: {handle_doc['error']}")
    elif not json_out:
        show("run [bold]{}[/] {}", handle_doc["run_id"], status)


def _watch(db, run_id: str, email: str, json_out: bool) -> dict:  # type: ignore[no-untyped-def]  # db and the result are untyped here
    from cristal.workflows.service import run_status

    with progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=False, quiet=quiet_progress(json_out)) as bar:
        tasks: dict[str, TaskID] = {}
        while True:
            doc = run_status(db, run_id, email)
            for step in doc["steps"]:
                items = step["items"]
                done = sum(1 for i in items if i["status"] in ("succeeded", "failed"))
                extra = f" ({done}/{len(items)} items)" if items else ""
                error = f" — {step['error']}" if step["error"] else ""
                text = markup("{} {} [dim]{}[/] {}{}{}", _ICONS.get(step["status"], "?"), step["id"], step["kind"], step["status"],
                              extra, error)
                if step["id"] not in tasks:
                    tasks[step["id"]] = bar.add_task(text, total=None)
                bar.update(tasks[step["id"]], description=text)
                if step["status"] in ("succeeded", "failed", "skipped", "reused", "rejected", "cancelled"):
                    bar.update(tasks[step["id"]], total=1, completed=1)
            if doc["status"] in ("succeeded", "failed", "rejected", "cancelled", "waiting"):
                return doc
            time.sleep(POLL)


@workflow_app.command("run")
def workflow_run(
    file: str = typer.Argument(..., help="The workflow file (YAML)."),
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="Run as this employee: every step has exactly their rights."),
    inputs: list[str] = typer.Option([], "--input", help="KEY=VALUE (repeatable); values are read as YAML scalars."),
    queue: bool = typer.Option(False, "--queue", help="Queue the run for `cristal worker` instead of running it here."),
    json_out: bool = JSON,
) -> None:
    """Validate a workflow file and run it as an employee."""
    from cristal.workflows import service
    from cristal.workflows.spec import load_workflow, parse_cli_inputs

    given = parse_cli_inputs(inputs)
    cfg = settings()
    compiled = load_workflow(file, settings=cfg)  # every validation error before anything runs
    db = open_database(cfg)
    try:
        run = service.create_run(db, compiled, org, as_email, given)
        if queue:
            service.enqueue(db, run)
            doc = service.run_status(db, run.run_id, as_email)
            if json_out:
                print_json(doc)
            else:
                show("queued run [bold]{}[/]; `cristal worker` runs it; see `cristal workflow status {}`", run.run_id, run.run_id)
            return
        note("run [bold]{}[/] of {} as {}", run.run_id, compiled.name, as_email)
        _run_here(db, cfg, run, as_email, json_out)
    finally:
        db.dispose()


def _run_here(db, cfg, run, as_email: str, json_out: bool) -> None:  # type: ignore[no-untyped-def]  # db, cfg and run are untyped here
    """Run ``run`` in this process, watching its steps, until it ends or waits for an approval."""
    from cristal.workflows import service

    doc = service.run_here(db, cfg, run, watch=lambda _handle: _watch(db, run.run_id, as_email, json_out))
    _finish(doc, json_out)
    if doc["status"] == "waiting":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the run's thread waits in DBOS.recv; the worker resumes it, nothing here to wait for


def _print_status(doc: dict) -> None:
    show("[bold]{}[/] {} — {} (owner {}, org {})", doc["run_id"], doc["workflow"], doc["status"], doc["owner"], doc["org"])
    if doc.get("error"):
        show("  error: {}", doc["error"])
    rows = []
    for s in doc["steps"]:
        detail = s["error"] or ""
        if s.get("approval"):
            a = s["approval"]
            detail = f"approval {a['id']} {a['status']}" + (f" by {a['decided_by']}" if a["decided_by"] else "")
        elif "output" in s and s["output"] is not None and not detail:
            text = str(s["output"])
            detail = text if len(text) < 80 else text[:77] + "..."
        items = f" ({len(s['items'])} items)" if s["items"] else ""
        rows.append([s["id"], s["kind"], s["status"] + items, s["attempts"], "" if s["seconds"] is None else f"{s['seconds']:.2f}", detail])
    show_table(None, ["step", "kind", "state", "attempts", "seconds", "detail"], rows)


@workflow_app.command("status")
def workflow_status(
    run_id: str,
    as_email: str | None = typer.Option(None, "--as", help="Read as this employee (the owner or an admin) to see outputs."),
    json_out: bool = JSON,
) -> None:
    """Per-step state, outputs, timings and errors of a run."""
    from cristal.workflows.service import run_status

    with database() as db:
        doc = run_status(db, run_id, as_email)
    if json_out:
        print_json(doc)
    else:
        _print_status(doc)


@workflow_app.command("list")
def workflow_list(org: str = typer.Option(..., "--org"), as_email: str = typer.Option(..., "--as"),
                  limit: int = typer.Option(50, "--limit"), json_out: bool = JSON) -> None:
    """Runs of an organization (your own; admins see all)."""
    from cristal.workflows.service import list_runs

    with database() as db:
        runs = list_runs(db, org, as_email, limit=limit)
    if json_out:
        print_json({"runs": runs})
        return
    show_table(f"Workflow runs in {org}", ["run", "workflow", "owner", "status", "created"],
               [[r["run_id"], r["workflow"], r["owner"], r["status"], r["created_at"][:19]] for r in runs])


@workflow_app.command("cancel")
def workflow_cancel(run_id: str, as_email: str = typer.Option(..., "--as"), json_out: bool = JSON) -> None:
    """Cancel a run (the owner or an admin)."""
    from cristal.workflows.service import cancel_run

    with database() as db:
        doc = cancel_run(db, run_id, as_email)
    if json_out:
        print_json(doc)
    else:
        show("cancelled run {}", run_id)


@workflow_app.command("retry")
def workflow_retry(run_id: str, as_email: str = typer.Option(..., "--as"),
                   queue: bool = typer.Option(False, "--queue", help="Queue the retry for `cristal worker`."),
                   json_out: bool = JSON) -> None:
    """Run a failed run again from its failed step (earlier steps' outputs are reused, not repeated)."""
    from cristal.workflows import service

    cfg = settings()
    db = open_database(cfg)
    try:
        run = service.prepare_retry(db, run_id, as_email)
        if queue:
            service.enqueue(db, run)
            doc = service.run_status(db, run.run_id, as_email)
        else:
            note("run [bold]{}[/] retries {}", run.run_id, run_id)
            _run_here(db, cfg, run, as_email, json_out)
            return
    finally:
        db.dispose()
    if json_out:
        print_json(doc)
    else:
        show("queued run {} (retry of {})", run.run_id, run_id)


@workflow_app.command("deploy")
def workflow_deploy(
    file: str = typer.Argument(..., help="The workflow file (YAML); validated and stored in the organization."),
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="The deployer: scheduled runs act as this employee."),
    name: str | None = typer.Option(None, "--name", help="Deployment name (default: the workflow's name)."),
    schedule: str | None = typer.Option(None, "--schedule", help='Cron (UTC): "MIN HOUR DAY MONTH WEEKDAY" (or 6 fields, seconds first).'),
    inputs: list[str] = typer.Option([], "--input", help="KEY=VALUE default input (repeatable); a schedule needs every input."),
    json_out: bool = JSON,
) -> None:
    """Deploy a workflow under a name (replacing a previous version), optionally on a cron schedule."""
    from pathlib import Path

    from cristal.workflows.deployments import deploy
    from cristal.workflows.spec import load_workflow, parse_cli_inputs

    given = parse_cli_inputs(inputs)
    compiled = load_workflow(file)
    source = Path(file).expanduser().read_text(encoding="utf-8-sig")
    with database() as db:
        doc = deploy(db, compiled, org, as_email, name=name, schedule=schedule, inputs=given, source=source)
    if json_out:
        print_json(doc)
        return
    show("deployed [bold]{}[/] (version {}) in {}", doc["name"], doc["version"], org)
    if doc["schedule"]:
        show("  schedule {} (UTC) as {}; next run {} — `cristal worker` fires it", doc["schedule"], doc["deployed_by"], doc["next_fire_at"])
    show("  start: cristal workflow start {} --org {} --as EMAIL", doc["name"], org)


@workflow_app.command("deployments")
def workflow_deployments(org: str = typer.Option(..., "--org"), as_email: str = typer.Option(..., "--as"),
                         json_out: bool = JSON) -> None:
    """The organization's deployed workflows and their schedules."""
    from cristal.workflows.deployments import list_deployments

    with database() as db:
        docs = list_deployments(db, org, as_email)
    if json_out:
        print_json({"deployments": docs})
        return
    if not docs:
        show("no deployments in {}", org)
        return
    show_table(f"Deployed workflows in {org}", ["name", "workflow", "version", "schedule (UTC)", "next run", "deployed by"], [
        [d["name"], d["workflow"], d["version"], d["schedule"] or "",
         (d["next_fire_at"] or "")[:19] if not d["paused_reason"] else f"paused: {d['paused_reason']}", d["deployed_by"]]
        for d in docs
    ])


@workflow_app.command("undeploy")
def workflow_undeploy(name: str, org: str = typer.Option(..., "--org"), as_email: str = typer.Option(..., "--as"),
                      json_out: bool = JSON) -> None:
    """Remove a deployment and its schedule (its deployer or an admin); started runs go on."""
    from cristal.workflows.deployments import undeploy

    with database() as db:
        doc = undeploy(db, org, name, as_email)
    if json_out:
        print_json(doc)
    else:
        show("undeployed {} from {}", name, org)


@workflow_app.command("start")
def workflow_start(
    name: str = typer.Argument(..., help="A deployment name (see `cristal workflow deployments`)."),
    org: str = typer.Option(..., "--org"),
    as_email: str = typer.Option(..., "--as", help="Run as this employee."),
    inputs: list[str] = typer.Option([], "--input", help="KEY=VALUE (repeatable)."),
    key: str | None = typer.Option(None, "--idempotency-key", help="Repeat-safe: the same key returns the same run."),
    json_out: bool = JSON,
) -> None:
    """Queue a run of a deployed workflow for `cristal worker`."""
    from cristal.workflows.deployments import start_deployed
    from cristal.workflows.service import run_status
    from cristal.workflows.spec import parse_cli_inputs

    given = parse_cli_inputs(inputs)
    with database() as db:
        run = start_deployed(db, org, name, as_email, given, idempotency_key=key)
        doc = run_status(db, run.run_id, as_email)
    if json_out:
        print_json(doc)
    else:
        show("queued run [bold]{}[/] of {}; see `cristal workflow status {}`", run.run_id, name, run.run_id)


@workflow_app.command("limits")
def workflow_limits(
    org: str = typer.Option(..., "--org"),
    as_email: str = typer.Option(..., "--as", help="An organization admin (to change limits)."),
    kind: str | None = typer.Option(None, "--kind", help="Step kind: llm, http, sql, python, research, operate."),
    concurrency: int | None = typer.Option(None, "--concurrency", help="At most this many steps of the kind at once, across all workers."),
    rate: str | None = typer.Option(None, "--rate", help="At most N started per period: 10/s, 600/m, 5/10s."),
    clear: bool = typer.Option(False, "--clear", help="Remove the kind's limits."),
    json_out: bool = JSON,
) -> None:
    """Show, or with --kind set, an organization's limits on step kinds (so a thousand runs do not hammer one endpoint)."""
    from cristal.durable.limits import list_limits, set_limits

    if kind is None and (concurrency is not None or rate is not None or clear):
        raise InvalidInput("give --kind with --concurrency, --rate or --clear")
    with database() as db:
        if kind is not None:
            if concurrency is None and rate is None and not clear:
                raise InvalidInput("give --concurrency N, --rate N/PERIOD or --clear with --kind")
            rows = set_limits(db, org, as_email, kind, max_concurrent=concurrency, rate=rate, clear=clear)["limits"]
        else:
            rows = list_limits(db, org, as_email)
    if json_out:
        print_json({"org": org, "limits": rows})
        return
    if not rows:
        show("no step limits in {}", org)
    for r in rows:
        show("{}: concurrency {}, rate {}", r["kind"], r["max_concurrent"] or "unlimited", r["rate"] or "unlimited")


@approvals_app.command("list")
def approvals_list(org: str = typer.Option(..., "--org"), as_email: str = typer.Option(..., "--as"),
                   all_: bool = typer.Option(False, "--all", help="Include decided approvals."), json_out: bool = JSON) -> None:
    """Approvals waiting for you."""
    from cristal.durable.approvals import list_approvals

    with database() as db:
        items = list_approvals(db, org, as_email, include_decided=all_)
    if json_out:
        print_json({"approvals": [i.as_dict() for i in items]})
        return
    if not items:
        show("no approvals waiting for you")
        return
    for i in items:
        mark = "" if i.can_decide else " [dim](you are not an approver)[/]"
        show("[bold]{}[/] {} / {} by {} — {}" + mark, i.id, i.workflow, i.step_id, i.owner, i.status)
        if i.message:
            show("   {}", i.message)
        if i.subject == "conversation" and i.details:
            # The exact call that runs if approved: the approver decides on this, not on a summary.
            show("   call: {} {}", i.details.get("tool"), json.dumps(i.details.get("arguments"), ensure_ascii=False))


def _decide(approval_id: str, as_email: str, decision: str, comment: str | None, json_out: bool) -> None:
    from cristal.durable.approvals import decide

    with database() as db:
        info = decide(db, approval_id, as_email, decision, comment=comment)
    if json_out:
        print_json(info.as_dict())
    else:
        show("approval {} {} by {}", info.id, info.status, info.decided_by)


@approvals_app.command("approve")
def approvals_approve(approval_id: str, as_email: str = typer.Option(..., "--as"),
                      comment: str | None = typer.Option(None, "--comment"), json_out: bool = JSON) -> None:
    """Approve (only a named approver may)."""
    _decide(approval_id, as_email, "approve", comment, json_out)


@approvals_app.command("reject")
def approvals_reject(approval_id: str, as_email: str = typer.Option(..., "--as"),
                     comment: str | None = typer.Option(None, "--comment"), json_out: bool = JSON) -> None:
    """Reject (only a named approver may)."""
    _decide(approval_id, as_email, "reject", comment, json_out)


@app.command("worker")
def worker_command(concurrency: int = typer.Option(16, "--concurrency", help="Runs executed at once by this worker.")) -> None:
    """Run queued workflow runs and resume pending ones until SIGTERM."""
    from cristal.agents.conversations import purge_expired
    from cristal.workflows.worker import Chore, run_worker

    if concurrency < 1:
        raise InvalidInput("--concurrency must be at least 1")
    cfg = settings()
    db = open_database(cfg)

    def purge() -> str | None:  # each organization's conversation retention, enforced
        done = purge_expired(db)
        return "; ".join(f"purged {d['deleted']} conversation(s) of {d['org']} older than {d['retention_days']} days"
                         for d in done) or None

    chores = [Chore("conversation purge", cfg.conversation_purge_interval_seconds, purge)]
    try:
        run_worker(db, cfg, concurrency=concurrency, note=lambda message: note("{}", message), chores=chores)
    finally:
        db.dispose()
