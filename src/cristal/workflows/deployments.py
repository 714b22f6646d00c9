"""Deployed workflows: named, validated definitions stored in an organization, started by hand,
from an HTTP call, or by a cron schedule fired from ``cristal worker`` processes.

Who a run acts as
-----------------
* A run started by a person or an HTTP call (``start_deployed``) acts as that person: they must
  be a member of the organization, and every step is authorized as them.
* A scheduled run acts as the *deployer* (whoever last deployed the name). The deployer is
  re-resolved and re-authorized (``workflow.schedule.fire``, audited) at every firing, so a
  removed user's schedule stops: the firing is refused with an audited deny and the schedule is
  paused (``paused_reason``) until someone deploys the name again.

How a firing starts exactly one run
-----------------------------------
DBOS Transact 3.4 has cron schedules of its own (``DBOS.create_schedule``): a thread per schedule
in every process, deterministic workflow ids ``sched-NAME-TIME``, and missed firings either all
backfilled or all dropped. Cristal drives firings from its own ``workflow_deployments`` table
instead, with the same deterministic-id idea, because (1) the firing must resolve and authorize the
deployer and write Cristal's run row in one transaction, (2) we want the "latest missed firing
once" policy, which DBOS does not offer, and (3) one indexed query per scan costs the same for ten
schedules or ten thousand, where DBOS would start a thread per schedule in every worker.

Each worker scan selects deployments whose ``next_fire_at`` has passed and *claims* each one with
a compare-and-set (``UPDATE ... SET next_fire_at = NEW WHERE id = ? AND next_fire_at = OLD``): on
PostgreSQL the row lock makes exactly one worker's update match; on SQLite writers serialize. The
claim, the authorization and the run row (id ``sched_<deployment>_<fire time>``, a primary key, so
even a double claim could not record two runs) commit together; the run is then enqueued to DBOS
under the same id (enqueueing an existing id is a no-op). A worker that dies between commit and
enqueue leaves a ``queued`` run that ``requeue_orphans`` hands to DBOS on a later scan.

Missed firings: when no worker ran for a while, the *latest* missed firing runs once, the earlier
ones are skipped (a report due hourly should not run 40 times after a long weekend).

Cron expressions: 5 fields (minute hour day month weekday), or 6 with seconds first, in UTC.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from cristal.audit.log import write_audit
from cristal.db import Database
from cristal.db.schema import Organization, utcnow
from cristal.errors import AlreadyExists, InvalidInput, NotFound
from cristal.identity.authorize import authorize, require
from cristal.identity.directory import in_org, member, resolve_principal
from cristal.identity.principal import Principal
from cristal.workflows.schema import WorkflowDeployment, WorkflowRun
from cristal.workflows.service import NewRun, enqueue, new_run_id, payload_for, record_run
from cristal.workflows.spec import Compiled, parse_inputs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
MAX_KEY = 200
SCHEDULER = Principal.installation("workflow-scheduler")
ORPHAN_AFTER = timedelta(seconds=15)
ORPHAN_AFTER_UNDEPLOYED = timedelta(minutes=5)  # see requeue_orphans

__all__ = [
    "NewRun",
    "check_cron",
    "deploy",
    "fire_due",
    "latest_fire",
    "list_deployments",
    "next_fire",
    "requeue_orphans",
    "start_deployed",
    "undeploy",
]


# ---------------------------------------------------------------------------
# Cron


def _cron(expr: str, start: datetime) -> croniter:
    return croniter(expr, start, second_at_beginning=len(expr.split()) == 6)


def check_cron(expr: str) -> str:
    """A cron expression with 5 fields (or 6, seconds first); ``InvalidInput`` otherwise."""
    expr = " ".join(str(expr).split())
    fields = len(expr.split())
    if fields not in (5, 6):
        raise InvalidInput(f"invalid schedule {expr!r}: give 5 cron fields (minute hour day month weekday), "
                           "or 6 with seconds first, e.g. \"0 7 * * 1-5\"")
    if not croniter.is_valid(expr, second_at_beginning=fields == 6):
        raise InvalidInput(f"invalid schedule {expr!r}: not a cron expression (e.g. \"*/15 * * * *\")")
    try:
        _cron(expr, utcnow()).get_next(datetime)
    except Exception as exc:  # noqa: BLE001 - e.g. "30 2 31 2 *" never happens
        raise InvalidInput(f"invalid schedule {expr!r}: {exc}") from None
    return expr


def next_fire(expr: str, after: datetime) -> datetime:
    """The first firing strictly after ``after``."""
    return _cron(expr, after.replace(microsecond=0)).get_next(datetime).astimezone(UTC)


def latest_fire(expr: str, now: datetime) -> datetime:
    """The latest firing at or before ``now``."""
    return _cron(expr, now.replace(microsecond=0) + timedelta(seconds=1)).get_prev(datetime).astimezone(UTC)


# ---------------------------------------------------------------------------
# Deploying


def _deployment(s: Session, org: Organization, name: str) -> WorkflowDeployment:
    dep = s.scalar(select(WorkflowDeployment).where(WorkflowDeployment.org_id == org.id, WorkflowDeployment.name == name))
    if dep is None:
        raise NotFound(f"unknown deployment {name!r} in organization {org.slug!r}")
    return dep


def _resource(org: Organization, dep: WorkflowDeployment | None, name: str) -> Any:
    return in_org(org, "workflow-deployment", name, owner_user_id=dep.deployed_by_user_id if dep else None)


def _check_inputs(compiled: Compiled, given: dict[str, Any], scheduled: bool) -> dict[str, Any]:
    """Deploy-time input defaults: known names only; a schedule has nobody to give missing ones."""
    for key in given:
        if key not in compiled.inputs:
            known = ", ".join(sorted(compiled.inputs)) or "none"
            raise InvalidInput(f"workflow {compiled.name!r} has no input {key!r} (inputs: {known})")
    values = {**compiled.inputs, **given}
    if scheduled:
        parse_inputs(compiled, given)  # raises on a missing input
    return values


def describe(dep: WorkflowDeployment, org_slug: str) -> dict[str, Any]:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "name": dep.name, "org": org_slug, "workflow": dep.workflow, "description": dep.definition.get("description", ""),
        "version": dep.version, "origin": dep.origin, "inputs": dep.inputs,
        "required_inputs": sorted(k for k, v in dep.inputs.items() if v is None),
        "schedule": dep.schedule, "timezone": "UTC" if dep.schedule else None, "deployed_by": dep.deployed_by_email,
        "created_at": iso(dep.created_at), "updated_at": iso(dep.updated_at), "next_fire_at": iso(dep.next_fire_at),
        "last_fired_at": iso(dep.last_fired_at), "paused_reason": dep.paused_reason,
    }


def deploy(db: Database, compiled: Compiled, org_slug: str, email: str, *, name: str | None = None,
           schedule: str | None = None, inputs: dict[str, Any] | None = None, source: str = "",
           replace: bool = True) -> dict[str, Any]:
    """Store (or replace) a validated workflow under ``name`` in the organization.

    A new name needs ``workflow.deploy`` (any member); replacing an existing one needs
    ``workflow.undeploy`` on it (its deployer or an admin). The deployer becomes the identity
    scheduled runs act as.
    """
    name = name or compiled.name
    if not NAME.match(name):
        raise InvalidInput(f"invalid deployment name {name!r}: letters, digits, '.', '_' and '-', up to 200")
    cron = check_cron(schedule) if schedule else None
    defaults = _check_inputs(compiled, inputs or {}, scheduled=cron is not None)
    now = utcnow()
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        dep = s.scalar(select(WorkflowDeployment).where(WorkflowDeployment.org_id == org.id, WorkflowDeployment.name == name))
        details = {"workflow": compiled.name, "origin": str(compiled.path), "schedule": cron, "inputs": inputs or {}}
        if dep is None:
            require(s, principal, "workflow.deploy", _resource(org, None, name), details=details)
            dep = WorkflowDeployment(org_id=org.id, name=name, version=0, created_at=now)
            s.add(dep)
        else:
            if not replace:
                raise AlreadyExists(f"deployment {name!r} already exists in organization {org_slug!r}")
            require(s, principal, "workflow.undeploy", _resource(org, dep, name), details={**details, "replaces": dep.version})
        dep.workflow = compiled.name
        dep.origin = str(compiled.path)
        dep.source = source
        dep.definition = compiled.definition
        dep.inputs = defaults
        dep.schedule = cron
        dep.deployed_by_user_id = principal.user_id
        dep.deployed_by_email = principal.name
        dep.version = (dep.version or 0) + 1
        dep.updated_at = now
        dep.next_fire_at = next_fire(cron, now) if cron else None
        dep.paused_reason = None
        s.flush()
        return describe(dep, org.slug)


def undeploy(db: Database, org_slug: str, name: str, email: str) -> dict[str, Any]:
    """Remove a deployment (its deployer or an admin); runs already started go on."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        dep = _deployment(s, org, name)
        require(s, principal, "workflow.undeploy", _resource(org, dep, name), details={"version": dep.version})
        doc = describe(dep, org.slug)
        s.delete(dep)
        return doc


