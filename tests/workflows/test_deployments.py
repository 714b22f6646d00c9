"""Deployed workflows through the functions the CLI and the HTTP server call: deploy, list,
start (with idempotency keys), schedules (claim, missed firings, removed deployers), on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound
from cristal.identity import users
from cristal.workflows import deployments as D
from cristal.workflows.schema import WorkflowDeployment, WorkflowRun
from cristal.workflows.spec import load_workflow_text
from tests.conftest import INSTALLATION
from tests.workflows.conftest import queued_in_dbos as _queued

BACKENDS = ("sqlite", "postgres")

FLOW = """
name: hello
description: says hello
inputs:
  who: null
  times: 1
steps:
  - id: a
    python: {call: "cristal.sample.checks:double", args: {x: "{{ inputs.times }}"}}
"""


@pytest.fixture
def dep_db(two_orgs: Database) -> Database:
    # Starting a run enqueues it for workers; these tests look at what was recorded and queued.
    return two_orgs


def _compiled():  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    return load_workflow_text(FLOW, origin="hello.yaml")


def test_deploy_list_start_and_idempotency(dep_db: Database) -> None:
    doc = D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="greet")
    assert (doc["name"], doc["version"], doc["schedule"], doc["required_inputs"]) == ("greet", 1, None, ["who"])
    assert [d["name"] for d in D.list_deployments(dep_db, "acme", "eng@acme.example")] == ["greet"]
    assert D.list_deployments(dep_db, "globex", "eng@globex.example") == []

    run = D.start_deployed(dep_db, "acme", "greet", "eng@acme.example", {"who": "ann"}, idempotency_key="hook-1")
    again = D.start_deployed(dep_db, "acme", "greet", "eng@acme.example", {"who": "ann"}, idempotency_key="hook-1")
    other = D.start_deployed(dep_db, "acme", "greet", "eng@acme.example", {"who": "ann"}, idempotency_key="hook-2")
    plain = D.start_deployed(dep_db, "acme", "greet", "eng@acme.example", {"who": "bob"})
    # Another member reusing the key gets a run of their own, never the first caller's.
    theirs = D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", {"who": "ann"}, idempotency_key="hook-1")
    assert run.run_id == again.run_id
    assert len({run.run_id, other.run_id, plain.run_id, theirs.run_id}) == 4
    with dep_db.session() as s:
        rows = {r.id: r for r in s.scalars(select(WorkflowRun))}
    assert len(rows) == 4
    assert rows[run.run_id].owner_email == "eng@acme.example"
    assert rows[run.run_id].inputs == {"who": "ann", "times": 1}
    assert rows[run.run_id].status == "queued" and rows[run.run_id].deployment_id is not None
    assert _queued(dep_db, run.run_id) and _queued(dep_db, plain.run_id)


def test_start_errors_reveal_nothing_across_organizations(dep_db: Database) -> None:
    D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="greet")
    with pytest.raises(NotFound) as foreign:
        D.start_deployed(dep_db, "acme", "greet", "fin@globex.example", {"who": "x"})
    assert "greet" not in str(foreign.value)
    with pytest.raises(NotFound, match="unknown deployment 'greet' in organization 'globex'"):
        D.start_deployed(dep_db, "globex", "greet", "fin@globex.example", {"who": "x"})
    with pytest.raises(NotFound, match="unknown organization"):
        D.start_deployed(dep_db, "nope", "greet", "fin@acme.example", {})
    with pytest.raises(InvalidInput, match="needs input 'who'"):
        D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", {})
    with pytest.raises(InvalidInput, match="has no input 'whom'"):
        D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", {"who": "x", "whom": 1})
    with pytest.raises(InvalidInput, match="idempotency key"):
        D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", {"who": "x"}, idempotency_key="a\nb")
    with pytest.raises(InvalidInput, match="inputs must be an object"):
        D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", ["x"])  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(NotFound):
        D.list_deployments(dep_db, "acme", "fin@globex.example")


def test_replace_and_undeploy_need_the_deployer_or_an_admin(dep_db: Database) -> None:
    D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="greet")
    with pytest.raises(AccessDenied):
        D.deploy(dep_db, _compiled(), "acme", "eng@acme.example", name="greet")
    with pytest.raises(AccessDenied):
        D.undeploy(dep_db, "acme", "greet", "eng@acme.example")
    with pytest.raises(AlreadyExists):
        D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="greet", replace=False)
    doc = D.deploy(dep_db, _compiled(), "acme", "admin@acme.example", name="greet", inputs={"who": "z"})
    assert (doc["version"], doc["deployed_by"], doc["required_inputs"]) == (2, "admin@acme.example", [])
    with pytest.raises(NotFound):
        D.undeploy(dep_db, "globex", "greet", "admin@globex.example")
    D.undeploy(dep_db, "acme", "greet", "admin@acme.example")
    assert D.list_deployments(dep_db, "acme", "admin@acme.example") == []
    with dep_db.session() as s:
        actions = [(e.action, e.decision) for e in query_audit(s, "acme")]
    assert ("workflow.undeploy", "deny") in actions and ("workflow.undeploy", "allow") in actions


def test_bad_schedules_and_inputs_are_refused_at_deploy_time(dep_db: Database) -> None:
    for bad in ("61 * * * *", "* * *", "every day", "* * * * * * * *"):
        with pytest.raises(InvalidInput, match="invalid schedule"):
            D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", schedule=bad, inputs={"who": "x"})
    with pytest.raises(InvalidInput, match="needs input 'who'"):
        D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", schedule="0 7 * * 1-5")
    with pytest.raises(InvalidInput, match="has no input 'nobody'"):
        D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", inputs={"nobody": 1})
    with pytest.raises(InvalidInput, match="invalid deployment name"):
        D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="../x")
    assert D.list_deployments(dep_db, "acme", "admin@acme.example") == []


def test_cron_arithmetic() -> None:
    t = datetime(2026, 11, 22, 4, 0, 0, tzinfo=UTC)
    assert D.latest_fire("0 * * * *", t) == t
    assert D.latest_fire("0 * * * *", t + timedelta(minutes=59)) == t
    assert D.next_fire("0 * * * *", t) == t + timedelta(hours=1)
    assert D.next_fire("*/10 * * * * *", t + timedelta(seconds=3)) == t + timedelta(seconds=10)


def test_a_firing_starts_one_run_and_missed_firings_run_once(dep_db: Database) -> None:
    doc = D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="hourly", schedule="0 * * * *",
                   inputs={"who": "cron"})
    first = datetime.fromisoformat(doc["next_fire_at"])
    assert D.fire_due(dep_db, first - timedelta(seconds=1)) == []
    # No worker for five hours and a half: only the latest missed firing runs, once.
    late = first + timedelta(hours=5, minutes=30)
    started = D.fire_due(dep_db, late)
    assert started == [D.schedule_run_id(doc_id(dep_db), first + timedelta(hours=5))]
    assert D.fire_due(dep_db, late) == []
    assert D.fire_due(dep_db, late + timedelta(minutes=29)) == []
    assert len(D.fire_due(dep_db, first + timedelta(hours=6))) == 1
    with dep_db.session() as s:
        runs = list(s.scalars(select(WorkflowRun).order_by(WorkflowRun.id)))
        dep = s.scalar(select(WorkflowDeployment))
    assert [r.owner_email for r in runs] == ["fin@acme.example"] * 2
    assert runs[0].inputs == {"who": "cron", "times": 1}
    assert dep.next_fire_at == first + timedelta(hours=7)
    assert _queued(dep_db, started[0])


def doc_id(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(WorkflowDeployment.id))


def test_a_stale_claim_starts_nothing(dep_db: Database) -> None:
    """Two workers that read the same due firing: only the one whose compare-and-set matches starts a run."""
    doc = D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", schedule="0 * * * *", inputs={"who": "x"})
    due = datetime.fromisoformat(doc["next_fire_at"])
    now = due + timedelta(seconds=5)
    assert D._fire_one(dep_db, doc_id(dep_db), due, now) is not None
    assert D._fire_one(dep_db, doc_id(dep_db), due, now) is None  # the other worker, with the old value
    with dep_db.session() as s:
        assert len(list(s.scalars(select(WorkflowRun)))) == 1


def test_a_removed_deployers_schedule_stops_with_an_audited_deny(dep_db: Database) -> None:
    doc = D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", schedule="*/5 * * * *", inputs={"who": "x"})
    with dep_db.session() as s:
        users.remove_user(s, INSTALLATION, "acme", "fin@acme.example")
    first = datetime.fromisoformat(doc["next_fire_at"])
    assert D.fire_due(dep_db, first) == []
    assert D.fire_due(dep_db, first + timedelta(hours=1)) == []
    with dep_db.session() as s:
        assert list(s.scalars(select(WorkflowRun))) == []
        denied = query_audit(s, "acme", action="workflow.schedule.fire")
    assert [e.decision for e in denied] == ["deny"]
    assert "no longer in the organization" in denied[0].reason
    listed = D.list_deployments(dep_db, "acme", "admin@acme.example")[0]
    assert listed["next_fire_at"] is None and "paused" in listed["paused_reason"]
    # Deploying again (as someone still here) resumes the schedule.
    again = D.deploy(dep_db, _compiled(), "acme", "admin@acme.example", name="hello", schedule="*/5 * * * *",
                     inputs={"who": "x"})
    assert again["paused_reason"] is None and again["next_fire_at"] is not None
    assert len(D.fire_due(dep_db, utcnow() + timedelta(minutes=6))) == 1


def test_a_run_recorded_but_never_queued_is_handed_to_dbos(dep_db: Database) -> None:
    """The starter died between recording the run and enqueueing it: a worker's scan enqueues it."""
    D.deploy(dep_db, _compiled(), "acme", "fin@acme.example", name="greet")
    lost = D._record_deployed(dep_db, "acme", "greet", "fin@acme.example", {"who": "x"}, None)
    queued = D.start_deployed(dep_db, "acme", "greet", "fin@acme.example", {"who": "y"})
    assert not _queued(dep_db, lost.run_id)
    assert D.requeue_orphans(dep_db) == []  # too fresh: its starter may still be enqueueing it
    later = utcnow() + timedelta(minutes=1)
    assert D.requeue_orphans(dep_db, later) == [lost.run_id]
    assert _queued(dep_db, lost.run_id) and _queued(dep_db, queued.run_id)
    assert D.requeue_orphans(dep_db, later) == []
