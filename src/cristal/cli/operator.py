"""``cristal operate`` and ``cristal replay``: the Operator at work in a real browser, and repeating what it did."""

from __future__ import annotations

from pathlib import Path

import typer

from cristal.cli.runtime import JSON, acting, note, open_database, print_json, quiet_progress, settings, show, show_text
from cristal.errors import CristalError, InvalidInput

app = typer.Typer()


class RunStopped(CristalError):
    """The run or replay ended without doing its task (the JSON result, if asked for, is already printed)."""

    exit_code = 1


def _progress(quiet: bool):  # type: ignore[no-untyped-def]  # returns a Rich Progress or a null context
    def progress(kind: str, message: str) -> None:
        if kind in ("failed", "diverged", "step_limit", "time_limit", "needs_approval", "approval_timeout"):
            return  # the command's last line says it
        if kind == "approval":  # always: someone has to act on it
            note("[yellow]approval[/] {}", message)
        elif not quiet:
            note("[dim]{:>8}[/] {}", kind, message)
    return progress


def _secret_env(items: list[str]) -> dict[str, str]:
    """The environment variables that bare ``--secret NAME`` items read (through ``secret_from_env``)."""
    from cristal.config import secret_from_env

    names = {item.strip() for item in items if "=" not in item}
    return {name: value for name in names if (value := secret_from_env(name)) is not None}


@app.command("operate")
def operate_command(
    task: str = typer.Argument(..., help="What to do, in plain words."),
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="The employee the run acts for (audited as them)."),
    start_url: str = typer.Option(..., "--start-url", help="Where the browser starts."),
    allow_domain: list[str] = typer.Option([], "--allow-domain",
        help="A domain the run may reach (repeatable); default: the start URL's host and port."),
    allow_writes: list[str] = typer.Option([], "--allow-writes",
        help="A host whose state-changing requests (form posts, non-GET fetches) need no approval (repeatable)."),
    record: Path | None = typer.Option(None, "--record", help="Save the trajectory as JSON (for `cristal replay`)."),
    json_out: bool = JSON,
    secret: list[str] = typer.Option([], "--secret", help="NAME=VALUE (or NAME, read from $NAME): the model sees only {{NAME}}."),
    allow_irreversible: bool = typer.Option(False, "--allow-irreversible",
        help="Let actions that send changes to a server (form posts, non-GET fetches) run without an approval."),
    approver: list[str] = typer.Option([], "--approver",
        help="Who approves the changes an action sends: group:NAME or user:EMAIL (repeatable; default: the employee)."),
    approval_timeout: str = typer.Option("1h", "--approval-timeout",
        help="How long an action waits for its approval (30s, 10m, 2h ...); then the run stops."),
    max_steps: int = typer.Option(30, "--max-steps", help="Stop after this many actions."),
    max_seconds: float = typer.Option(300.0, "--max-seconds",
        help="Stop after this many seconds (time spent waiting for approvals not counted)."),
    screenshots: bool = typer.Option(False, "--screenshots", help="With --record: a PNG per step in FILE.screenshots/."),
    vision: bool = typer.Option(False, "--vision",
        help="Also send the model a screenshot with each observation, and let it click a point of it (click_point)."),
    model: str | None = typer.Option(None, "--model", help="Chat model (default: the configured one)."),
) -> None:
    """Do a task in web applications through a real (headless) browser, as the employee: a durable workflow run."""
    from cristal.durable.durations import parse_duration
    from cristal.operator import RunConfig, Secrets
    from cristal.operator.policy import load_org_domains
    from cristal.operator.run import check_model, validate
    from cristal.workflows.operator_runs import run_task
    from cristal.workflows.spec import approver_rules

    secrets = Secrets.parse(secret, _secret_env(secret))
    try:
        approvers = approver_rules(approver)
        timeout = parse_duration(approval_timeout)
    except ValueError as exc:
        raise InvalidInput(f"{'--approver' if 'approver' in str(exc) else '--approval-timeout'}: {exc}") from None
    config = RunConfig(task=task, start_url=start_url, allow_domains=tuple(allow_domain), secrets=secrets,
                       allow_writes=tuple(allow_writes),
                       allow_irreversible=allow_irreversible, max_steps=max_steps, max_seconds=max_seconds, record=record,
                       screenshots=screenshots and record is not None, vision=vision, model=model)
    validate(config)
    cfg = settings()
    db = open_database(cfg)
    try:
        with db.session() as s:
            principal = acting(s, org, as_email)
        validate(config, load_org_domains(db, principal.org_id))  # the organization's allow-list, before anything starts
        check_model(db, cfg, principal, model)
        quiet = quiet_progress(json_out)

        def created(run_id: str) -> None:
            if not quiet:
                note("run [bold]{}[/] (see `cristal workflow status {}`)", run_id, run_id)

        run = run_task(db, cfg, org, as_email, config, approvers=approvers, approval_timeout=timeout, secrets=secrets,
                       progress=_progress(quiet), on_created=created)
    finally:
        db.dispose()
    if run.result is None:
        raise RunStopped(f"run {run.run_id} failed: {run.error}")
    result = run.result
    if record is not None:
        note("recorded {} step(s) in {}", len(result.steps), record)
    if json_out:
        print_json(result.as_dict())
    if result.status == "done":
        if not json_out:
            show_text(result.result or "")
        return
    raise RunStopped(f"the run stopped ({result.status}): {result.reason}")


