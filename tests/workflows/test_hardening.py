"""Workflow YAML from any member (over HTTP) cannot exhaust memory, reach internal addresses, strand
runs in the queue, stop other organizations' schedules or set meaningless limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from cristal.actions import build_registry
from cristal.audit.log import query_audit
from cristal.config import Settings, load_settings
from cristal.db import Database
from cristal.db.schema import Organization, utcnow
from cristal.durable import limits
from cristal.errors import InvalidInput
from cristal.workflows import deployments as D
from cristal.workflows import service
from cristal.workflows.schema import WorkflowDeployment, WorkflowLimit, WorkflowRun
from cristal.workflows.spec import load_workflow_text
from cristal.workflows.steps import Meta, StepError, perform
from tests.workflows.conftest import queued_in_dbos as _queued

BACKENDS = ("sqlite", "postgres")

FLOW = """
name: hello
inputs:
  who: null
steps:
  - id: a
    python: {call: "cristal.sample.checks:double", args: {x: 2}}
"""


# ---------------------------------------------------------------------------
# 1. YAML aliases


def test_yaml_aliases_are_refused_before_anything_expands() -> None:
    # Five levels of nine aliases (9**5 strings); each further level of 30 bytes multiplies it by nine.
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 5)]
    bomb = "name: bomb\n" + "\n".join(levels) + "\nsteps: *l4\n"
    with pytest.raises(InvalidInput) as caught:
        load_workflow_text(bomb, origin="bomb.yaml")
    assert str(caught.value) == "bomb.yaml:3: YAML aliases (*name) are not allowed in workflow files"
    merge = "name: x\nbase: &base {retry: {attempts: 2}}\nsteps:\n  - <<: *base\n    id: a\n    python: {call: \"m:f\"}\n"
    with pytest.raises(InvalidInput, match=r"^m\.yaml:4: YAML aliases"):
        load_workflow_text(merge, origin="m.yaml")


# ---------------------------------------------------------------------------
# 2. http steps and internal addresses


class _Server:
    """Loopback HTTP server: ``/ok`` answers JSON, ``/to?url=U`` redirects to ``U``; it records every path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # the base class's naming
                outer.paths.append(self.path)
                if self.path.startswith("/to?url="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/to?url="))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps({"ok": True, "key": self.headers.get("Idempotency-Key")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.close()


def _call(db: Database, url: str, *, allow_private: bool = False) -> Any:
    with db.session() as s:
        org_id = s.scalar(select(Organization.id).where(Organization.slug == "acme"))
    meta = Meta(run_id="run_test", step_id="fetch", item_index=None, org_id=org_id, owner_email="fin@acme.example",
                timeout=10)
    settings = Settings(workflow_http_allow_private=allow_private)
    return perform(build_registry(), db, settings, "http", meta, {"url": url, "method": "GET"})


def _set_org_domains(db: Database, domains: list[str] | None) -> None:
    with db.session() as s:
        s.execute(update(Organization).where(Organization.slug == "acme").values(operator_allowed_domains=domains))


def test_http_steps_refuse_internal_addresses_by_default(two_orgs: Database, web: _Server) -> None:
    assert load_settings().workflow_http_allow_private is False
    cases = {
        f"http://127.0.0.1:{web.port}/ok": "127.0.0.1 is a loopback address",
        f"http://localhost:{web.port}/ok": "localhost (127.0.0.1) is a loopback address",  # checked after DNS
        f"http://[::ffff:127.0.0.1]:{web.port}/ok": "::ffff:127.0.0.1 is a loopback address",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
        "http://10.1.2.3:5432/": "10.1.2.3 is a private address",
        "http://[fd00::1]/": "fd00::1 is a private address",
        "http://0.0.0.0:80/": "0.0.0.0 is an unspecified address",
        "http://224.0.0.1/": "224.0.0.1 is a multicast address",
    }
    for url, expected in cases.items():
        with pytest.raises(StepError) as caught:
            _call(two_orgs, url)
        assert str(caught.value) == (f"http step 'fetch': {expected}; allow it with CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE "
                                     "or the organization's allow-list"), url
        assert caught.value.retriable is False
    assert web.paths == []  # nothing was sent


def test_the_setting_allows_internal_addresses(two_orgs: Database, web: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE", "true")
    assert load_settings().workflow_http_allow_private is True
    out = _call(two_orgs, f"http://127.0.0.1:{web.port}/ok", allow_private=True)
    assert out == {"status": 200, "body": {"ok": True, "key": "run_test:fetch"}}
    # Redirects are followed (by Cristal, hop by hop).
    out = _call(two_orgs, f"http://127.0.0.1:{web.port}/to?url=/ok", allow_private=True)
    assert out["status"] == 200 and web.paths == ["/ok", "/to?url=/ok", "/ok"]


def test_the_organizations_allow_list_applies_to_every_hop(two_orgs: Database, web: _Server) -> None:
    # An admin listing a host admits it, internal address included, without the process-wide setting.
    _set_org_domains(two_orgs, [f"127.0.0.1:{web.port}"])
    assert _call(two_orgs, f"http://127.0.0.1:{web.port}/ok")["status"] == 200
    with pytest.raises(StepError, match=r"^http step 'fetch': example\.com is not in the organization's allowed "
                                        rf"domains \(127\.0\.0\.1:{web.port}\)$"):
        _call(two_orgs, "http://example.com/")
    # A listed host redirecting to an unlisted one: the redirect is refused, not followed.
    with pytest.raises(StepError, match=r"localhost is not in the organization's allowed domains") as caught:
        _call(two_orgs, f"http://127.0.0.1:{web.port}/to?url=http://localhost:{web.port}/ok")
    assert caught.value.retriable is False
    assert web.paths == ["/ok", f"/to?url=http://localhost:{web.port}/ok"]
    # Even with the setting on, the list still limits where steps go.
    with pytest.raises(StepError, match="not in the organization's allowed domains"):
        _call(two_orgs, f"http://localhost:{web.port}/ok", allow_private=True)


# ---------------------------------------------------------------------------
# 3. Runs recorded but never queued


def test_every_top_level_run_recorded_but_never_queued_is_handed_to_dbos(two_orgs: Database) -> None:
    """A run started over HTTP (or by hand) whose enqueue failed after its commit; children stay with their parent."""
    compiled = load_workflow_text(FLOW, origin="hello.yaml")
    lost = service.create_run(two_orgs, compiled, "acme", "fin@acme.example", {"who": "x"})  # never enqueued
    with two_orgs.session() as s:
        parent = s.get(WorkflowRun, lost.run_id)
        s.add(WorkflowRun(id="run_child", org_id=parent.org_id, owner_user_id=parent.owner_user_id,
                          owner_email=parent.owner_email, name="child", file="child.yaml", definition=parent.definition,
                          inputs={"who": "c"}, status="queued", parent_run_id=lost.run_id))
    assert D.requeue_orphans(two_orgs) == []
    # Past the deployment runs' grace but within the foreground starters' (which launch DBOS first).
    assert D.requeue_orphans(two_orgs, utcnow() + timedelta(minutes=1)) == []
    later = utcnow() + D.ORPHAN_AFTER_UNDEPLOYED + timedelta(seconds=1)
    assert D.requeue_orphans(two_orgs, later) == [lost.run_id]
    assert _queued(two_orgs, lost.run_id) and not _queued(two_orgs, "run_child")
    assert D.requeue_orphans(two_orgs, later) == []


def test_orphans_behind_a_backlog_of_queued_runs_are_found(two_orgs: Database) -> None:
    compiled = load_workflow_text(FLOW, origin="hello.yaml")
    backlog = [service.create_run(two_orgs, compiled, "acme", "fin@acme.example", {"who": str(i)}) for i in range(3)]
    for run in backlog:
        service.enqueue(two_orgs, run)  # known to DBOS, waiting for a worker
    lost = service.create_run(two_orgs, compiled, "acme", "fin@acme.example", {"who": "lost"})
    later = utcnow() + D.ORPHAN_AFTER_UNDEPLOYED + timedelta(seconds=1)
    assert D.requeue_orphans(two_orgs, later, limit=2) == [lost.run_id]


# ---------------------------------------------------------------------------
# 4. One broken deployment


def test_a_broken_deployment_is_paused_and_the_others_still_fire(two_orgs: Database) -> None:
    compiled = load_workflow_text(FLOW, origin="hello.yaml")
    broken = D.deploy(two_orgs, compiled, "acme", "fin@acme.example", name="broken", schedule="*/5 * * * *",
                      inputs={"who": "x"})
    D.deploy(two_orgs, compiled, "globex", "fin@globex.example", name="fine", schedule="*/5 * * * *", inputs={"who": "y"})
    due = datetime.fromisoformat(broken["next_fire_at"])
    with two_orgs.session() as s:
        # Stored state no deploy would write (an older version, a hand edit): the firing raises.
        s.execute(update(WorkflowDeployment).where(WorkflowDeployment.name == "broken")
                  .values(definition={"steps": "not a list"}, next_fire_at=due - timedelta(minutes=1)))
    started = D.fire_due(two_orgs, due)
    assert len(started) == 1 and _queued(two_orgs, started[0])
    with two_orgs.session() as s:
        runs = list(s.scalars(select(WorkflowRun)))
        dep = s.scalar(select(WorkflowDeployment).where(WorkflowDeployment.name == "broken"))
        denied = query_audit(s, "acme", action="workflow.schedule.fire")
    assert [r.name for r in runs] == ["hello"] and runs[0].owner_email == "fin@globex.example"
    assert dep.next_fire_at is None and dep.paused_reason.startswith("firing failed (KeyError")
    assert "\n" not in dep.paused_reason
    assert [(e.decision, e.reason) for e in denied] == [("deny", dep.paused_reason)]
    # Paused: later scans skip it and keep firing the others.
    assert len(D.fire_due(two_orgs, due + timedelta(minutes=5))) == 1


# ---------------------------------------------------------------------------
# 5. Limits


def test_rates_need_a_usable_period() -> None:
    for bad in ("10/0s", "10/0", "10/0.0000001s", "1/400d"):
        with pytest.raises(InvalidInput, match="invalid rate"):
            limits.parse_rate(bad)
    assert limits.parse_rate("5/10s") == (5, 10.0) and limits.parse_rate("600/m") == (600, 60.0)


def test_a_limit_without_concurrency_or_rate_is_refused(two_orgs: Database) -> None:
    with pytest.raises(InvalidInput, match="--concurrency N and/or --rate"):
        limits.set_limits(two_orgs, "acme", "admin@acme.example", "http")
    with two_orgs.session() as s:
        assert list(s.scalars(select(WorkflowLimit))) == []
    doc = limits.set_limits(two_orgs, "acme", "admin@acme.example", "http", rate="5/10s")
    assert doc["limits"] == [{"kind": "http", "max_concurrent": None, "rate": "5/10s"}]
    assert limits.set_limits(two_orgs, "acme", "admin@acme.example", "http", clear=True)["limits"] == []
