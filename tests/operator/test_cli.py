"""``cristal operate`` and ``cristal replay`` as a user runs them (a real process, a real Chromium)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import model_env
from tests.operator.scripts import act, login_steps, new_claim_steps
from tests.operator.site import PASSWORD, USER, Site, SiteServer

AS = ["--org", "acme", "--as", USER]


def _env(model: ScriptedModel) -> dict[str, str]:
    return model_env(model.base_url, PASSWORD=PASSWORD)


def test_operate_records_and_replay_repeats(ocli, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    record = tmp_path / "claim.json"
    script = [*login_steps(), *new_claim_steps(), act("click", 'button "Save draft"'), tool_call("done", {"result": "Saved the draft"})]
    with ScriptedModel(script) as model:
        # saving a draft posts a form: the run allows writes to the site's host, so nothing waits (and the replay
        # reads that from the record)
        r = ocli("operate", "File my train ticket as a draft", *AS, "--start-url", site.url("/login"), "--record", str(record),
                 "--secret", "PASSWORD", "--allow-writes", urlsplit(site.url("/")).netloc, "--json", extra_env=_env(model))
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "done" and doc["result"] == "Saved the draft" and len(doc["steps"]) == 10
    assert site.site.claims[-1].status == "draft" and PASSWORD not in r.stdout + r.stderr + record.read_text()
    site.site.claims = Site().claims
    r = ocli("replay", str(record), "--secret", "PASSWORD", "--json", extra_env={"PASSWORD": PASSWORD})
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "complete" and doc["replayed"] == 9 and doc["final_url_matches"] is True
    assert site.site.claims[-1].description == "Train to Berlin"


def test_bad_input_is_one_line(ocli, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with ScriptedModel() as model:
        env = _env(model)
        cases = [
            (["operate", "x", *AS, "--start-url", site.url("/"), "--allow-domain", "intranet.example"], 2, "outside the allowed domains"),
            (["operate", "x", *AS, "--start-url", "file:///etc/passwd"], 2, "must be an http(s) URL"),
            (["operate", "x", *AS, "--start-url", site.url("/"), "--secret", "NOPE"], 2, "--secret NOPE"),
            (["operate", "x", *AS, "--start-url", site.url("/"), "--allow-writes", "a b"], 2, "not a host for --allow-writes: 'a b'"),
            (["operate", "x", *AS, "--start-url", f"http://127.0.0.1:{closed}/"], 1, "connection refused"),
            (["replay", str(tmp_path / "missing.json")], 2, "no such recording"),
            (["operate", "x", *AS, "--start-url", site.url("/"), "--approver", "finance"], 2, "--approver: invalid approver 'finance'"),
            (["operate", "x", *AS, "--start-url", site.url("/"), "--approval-timeout", "soon"], 2, "--approval-timeout: invalid duration"),
        ]
        for args, code, message in cases:
            r = ocli(*args, extra_env=env)
            lines = r.stderr.strip().splitlines()
            assert r.code == code and [line for line in lines if "error" in line] == [lines[-1]], (args, r.stderr)
            assert lines[-1].startswith("error: ") and message in lines[-1] and "Traceback" not in r.stderr
    r = ocli("operate", "x", *AS, "--start-url", site.url("/"))  # no model configured: fails before a browser starts
    assert r.code != 0 and "CRISTAL_LLM_BASE_URL" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_operate_uses_script_bound_widgets_with_writes_allowed_to_the_app(ocli, db_url: str, apps) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.db import Database
    from cristal.sample.webapps import AppState
    from cristal.sample.webapps.tasks import TASKS_BY_ID
    from tests.operator.conftest import employee

    task = TASKS_BY_ID["inbox-flag-hotel-invoice"]
    database = Database(db_url)
    employee(database, task.as_email)
    database.dispose()
    script = [act("fill", 'textbox "E-mail address"', text=task.as_email), act("click", 'button "Sign in"'),
              act("click", 'link "Page 2"'), act("click", 'clickable "Flag"', after='row "☆ Bernardine Okafor'),
              tool_call("done", {"result": "flagged"})]
    with ScriptedModel(script) as model:
        r = ocli("operate", task.instruction, "--org", "acme", "--as", task.as_email, "--start-url", apps.url(task.start_path),
                 "--allow-writes", urlsplit(apps.url("/")).netloc, "--json", extra_env=model_env(model.base_url))
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "done" and [s["ok"] for s in doc["steps"]] == [True] * 5
    assert task.check(AppState(apps.db_path))