@app.command("replay")
def replay_command(
    file: Path = typer.Argument(..., help="A recording made by `cristal operate --record FILE`."),
    json_out: bool = JSON,
    secret: list[str] = typer.Option([], "--secret", help="NAME=VALUE (or NAME, read from $NAME) for each secret the recording types."),
    allow_irreversible: bool = typer.Option(False, "--allow-irreversible", help="Repeat actions that send changes to a server too."),
    org: str | None = typer.Option(None, "--org", help="Organization slug (default: the recording's)."),
    as_email: str | None = typer.Option(None, "--as", help="The employee the replay acts for (default: the recording's)."),
) -> None:
    """Repeat a recorded run with no model: each element is found again by its fingerprint."""
    from cristal.operator import Secrets, load_trajectory, replay_trajectory

    trajectory = load_trajectory(file)
    org = org or trajectory.get("org")
    as_email = as_email or trajectory.get("as")
    if not org or not as_email:
        raise InvalidInput("the recording names no employee: pass --org SLUG --as EMAIL")
    secrets = Secrets.parse(secret, _secret_env(secret))
    db = open_database(settings())
    try:
        with db.session() as s:
            principal = acting(s, org, as_email)
        result = replay_trajectory(db, principal, trajectory, secrets=secrets, allow_irreversible=allow_irreversible,
                                   progress=_progress(quiet_progress(json_out)))
    finally:
        db.dispose()
    if json_out:
        print_json(result.as_dict())
    speed = f" ({result.speedup:.1f}x the recorded run's {result.original_seconds:.1f}s)" if result.speedup else ""
    if result.status == "complete":
        message = f"replayed {result.replayed}/{result.total} step(s) in {result.seconds:.2f}s{speed}; now at {result.final_url}"
        if result.recorded_final_url and result.final_url != result.recorded_final_url:
            message += f" (the recording ended at {result.recorded_final_url})"
        (note if json_out else show)("{}", message)
        return
    if result.status == "needs_approval":
        note("[yellow]paused[/]: {}", result.reason)
        return
    raise RunStopped(f"replay {result.status} after {result.replayed}/{result.total} step(s): {result.reason}")


operator_app = typer.Typer(help="The Operator's organization-wide rules.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")


@operator_app.command("domains")
def operator_domains(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="An admin of the organization."),
    set_domain: list[str] = typer.Option([], "--set", help="Replace the list with these domains (repeatable)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the organization-wide limit."),
    json_out: bool = JSON,
) -> None:
    """Show or set the web domains every Operator run of the organization is limited to (admins)."""
    from cristal.operator.policy import domains_policy

    db = open_database(settings())
    try:
        doc = domains_policy(db, org, as_email, set_domains=set_domain, clear=clear)
    finally:
        db.dispose()
    if json_out:
        print_json(doc)
        return
    domains = doc["allowed_domains"]
    verb = "now " if doc["changed"] else ""
    if domains is None:
        show("{}: Operator runs are {}limited only by their own --allow-domain lists", org, verb)
    else:
        show("{}: Operator runs may {}reach only {}", org, verb, ", ".join(domains) or "no domain at all")
