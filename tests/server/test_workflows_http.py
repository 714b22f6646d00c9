"""Workflow runs and approvals over HTTP, executed by a real ``cristal worker`` process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cristal.audit.log import query_audit
from cristal.identity import users
from cristal.identity.apikeys import create_api_key
from cristal.identity.directory import resolve_principal
from tests.server.conftest import INSTALLATION, Company, LiveServer, Worker, error_of, person, wait_for

BACKENDS = ("sqlite", "postgres")

REVIEW = """\
name: http-review
inputs:
  amount: 100
steps:
  - id: double
    python: {call: "cristal.sample.checks:double", args: {x: "{{ inputs.amount }}"}}
  - id: sign-off
    approval: {approvers: ["group:finance"], message: "Approve {{ steps.double.output }} EUR?"}
outputs:
  doubled: "{{ steps.double.output }}"
"""


def start(http: Any, inputs: dict[str, Any] | None = None, workflow: str = REVIEW) -> str:
    r = http.post("/api/v1/workflows/runs", json={"workflow": workflow, "inputs": inputs or {}})
    assert r.status_code == 202, r.text
    doc = r.json()
    assert doc["status"] == "queued" and r.headers["location"] == f"/api/v1/runs/{doc['run_id']}"
    return doc["run_id"]


def status(http: Any, run_id: str) -> dict[str, Any]:
    r = http.get(f"/api/v1/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def pending_approval(doc: dict[str, Any]) -> str | None:
    for step in doc["steps"]:
        if step.get("approval") and step["approval"]["status"] == "pending":
            return step["approval"]["id"]
    return None


def test_run_over_http_is_executed_by_a_worker_and_an_http_approval_wakes_it(client, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    fin, eng, admin = client(person("fin", "acme")), client(person("eng", "acme")), client(person("admin", "acme"))
    run_id = start(fin, {"amount": 21})
    other_id = start(fin, {"amount": 1})
    assert status(fin, run_id)["status"] == "queued"
    with Worker(company):
        doc = wait_for(lambda: (d := status(fin, run_id))["status"] == "waiting" and d, what="the run to wait for approval")
        approval_id = pending_approval(doc)
        assert approval_id and doc["steps"][0]["output"] == 42
        # Listed for the approver; not for an engineer who may not decide it.
        assert approval_id in [a["id"] for a in fin.get("/api/v1/approvals").json()["approvals"]]
        assert eng.get("/api/v1/approvals").json()["approvals"] == []
        other = wait_for(lambda: pending_approval(status(fin, other_id)), what="the second run's approval")
        r = fin.post(f"/api/v1/approvals/{other}/reject", json={"comment": "not this one"})
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        # Neither an engineer nor an admin outside group:finance may decide.
        for outsider in (eng, admin):
            r = outsider.post(f"/api/v1/approvals/{approval_id}/approve", json={})
            assert r.status_code == 403 and error_of(r)["type"] == "access_denied"
        # Another organization's finance member gets a 404, not a hint.
        r = client(person("fin", "globex")).post(f"/api/v1/approvals/{approval_id}/approve", json={})
        assert r.status_code == 404
        r = fin.post(f"/api/v1/approvals/{approval_id}/approve", json={"comment": "ok over HTTP"})
        assert r.status_code == 200, r.text
        decided = r.json()
        assert (decided["status"], decided["decided_by"], decided["comment"]) == ("approved", "fin@acme.example", "ok over HTTP")
        done = wait_for(lambda: (d := status(fin, run_id))["status"] in ("succeeded", "failed") and d, what="the run to finish")
    assert done["status"] == "succeeded", done
    assert done["result"] == {"doubled": 42}
    rejected = wait_for(lambda: (d := status(fin, other_id))["status"] not in ("queued", "running", "waiting") and d,
                        what="the rejected run to end")
    assert rejected["status"] == "rejected", rejected
    assert "file" not in done
    # Deciding twice is a clear 400.
    r = fin.post(f"/api/v1/approvals/{approval_id}/reject", json={})
    assert r.status_code == 400 and "already approved" in error_of(r)["message"]
    listed = fin.get("/api/v1/runs").json()["runs"]
    assert sorted((r["run_id"], r["status"]) for r in listed) == sorted([(run_id, "succeeded"), (other_id, "rejected")])
    assert eng.get("/api/v1/runs").json()["runs"] == []  # members see their own runs
    assert {r["run_id"] for r in admin.get("/api/v1/runs").json()["runs"]} == {run_id, other_id}  # admins see all


def test_other_organizations_get_404_even_with_the_same_email(client, company: Company, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    import httpx2 as httpx

    run_id = start(client(person("fin", "acme")))
    # A namesake: the same address in globex is a different person with a key of globex.
    with company.db.session() as s:
        users.add_user(s, INSTALLATION, "globex", "fin@acme.example", role="admin", groups=["finance"])
        me = resolve_principal(s, "globex", "fin@acme.example")
        namesake_key = create_api_key(s, me, "globex", "fin@acme.example")[1]
    namesake = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {namesake_key}"})
    for http in (namesake, client(person("admin", "globex"))):
        for method, path in (("GET", f"/api/v1/runs/{run_id}"), ("POST", f"/api/v1/runs/{run_id}/cancel")):
            r = http.request(method, path)
            assert r.status_code == 404 and error_of(r)["message"] == f"unknown run {run_id!r}"
        assert http.get("/api/v1/runs").json()["runs"] == []
        assert http.get("/api/v1/audit").status_code in (200, 403)
    # Globex's trail names the run only in the records of globex's own probes, which say no more than the 404 did.
    with company.db.session() as s:
        mentions = [r for r in query_audit(s, "globex") if run_id in json.dumps(r.as_dict())]
    assert mentions and {(r.action, r.decision, r.reason) for r in mentions} == {
        ("http.not_found", "deny", f"unknown run {run_id!r}")}
    namesake.close()
    # A member of the same organization who does not own the run is refused (and it is audited).
    r = client(person("eng", "acme")).get(f"/api/v1/runs/{run_id}")
    assert r.status_code == 403
    # The owner cancels it.
    r = client(person("fin", "acme")).post(f"/api/v1/runs/{run_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client(person("fin", "acme")).post(f"/api/v1/runs/{run_id}/cancel")
    assert r.status_code == 400 and "already cancelled" in error_of(r)["message"]


@pytest.mark.parametrize(("workflow", "inputs", "expected"), [
    ("name: [unclosed", {}, "malformed YAML"),
    ("name: x\nsteps:\n  - id: a\n    teleport: {}\n", {}, "teleport"),
    (REVIEW, {"nope": 1}, "has no input 'nope'"),
    ("name: x\nsteps:\n  - id: a\n    workflow: {file: /etc/passwd}\n", {}, "need a workflow file on disk"),
    ("name: x\nsteps:\n  - id: a\n    python: {call: \"os:system\", args: {command: id}}\n", {}, "module 'os' is not allowed"),
    # A (small) alias bomb: nested aliases would expand a 500-byte body into terabytes.
    ("name: x\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
     "steps:\n  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: 1}}\n", {},
     "<request>:3: YAML aliases (*name) are not allowed in workflow files"),
])
def test_invalid_workflows_are_400_with_one_line(client, workflow: str, inputs: dict, expected: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("fin", "acme")).post("/api/v1/workflows/runs", json={"workflow": workflow, "inputs": inputs})
    assert r.status_code == 400, r.text
    assert expected in error_of(r)["message"]
    assert client(person("fin", "acme")).get("/api/v1/runs").json()["runs"] == []


def test_unknown_run_and_approval_are_404(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    http = client(person("fin", "acme"))
    assert http.get("/api/v1/runs/run_0000000000000000").status_code == 404
    assert http.post("/api/v1/approvals/apr_0000000000000000/approve", json={}).status_code == 404



def test_deployed_workflow_started_over_http_with_an_idempotency_key(client, company: Company, settings) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    deployments = pytest.importorskip("cristal.workflows.deployments")
    from cristal.workflows.spec import load_workflow_text

    fin = client(person("fin", "acme"))
    r = fin.post("/api/v1/workflows/review/runs", json={"inputs": {}})
    assert r.status_code == 404 and "review" in error_of(r)["message"]
    deployments.deploy(company.db, load_workflow_text(REVIEW, settings=settings), "acme", "fin@acme.example", name="review")
    first = fin.post("/api/v1/workflows/review/runs", json={"inputs": {"amount": 5}}, headers={"Idempotency-Key": "order-17"})
    again = fin.post("/api/v1/workflows/review/runs", json={"inputs": {"amount": 5}}, headers={"Idempotency-Key": "order-17"})
    other = fin.post("/api/v1/workflows/review/runs", json={"inputs": {"amount": 5}})
    assert [x.status_code for x in (first, again, other)] == [202, 202, 202], first.text
    assert first.json()["run_id"] == again.json()["run_id"] != other.json()["run_id"]
    assert status(fin, first.json()["run_id"])["inputs"] == {"amount": 5}
    # The deployment is acme's: globex's finance member cannot start it by name.
    r = client(person("fin", "globex")).post("/api/v1/workflows/review/runs", json={"inputs": {}})
    assert r.status_code == 404
    r = fin.post("/api/v1/workflows/review/runs", json={"inputs": {"nope": 1}})
    assert r.status_code == 400 and "nope" in error_of(r)["message"]


def _seed_attack(target: str) -> str:
    return ("name: overwrite\nsteps:\n  - id: clobber\n"
            f"    python: {{call: \"cristal.sample.webapps.store:seed_database\", args: {{db_path: \"{target}\", overwrite: true}}}}\n")


def test_a_member_cannot_overwrite_a_file_with_a_python_step_over_http(client, company: Company, tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    # Issue 16, finding 1: the sample's seed_database replaced any file the worker could write.
    target = tmp_path / "precious.txt"
    target.write_text("keep me", encoding="utf-8")
    fin = client(person("fin", "acme"))
    r = fin.post("/api/v1/workflows/runs", json={"workflow": _seed_attack(str(target)), "inputs": {}})
    assert r.status_code == 400, r.text
    message = error_of(r)["message"]
    assert "python module 'cristal.sample.webapps.store' is not allowed in workflows" in message
    assert "<request>:4: step 'clobber'" in message
    # Even with a worker running, nothing was recorded or queued, and the file is as it was.
    with Worker(company):
        assert fin.get("/api/v1/runs").json()["runs"] == []
    assert target.read_text(encoding="utf-8") == "keep me"
