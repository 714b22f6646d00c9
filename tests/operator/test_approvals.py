"""Irreversible actions wait for a person: `cristal operate` is a workflow run whose approvals are decided
with `cristal approvals`, in real processes with a real Chromium and the scripted model over HTTP."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import model_env
from tests.operator.scripts import act, login_steps
from tests.operator.site import PASSWORD, USER, SiteServer

AS = ["--org", "acme", "--as", USER]
APPROVE = re.compile(r"approve: cristal approvals approve (apr_[0-9a-f]+) --as (\S+)")


def _env(model: ScriptedModel) -> dict[str, str]:
    return model_env(model.base_url, PASSWORD=PASSWORD)


class Operate:
    """`cristal operate` in the background; its stderr is read line by line as it comes."""

    def __init__(self, ocli, *args: str, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
        self.proc = subprocess.Popen([sys.executable, "-m", "cristal", "operate", *args], env={**ocli.env, **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def approval(self, limit: float = 90.0) -> tuple[str, str]:
        """The next approval id the run waits for, and the e-mail in the printed command."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.stderr.append(line)
            match = APPROVE.search(line)
            if match:
                return match.group(1), match.group(2)
        raise AssertionError("no approval was asked for:\n" + "".join(self.stderr))

    def finish(self) -> tuple[int, str, str]:
        # Only the pump reads stderr (communicate() would race it for the last lines); stdout is read here.
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        self.proc.wait(timeout=120)
        self.pump.join(timeout=30)
        while not self.lines.empty():
            self.stderr.append(self.lines.get())
        return self.proc.returncode, stdout, "".join(self.stderr)


