"""The `operate` step kind in workflow files: validated up front, and run on the engine by `cristal workflow run`
in the sample company's Expenses app, with the request that submits it approved by someone else in finance."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cristal.config import Settings
from cristal.errors import InvalidInput
from cristal.identity import orgs
from cristal.models import Gateway
from cristal.operator import RunConfig, run_operator
from cristal.operator.action import OperateSpec
from cristal.operator.workflow import approval_step_id, operate, operator_run_id
from cristal.sample.webapps import AppState, serve_webapps
from cristal.sample.webapps.tasks import TASKS_BY_ID
from cristal.testing.scripted_model import ScriptedModel, tool_call
from cristal.workflows.spec import load_workflow
from cristal.workflows.steps import Meta, StepError
from tests.operator.conftest import INSTALLATION, model_env, model_settings
from tests.operator.scripts import act, login_steps
from tests.operator.site import PASSWORD, USER, SiteServer

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
                    "      secrets: {PASSWORD: CRISTAL_SECRET_ACME_ERP_PASSWORD}\n      approvers: [group:finance, user:Anna@Example.com]\n"
                    "      approval_timeout: 2h\n      max_seconds: 5m\n      record: claim-1.json\n", encoding="utf-8")
    spec = load_workflow(path).steps[0]["spec"]
    assert spec["approvers"] == ["group:finance", "user:anna@example.com"] and spec["approval_timeout"] == 7200
    assert spec["max_seconds"] == 300 and spec["secrets"] == {"PASSWORD": "CRISTAL_SECRET_ACME_ERP_PASSWORD"}
    assert spec["allow_irreversible"] is False and spec["record"] == "claim-1.json"
    assert "step 'claim': missing field 'start_url'" in _error(tmp_path, "name: x\nsteps:\n  - id: claim\n    operate: {task: t}\n")
    assert "invalid approver 'finance'" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "      approvers: [finance]\n")
    assert "unknown field 'password'" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "      password: hunter22\n")
    assert "an operate step cannot be retried" in _error(tmp_path, "name: x\nsteps:\n" + STEP + "    retry: {attempts: 2}\n")


def test_workflow_text_can_name_only_secret_variables_and_plain_record_names(tmp_path: Path) -> None:
    def error(extra: str) -> str:
        return _error(tmp_path, "name: x\nsteps:\n" + STEP + extra)

    # Not the worker's credentials, not any other variable: only CRISTAL_SECRET_* (the organization is checked at run time).
    assert "'CRISTAL_LLM_API_KEY' is not a secret variable" in error("      secrets: {K: CRISTAL_LLM_API_KEY}\n")
    assert "'HOME' is not a secret variable" in error("      secrets: {K: HOME}\n")
    assert "invalid secret name" in error("      secrets: ['{{ inputs.x }}']\n")
    for record in ("/tmp/x.json", "../x.json", "a/b.json", "..json", "x.txt", "~/.bashrc"):
        assert "invalid record" in error(f"      record: '{record}'\n"), record
    # The CLI's own record path travels in a key that workflow text cannot set.
    assert "unknown field 'local_record'" in error("      local_record: /etc/cron.d/x\n")
    for message in (error("      secrets: {K: CRISTAL_LLM_API_KEY}\n"), error("      record: /tmp/x.json\n")):
        assert len(message.splitlines()) == 1


def test_action_approval_ids_are_unique_per_run_step_item_and_action() -> None:
    def meta(run: str, step: str, item: int | None) -> Meta:
        return Meta(run, step, item, 1, USER, None)

    cases = [(r, s, i, n) for r in ("run_a", "run_b") for s in ("x", "y" * 63) for i in (None, 0, 1) for n in (1, 2)]
    ids = {approval_step_id(meta(r, s, i), n) for r, s, i, n in cases}
    keys = {(r, approval_step_id(meta(r, s, i), n)) for r, s, i, n in cases}
    assert len(keys) == 24 and len(ids) == 12 and all(len(i) <= 63 for i in ids)
    assert operator_run_id(meta("run_a", "x", None)) == operator_run_id(meta("run_a", "x", None)) != operator_run_id(meta("run_a", "x", 0))


def test_a_workflow_submits_a_claim_once_its_request_is_approved(ocli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
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
      record: submit.json
""", encoding="utf-8")
        env = model_env(model.base_url)
        proc = subprocess.Popen([sys.executable, "-m", "cristal", "workflow", "run", str(flow), "--org", "acme", "--as", task.as_email,
                                 "--json"], env={**ocli.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        decided: list[str] = []
        deadline = time.monotonic() + 120
        while not decided and time.monotonic() < deadline and proc.poll() is None:
            pending = json.loads(ocli("approvals", "list", "--org", "acme", "--as", USER, "--json").stdout)["approvals"]
            for item in pending:  # alice is in finance; the employee who started the run is not
                assert not AppState(apps.db_path).changes().claims  # nothing is submitted before the approval
                assert "it sends POST " in item["message"] and "/expenses/101/submit" in item["message"]  # the request itself
                assert ocli("approvals", "approve", item["id"], "--as", USER).code == 0
                decided.append(item["step_id"])
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=120)
        done = task.check(AppState(apps.db_path))
    assert proc.returncode == 0, stderr
    # "Submit for approval" only opens the confirmation dialog (nothing is sent): the one approval is for the
    # confirmation's post
    assert decided == ["submit@5"]
    doc = json.loads(stdout)
    assert doc["status"] == "succeeded" and doc["steps"][0]["output"]["result"] == "submitted claim 101"
    assert done  # the app's own database says the draft was submitted, and nothing else changed
    record = tmp_path / "home" / "records" / "acme" / "submit.json"  # $CRISTAL_HOME/records/<org>/
    assert doc["steps"][0]["output"]["record"] == str(record) and json.loads(record.read_text())["status"] == "done"


# ---------------------------------------------------------------------------
# At run time: the run's organization decides which secret variables and which folder a step may use


def _meta(run_id: str) -> Meta:
    return Meta(run_id, "claim", None, 1, USER, None)


def _spec(site: SiteServer, **fields: Any) -> dict[str, Any]:
    spec = OperateSpec.model_validate({"task": "Log in", "start_url": site.url("/login"), "allow_irreversible": True,
                                       **fields}).model_dump()
    return spec


def test_a_step_cannot_read_another_organizations_secret_variable(db, alice, site: SiteServer, tmp_path: Path,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme-eu", "Acme EU")
    # acme-eu's variable also starts with acme's prefix (CRISTAL_SECRET_ACME_): the longer prefix owns it.
    monkeypatch.setenv("CRISTAL_SECRET_ACME_EU_PASSWORD", PASSWORD)
    monkeypatch.setenv("CRISTAL_SECRET_ACME_PASSWORD", PASSWORD)
    script = [*login_steps(), tool_call("done", {"result": "logged in"})]
    with ScriptedModel(script) as model:
        settings = Settings(home=str(tmp_path / "home"), llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted",
                            llm_max_retries=0, llm_timeout_seconds=10)
        with pytest.raises(StepError) as info:
            operate(db, settings, _meta("run_other"), alice, _spec(site, secrets={"PASSWORD": "CRISTAL_SECRET_ACME_EU_PASSWORD"}))
        assert model.chat_requests == [] and site.site.hits == []  # refused before any browser or model: nothing typed
        message = str(info.value)
        assert "secret PASSWORD" in message and "another organization" in message and len(message.splitlines()) == 1
        assert PASSWORD not in message
        # Its own variable, by short name: CRISTAL_SECRET_ACME_PASSWORD.
        out = operate(db, settings, _meta("run_own"), alice, _spec(site, secrets=["PASSWORD"], record=True))
    assert out["status"] == "done" and len(site.site.sessions) == 1  # logged in with its own secret
    record = Path(out["record"])
    assert record.parent == tmp_path / "home" / "records" / "acme" and record.name.endswith(".json")
    assert json.loads(record.read_text())["status"] == "done" and PASSWORD not in record.read_text()


def test_a_step_record_is_written_only_in_the_organizations_records_folder(db, alice, site: SiteServer,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                                           tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ScriptedModel([tool_call("done", {"result": "seen"})]) as model:
        settings = Settings(home=str(home), llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted",
                            llm_max_retries=0, llm_timeout_seconds=10)
        # A template may render anything: the rendered value is checked again before anything is written.
        for bad in (str(tmp_path / "elsewhere.json"), "../../escape.json"):
            with pytest.raises(StepError, match="invalid record"):
                operate(db, settings, _meta("run_bad"), alice, _spec(site, record="claim.json") | {"record": bad})
        out = operate(db, settings, _meta("run_ok"), alice, _spec(site, record="claim.json"))
    assert out["record"] == str(home / "records" / "acme" / "claim.json")
    assert json.loads((home / "records" / "acme" / "claim.json").read_text())["result"] == "seen"
    assert not (tmp_path / "elsewhere.json").exists() and not (tmp_path / "escape.json").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == ["claim.json"]


def test_a_refused_run_creates_no_record(db, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    record = tmp_path / "keep" / "existing.json"
    record.parent.mkdir()
    record.write_text("mine", encoding="utf-8")
    with ScriptedModel([tool_call("done", {"result": "x"})]) as model, Gateway(model_settings(model.base_url), db) as gateway:
        for path in (record, tmp_path / "new" / "run.json"):
            result = run_operator(db, INSTALLATION, RunConfig(task="x", start_url=site.url("/login"), record=path),
                                  gateway=gateway, browser=browser)
            assert result.status == "failed" and result.record is None
    assert record.read_text() == "mine" and not (tmp_path / "new").exists()  # operator.run was refused first
