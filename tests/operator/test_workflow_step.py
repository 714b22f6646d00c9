"""The `operate` step kind in workflow files: validated up front, and run on the engine by `cristal workflow run`
in the sample company's Expenses app, with each irreversible action approved by someone else in finance."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from cristal.errors import InvalidInput
from cristal.operator.workflow import approval_step_id, operator_run_id
from cristal.sample.webapps import AppState, serve_webapps
from cristal.sample.webapps.tasks import TASKS_BY_ID
from cristal.testing.scripted_model import ScriptedModel, tool_call
from cristal.workflows.spec import load_workflow
from cristal.workflows.steps import Meta
from tests.operator.conftest import model_env
from tests.operator.scripts import act
from tests.operator.site import USER

STEP = "  - id: claim\n    operate:\n      task: File it\n      start_url: http://127.0.0.1:8765/expenses/\n"


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        load_workflow(path)
    return str(info.value)


def test_operate_steps_are_validated_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\ninputs: {who: x}\nsteps:\n" + STEP.replace("File it", "File it for {{ inputs.who }}") +
                    "      secrets: {PASSWORD: ERP_PASSWORD}\n      approvers: [group:finance, user:Anna@Example.com]\n"
                    "      approval_timeout: 2h\n      max_seconds: 5m\n", encoding="utf-8")
    spec = load_workflow(path).steps[0]["spec"]
    assert spec["approvers"] == ["group:finance", "user:anna@example.com"] and spec["approval_timeout"] == 7200
    assert spec["max_seconds"] == 300 and spec["secrets"] == {"PASSWORD": "ERP_PASSWORD"} and spec["allow_irreversible"] is False
    assert "step 'claim': missing field 'start_url'" in _error(tmp_path, "name: x\nsteps:\n  - id: claim\n    operate: {task: t}\n")
    assert "invalid approver 'finance'" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "      approvers: [finance]\n")
    assert "unknown field 'password'" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "      password: hunter22\n")
    assert "an operate step cannot be retried" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "    retry: {attempts: 2}\n")


def test_action_approval_ids_are_unique_per_run_step_item_and_action() -> None:
    def meta(run: str, step: str, item: int | None) -> Meta:
        return Meta(run, step, item, 1, USER, None)

    ids = {approval_step_id(meta(r, s, i), n) for r in ("run_a", "run_b") for s in ("x", "y" * 63) for i in (None, 0, 1) for n in (1, 2)}
    keys = {(r, approval_step_id(meta(r, s, i), n)) for r in ("run_a", "run_b") for s in ("x", "y" * 63) for i in (None, 0, 1) for n in (1, 2)}
    assert len(keys) == 24 and len(ids) == 12 and all(len(i) <= 63 for i in ids)
    assert operator_run_id(meta("run_a", "x", None)) == operator_run_id(meta("run_a", "x", None)) != operator_run_id(meta("run_a", "x", 0))


def test_a_workflow_submits_a_claim_after_two_approvals(ocli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = TASKS_BY_ID["expenses-submit-draft"]
    assert ocli("user", "add", task.as_email, "--org", "acme").code == 0
    script = [act("fill", 'textbox "E-mail address"', text=task.as_email), act("click", 'button "Sign in"'),
              act("click", 'link "Claim 101"'), act("click", 'button "Submit for approval"'),
              act("click", 'button "Confirm submission"'), tool_call("done", {"result": "submitted claim 101"})]
    with serve_webapps(tmp_path / "apps.db", today=lambda: date(2025, 10, 31)) as apps, ScriptedModel(script) as model:
        flow = tmp_path / "submit.yaml"
        flow.write_text(f"""name: submit-draft
steps:
  - id: submit
    operate:
      task: "{task.instruction}"
      start_url: {apps.url(task.start_path)}
      approvers: ["group:finance"]
      record: {tmp_path / 'submit.json'}
""", encoding="utf-8")
        env = model_env(model.base_url)
        proc = subprocess.Popen([sys.executable, "-m", "cristal", "workflow", "run", str(flow), "--org", "acme", "--as", task.as_email,
                                 "--json"], env={**ocli.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        decided: list[str] = []
        deadline = time.monotonic() + 120
        while len(decided) < 2 and time.monotonic() < deadline and proc.poll() is None:
            pending = json.loads(ocli("approvals", "list", "--org", "acme", "--as", USER, "--json").stdout)["approvals"]
            for item in pending:  # alice is in finance; the employee who started the run is not
                assert not AppState(apps.db_path).changes().claims  # nothing is submitted before the approvals
                assert ocli("approvals", "approve", item["id"], "--as", USER).code == 0
                decided.append(item["step_id"])
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=120)
        done = task.check(AppState(apps.db_path))
    assert proc.returncode == 0, stderr
    assert decided == ["submit@4", "submit@5"]  # one approval per irreversible action
    doc = json.loads(stdout)
    assert doc["status"] == "succeeded" and doc["steps"][0]["output"]["result"] == "submitted claim 101"
    assert done  # the app's own database says the draft was submitted, and nothing else changed
    assert json.loads((tmp_path / "submit.json").read_text())["status"] == "done"