def test_an_approved_action_is_carried_out_and_the_run_goes_on(ocli, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [*login_steps(), act("click", 'button "Delete"'), tool_call("done", {"result": "deleted the taxi claim"})]
    with ScriptedModel(script) as model:
        run = Operate(ocli, "Delete the taxi claim", *AS, "--start-url", site.url("/login"), "--secret", "PASSWORD", "--json",
                      env=_env(model))
        approval_id, who = run.approval()
        assert who == USER  # default approver: the employee who started the run
        assert len(site.site.claims) == 2  # nothing happens while the run waits
        listed = json.loads(ocli("approvals", "list", *AS, "--json").stdout)["approvals"]
        item = next(a for a in listed if a["id"] == approval_id)
        assert item["can_decide"] and item["workflow"] == "operate" and "button 'Delete'" in item["message"]
        status = json.loads(ocli("workflow", "status", item["run_id"], "--as", USER, "--json").stdout)
        assert status["status"] == "running" and status["steps"][0]["status"] == "waiting"
        assert status["steps"][0]["approval"] == {"id": approval_id, "status": "pending", "approvers": [f"user:{USER}"],
                                                  "decided_by": None, "decided_at": None}
        r = ocli("approvals", "approve", approval_id, "--as", USER)
        assert r.code == 0, r.stderr
        code, stdout, stderr = run.finish()
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["status"] == "done" and doc["run_id"] == item["run_id"] and doc["operator_run_id"].startswith("op_")
    assert [(a["approval_id"], a["decision"], a["by"]) for a in doc["approvals"]] == [(approval_id, "approved", USER)]
    assert len(site.site.claims) == 1  # the approved Delete was carried out
    status = json.loads(ocli("workflow", "status", doc["run_id"], "--as", USER, "--json").stdout)
    assert status["status"] == "succeeded" and status["steps"][0]["output"]["status"] == "done"
    assert status["steps"][0]["approval"]["status"] == "approved"
    audit = json.loads(ocli("audit", "--org", "acme", "--json").stdout)
    audit = audit.get("records", audit) if isinstance(audit, dict) else audit
    actions = {(a["action"], a["decision"]) for a in audit}
    assert {("workflow.approval.request", "allow"), ("approval.decide", "allow"), ("operator.act", "deny")} <= actions
    acted = [a for a in audit if a["action"] == "operator.act" and a["decision"] == "allow" and (a.get("details") or {}).get("approval")]
    assert len(acted) == 1 and acted[0]["details"]["approval"] == approval_id
    assert PASSWORD not in stdout + stderr + json.dumps(audit)


def test_a_rejected_action_is_skipped_and_the_model_is_told(ocli, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    for email, groups in (("bob@acme.example", ["--group", "finance"]), ("carol@acme.example", [])):
        assert ocli("user", "add", email, "--org", "acme", *groups).code == 0
    script = [*login_steps(), act("click", 'button "Delete"'), tool_call("done", {"result": "could not delete: refused"})]
    with ScriptedModel(script) as model:
        run = Operate(ocli, "Delete the taxi claim", *AS, "--start-url", site.url("/login"), "--secret", "PASSWORD",
                      "--approver", "group:finance", env=_env(model))
        approval_id, who = run.approval()
        assert who == "EMAIL"  # a group: the command names no one in particular
        r = ocli("approvals", "approve", approval_id, "--as", "carol@acme.example")  # not in finance
        assert r.code != 0 and "may not decide" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        r = ocli("approvals", "reject", approval_id, "--as", "bob@acme.example", "--comment", "keep it for the audit")
        assert r.code == 0, r.stderr
        code, stdout, stderr = run.finish()
        told = [m["content"] for m in model.chat_requests[-1].messages if m["role"] == "tool"][-1]
    assert code == 0, stderr
    assert stdout.strip() == "could not delete: refused"
    assert told.startswith("refused: bob@acme.example rejected this action") and "keep it for the audit" in told
    assert len(site.site.claims) == 2  # nothing was deleted


def test_no_decision_in_time_stops_the_run(ocli, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel([*login_steps(), act("click", 'button "Delete"')]) as model:
        run = Operate(ocli, "Delete the taxi claim", *AS, "--start-url", site.url("/login"), "--secret", "PASSWORD",
                      "--approval-timeout", "1s", env=_env(model))
        run.approval()
        code, _stdout, stderr = run.finish()
    last = stderr.strip().splitlines()[-1]
    assert code == 1 and "Traceback" not in stderr
    assert last.startswith("error: the run stopped (approval_timeout): approval apr_") and "got no decision in time" in last
    assert len(site.site.claims) == 2


def test_a_crash_while_waiting_fails_the_step_instead_of_redoing_actions(ocli, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    record = tmp_path / "run.json"
    with ScriptedModel([*login_steps(), act("click", 'button "Delete"'), tool_call("done", {"result": "x"})]) as model:
        run = Operate(ocli, "Delete the taxi claim", *AS, "--start-url", site.url("/login"), "--secret", "PASSWORD",
                      "--record", str(record), env=_env(model))
        approval_id, _ = run.approval()
        run.proc.send_signal(signal.SIGKILL)  # the browser session dies with the process
        run.proc.wait()
        listed = json.loads(ocli("approvals", "list", *AS, "--json").stdout)["approvals"]
        run_id = next(a["run_id"] for a in listed if a["id"] == approval_id)
        worker = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env={**ocli.env, **_env(model)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while True:  # the worker takes the dead process's run over and executes the step again
                status = json.loads(ocli("workflow", "status", run_id, "--as", USER, "--json").stdout)
                if status["status"] in ("failed", "succeeded") or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=60)
        requests = len(model.chat_requests)
    assert status["status"] == "failed", status
    assert "interrupted: the browser session was lost" in status["error"] and str(record) in status["error"]
    assert requests == 4  # the model was not asked again
    assert len(site.site.claims) == 2  # the waiting Delete was never carried out, nothing was redone
    doc = json.loads(record.read_text())  # the record so far is kept, and says what happened
    assert doc["status"] == "failed" and doc["reason"].startswith("interrupted") and len(doc["steps"]) == 3
    assert json.loads(ocli("approvals", "list", *AS, "--json").stdout)["approvals"] == []  # nothing left to decide