def list_deployments(db: Database, org_slug: str, email: str) -> list[dict[str, Any]]:
    """The organization's deployments (any member may see and start them)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        require(s, principal, "workflow.deployments", in_org(org, "workflow-deployments"))
        deps = s.scalars(select(WorkflowDeployment).where(WorkflowDeployment.org_id == org.id).order_by(WorkflowDeployment.name))
        return [describe(d, org.slug) for d in deps]


# ---------------------------------------------------------------------------
# Starting


def _keyed_run_id(deployment_id: int, user_id: int | None, key: str) -> str:
    # Scoped to the caller too: another member reusing a key must not learn (or get) someone else's run.
    digest = hashlib.sha256(f"{deployment_id}\x00{user_id}\x00{key}".encode()).hexdigest()[:20]
    return f"run_k{digest}"


def _check_key(key: object) -> str | None:  # object: the HTTP body may carry anything
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY or any(ord(c) < 32 for c in key):
        raise InvalidInput(f"invalid idempotency key: 1 to {MAX_KEY} printable characters")
    return key


def start_deployed(db: Database, org_slug: str, name: str, email: str, inputs: dict[str, Any], *,
                   idempotency_key: str | None = None) -> NewRun:
    """Start a run of deployment ``name`` as ``email`` and enqueue it for ``cristal worker``.

    Raises ``NotFound`` (unknown organization, user or deployment: a non-member learns nothing
    about the organization's deployments), ``AccessDenied`` and ``InvalidInput``. With an
    ``idempotency_key``, a repeated call by the same person for the same deployment returns the
    run the first call started (and makes sure it is queued) instead of starting another.
    """
    key = _check_key(idempotency_key)
    if not isinstance(inputs, dict):
        raise InvalidInput("inputs must be an object of name: value")
    for attempt in range(2):
        try:
            run = _record_deployed(db, org_slug, name, email, inputs, key)
            break
        except IntegrityError:
            # A concurrent call with the same key recorded the run first: the next pass returns it.
            if attempt == 1 or key is None:
                raise
    enqueue(db, run)
    return run


def _record_deployed(db: Database, org_slug: str, name: str, email: str, inputs: dict[str, Any], key: str | None) -> NewRun:
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        dep = _deployment(s, org, name)
        run_id = _keyed_run_id(dep.id, principal.user_id, key) if key else new_run_id()
        existing = s.get(WorkflowRun, run_id) if key else None
        require(s, principal, "workflow.run", in_org(org, "workflow", dep.workflow), request_id=run_id,
                details={"deployment": dep.name, "version": dep.version, "idempotency_key": key,
                         "existing": existing is not None})
        if existing is not None:
            return NewRun(existing.id, payload_for(existing.definition, existing.inputs, org.id, existing.owner_email))
        values = parse_inputs(Compiled(Path(dep.origin), dep.definition), {**dep.inputs, **inputs})
        run = record_run(s, org, principal, dep.definition, f"deployment:{dep.name}@{dep.version}", values, run_id,
                         deployment_id=dep.id, idempotency_key=key)
        s.flush()
        return run


# ---------------------------------------------------------------------------
# Schedules (called from ``cristal worker``)


def schedule_run_id(deployment_id: int, fire_at: datetime) -> str:
    return f"sched_{deployment_id}_{fire_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def fire_due(db: Database, now: datetime | None = None, *, limit: int = 100) -> list[str]:
    """Start one run for every schedule whose time has come; returns the ids of the runs started here."""
    now = now or utcnow()
    with db.session() as s:
        due = list(s.execute(select(WorkflowDeployment.id, WorkflowDeployment.next_fire_at)
                             .where(WorkflowDeployment.next_fire_at.is_not(None), WorkflowDeployment.next_fire_at <= now)
                             .order_by(WorkflowDeployment.next_fire_at).limit(limit)))
    started: list[str] = []
    for dep_id, claimed_at in due:
        if claimed_at is None:  # not possible by the query; narrows the type
            continue
        try:
            run = _fire_one(db, dep_id, claimed_at, now)
        except IntegrityError:
            continue  # the run of this firing exists already
        except (OperationalError, InterfaceError):
            raise  # the database itself is failing: every deployment would; the worker retries the scan
        except Exception as exc:  # noqa: BLE001 - one broken deployment must not stop every organization's schedules
            _pause_broken(db, dep_id, exc)
            continue
        if run is None:
            continue
        started.append(run.run_id)
        try:
            # Right after its own commit, so a later deployment's failure cannot strand this run.
            enqueue(db, run)
        except Exception:  # noqa: BLE001 - recorded as queued: ``requeue_orphans`` hands it to DBOS later
            continue
    return started


def _pause_broken(db: Database, dep_id: int, exc: BaseException) -> None:
    """Pause a deployment whose firing failed, with the reason, audited, in a transaction of its own
    (the firing's was rolled back, claim included)."""
    message = " ".join(str(exc).split())[:300] or type(exc).__name__
    reason = f"firing failed ({type(exc).__name__}: {message}); schedule paused until the name is deployed again"
    try:
        with db.session() as s:
            dep = s.get(WorkflowDeployment, dep_id)
            if dep is None:
                return
            org = s.get(Organization, dep.org_id)
            _pause(s, dep_id, reason)
            if org is not None:
                write_audit(s, principal=SCHEDULER, action="workflow.schedule.fire", resource=_resource(org, dep, dep.name),
                            decision="deny", reason=reason,
                            details={"deployment": dep.name, "version": dep.version, "error": type(exc).__name__})
    except Exception:  # noqa: BLE001 - pausing is best effort; the next scan tries the firing (and this) again
        return


def _fire_one(db: Database, dep_id: int, claimed_at: datetime, now: datetime) -> NewRun | None:
    with db.session() as s:
        dep = s.get(WorkflowDeployment, dep_id)
        if dep is None or dep.schedule is None:
            return None
        fire_at = max(latest_fire(dep.schedule, now), claimed_at)
        following = next_fire(dep.schedule, now)
        # The claim: only the worker whose update still sees the old next_fire_at goes on.
        claimed: CursorResult[Any] = s.execute(update(WorkflowDeployment)  # type: ignore[assignment]  # an UPDATE returns a cursor result
                            .where(WorkflowDeployment.id == dep_id, WorkflowDeployment.next_fire_at == claimed_at)
                            .values(next_fire_at=following, last_fired_at=fire_at)
                            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            return None
        org = s.get(Organization, dep.org_id)
        if org is None:
            return None  # the organization is gone; its deployments go with it
        run_id = schedule_run_id(dep.id, fire_at)
        details = {"deployment": dep.name, "version": dep.version, "fire_at": fire_at.isoformat(),
                   "skipped_missed": claimed_at < fire_at}
        try:
            principal = resolve_principal(s, org.slug, dep.deployed_by_email)
        except NotFound as exc:
            reason = f"the deployer {dep.deployed_by_email} is no longer in the organization ({exc}); schedule paused"
            write_audit(s, principal=SCHEDULER, action="workflow.schedule.fire", resource=_resource(org, dep, dep.name),
                        decision="deny", reason=reason, request_id=run_id, details=details)
            _pause(s, dep_id, reason)
            return None
        decision = authorize(s, principal, "workflow.schedule.fire", _resource(org, dep, dep.name), request_id=run_id,
                             details=details)
        if not decision.allowed:
            _pause(s, dep_id, f"the deployer {dep.deployed_by_email} may no longer run it: {decision.reason}")
            return None
        return record_run(s, org, principal, dep.definition, f"deployment:{dep.name}@{dep.version}",
                          parse_inputs(Compiled(Path(dep.origin), dep.definition), dep.inputs), run_id,
                          deployment_id=dep.id)


def _pause(s: Any, dep_id: int, reason: str) -> None:
    s.execute(update(WorkflowDeployment).where(WorkflowDeployment.id == dep_id)
              .values(next_fire_at=None, paused_reason=reason).execution_options(synchronize_session=False))


def requeue_orphans(db: Database, now: datetime | None = None, *, limit: int = 100, max_batches: int = 20) -> list[str]:
    """Top-level runs recorded as queued but never handed to DBOS (their starter died, or its enqueue
    failed, in between): enqueue them.

    Every starter records the run, commits, then enqueues it (or, in the foreground, launches DBOS
    here and starts it): only a run older than the grace period and unknown to DBOS is an orphan.
    Deployment runs are enqueued right after their commit; other runs may be started by a
    foreground ``cristal workflow run``/``research``/``operate`` that first launches DBOS, so
    they get a longer grace. Child runs (``parent_run_id``) belong to their parent's workflow.
    """
    from cristal.durable.runtime import client
    from cristal.workflows.service import retry_seed

    now = now or utcnow()
    deployed_before, other_before = now - ORPHAN_AFTER, now - ORPHAN_AFTER_UNDEPLOYED
    due = and_(WorkflowRun.status == "queued", WorkflowRun.parent_run_id.is_(None),
               WorkflowRun.created_at < deployed_before,
               or_(WorkflowRun.deployment_id.is_not(None), WorkflowRun.created_at < other_before))
    orphans: list[str] = []
    cursor: tuple[datetime, str] | None = None
    # In batches: a backlog of runs DBOS does know (queued, waiting for a worker) must not hide
    # the orphans recorded after it.
    for _batch in range(max_batches):
        query = select(WorkflowRun).where(due).order_by(WorkflowRun.created_at, WorkflowRun.id).limit(limit)
        if cursor is not None:
            query = query.where(or_(WorkflowRun.created_at > cursor[0],
                                    and_(WorkflowRun.created_at == cursor[0], WorkflowRun.id > cursor[1])))
        with db.session() as s:
            rows = list(s.scalars(query))
            found = [(r.id, NewRun(r.id, payload_for(r.definition, r.inputs, r.org_id, r.owner_email,
                                                      retry_seed(s, r.retry_of, r.definition) if r.retry_of else None)))
                     for r in rows]
        if not rows:
            break
        cursor = (rows[-1].created_at, rows[-1].id)
        known = {w.workflow_id for w in client(db).list_workflows(workflow_ids=[i for i, _ in found],
                                                                          load_input=False, load_output=False)}
        for run_id, run in found:
            if run_id not in known:
                enqueue(db, run)
                orphans.append(run_id)
        if len(rows) < limit:
            break
    return orphans
