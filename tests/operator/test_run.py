"""The Operator's loop against a ScriptedModel and the loopback expenses site, in a real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.identity.principal import Principal
from cristal.models import Gateway
from cristal.operator import RunConfig, Secrets, Timing, run_operator
from cristal.testing.scripted_model import ScriptedModel, text, tool_call, tool_calls
from tests.operator.conftest import model_settings
from tests.operator.scripts import act, login_steps, new_claim_steps
from tests.operator.site import PASSWORD, Site, SiteServer


def _run(db: Database, alice: Principal, browser, model: ScriptedModel, config: RunConfig, **kwargs):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with Gateway(model_settings(model.base_url), db) as gateway:
        return run_operator(db, alice, config, gateway=gateway, browser=browser, **kwargs)


def _config(site: SiteServer, task: str = "File my train ticket as an expense", **kwargs) -> RunConfig:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    kwargs.setdefault("secrets", Secrets({"PASSWORD": PASSWORD}))
    return RunConfig(task=task, start_url=site.url("/login"), **kwargs)


def test_files_an_expense_end_to_end_and_records_it(db, alice, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [*login_steps(), *new_claim_steps(), act("click", 'button "Submit claim"'), tool_call("done", {"result": "Filed 89.90 EUR"})]
    record = tmp_path / "run.json"
    with ScriptedModel(script) as model:
        result = _run(db, alice, browser, model, _config(site, allow_irreversible=True, record=record, screenshots=True))
    assert (result.status, result.result) == ("done", "Filed 89.90 EUR"), result.reason
    claim = site.site.claims[-1]
    assert (claim.description, claim.amount, claim.category, claim.status) == ("Train to Berlin", "89.90", "Travel", "submitted")
    assert result.final_url == site.url("/expenses")
    doc = json.loads(record.read_text())
    assert doc["status"] == "done" and doc["allow_domains"] == [site.url().split("//")[1].rstrip("/")]
    assert [s["action"]["tool"] for s in doc["steps"]] == [
        "fill", "fill", "click", "click", "fill", "fill", "select_option", "click", "click", "done"]
    submit = doc["steps"][8]
    assert submit["element"]["role"] == "button" and submit["element"]["name"] == "Submit claim"
    assert submit["url_before"] == site.url("/expenses/new") and submit["url_after"] == site.url("/expenses")
    assert all(s["observation"].startswith("URL: ") for s in doc["steps"])
    shot = record.parent / doc["steps"][0]["screenshot"]
    assert shot.read_bytes().startswith(b"\x89PNG")
    # every action is audited with the element's fingerprint and the URL
    with db.session() as s:
        acts = [a for a in query_audit(s, "acme", action="operator.act") if a.decision == "allow"]
        runs = query_audit(s, "acme", action="operator.run")
    assert len(runs) == 1 and len(acts) == 9
    last = acts[0].details
    assert last["action"] == "click" and last["element"]["name"] == "Submit claim" and last["url"] == site.url("/expenses/new")


def test_secrets_never_reach_the_model_the_record_or_the_audit(db, alice, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    # the page echoes what was typed: the login error page would show it if the form re-rendered values
    script = [*login_steps(), act("fill", 'link "New expense"', text="{{PASSWORD}}"),
              tool_call("goto", {"url": f"/expenses?q={PASSWORD}"}), tool_call("done", {"result": "logged in"})]
    record = tmp_path / "secret.json"
    with ScriptedModel(script) as model:
        result = _run(db, alice, browser, model, _config(site, record=record, screenshots=True))
        bodies = [r.body.decode() for r in model.chat_requests]
    assert result.status == "done" and site.site.sessions, result.reason  # the login worked with the real password
    assert len(bodies) == 6
    assert all(PASSWORD not in b for b in bodies)
    assert "{{PASSWORD}}" in bodies[0]  # the model is told the placeholder
    saved = record.read_text()
    assert PASSWORD not in saved and "{{PASSWORD}}" in saved
    assert any(s["url_after"].endswith("q={{PASSWORD}}") for s in json.loads(saved)["steps"] if s.get("url_after"))
    assert PASSWORD not in json.dumps(result.as_dict())
    with db.session() as s:
        audit = json.dumps([a.as_dict() for a in query_audit(s, "acme")])
    assert PASSWORD not in audit and "{{PASSWORD}}" in audit


def test_irreversible_action_pauses_the_run(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [*login_steps(), act("click", 'button "Delete"'), tool_call("done", {"result": "never reached"})]
    with ScriptedModel(script) as model:
        result = _run(db, alice, browser, model, _config(site, task="Delete the taxi claim"))
        assert model.remaining == 1
    assert result.status == "needs_approval", result.reason
    assert result.pending["element"]["name"] == "Delete" and "Taxi to airport" in result.pending["element"]["ctx"]
    assert "looks irreversible" in result.reason and "--allow-irreversible" in result.reason
    assert len(site.site.claims) == 2  # nothing was deleted
    with db.session() as s:
        denied = query_audit(s, "acme", action="operator.act", decision="deny")
    assert len(denied) == 1 and denied[0].reason.startswith("needs approval")


def test_page_text_cannot_widen_the_allow_list(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with SiteServer(Site()) as other:
        other_origin = other.url().replace("127.0.0.1", "localhost").rstrip("/")
        site.site.other_origin = other_origin
        script = [
            tool_call("goto", {"url": f"{other_origin}/steal"}),  # what the page's text asks for
            act("click", 'link "Partner site"'),
            tool_call("done", {"result": "stayed"}),
        ]
        config = RunConfig(task="Read the links page", start_url=site.url("/external"))
        with ScriptedModel(script) as model:
            result = _run(db, alice, browser, model, config)
            answers = [m["content"] for r in model.chat_requests[1:] for m in r.messages if m["role"] == "tool"]
        assert result.status == "done", result.reason
        assert other.site.hits == []  # the image, the fetch, the link and the goto never left the allowed host
        assert "is outside this run's allowed domains" in answers[0]
        assert "BLOCKED a request to" in answers[-1] and "Partner site" not in result.final_url
        assert "BLOCKED" in result.steps[0]["observation"]  # the page's own requests to the other host
    with db.session() as s:
        denied = query_audit(s, "acme", action="operator.act", decision="deny")
    assert denied and "outside this run's allowed domains" in denied[-1].reason


def test_unknown_element_unknown_tool_and_text_replies_go_back_to_the_model(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [
        tool_call("click", {"element": 999}),
        tool_call("launch_missiles", {"target": "moon"}),
        tool_call("click", {"element": "the blue one"}),
        text("I think I am done?"),
        tool_calls(("fill", {"element": 3, "text": "x@y.example"}), ("done", {"result": "gave up"}), ("click", {"element": 5})),
    ]
    with ScriptedModel(script) as model:
        result = _run(db, alice, browser, model, _config(site, secrets=Secrets()))
        requests = model.chat_requests
    assert result.status == "done" and result.result == "gave up"
    tool_answers = [requests[i].messages[-1]["content"] for i in (1, 2, 3)]
    assert "there is no element [999] in the latest observation" in tool_answers[0]
    assert "unknown tool 'launch_missiles'" in tool_answers[1]
    assert "element must be an ID number" in tool_answers[-1]
    assert requests[4].messages[-1]["role"] == "user" and "Act with a tool call" in requests[4].messages[-1]["content"]
    assert [s["ok"] for s in result.steps] == [False, False, False, False, True, True]


def test_history_keeps_only_the_newest_observations_in_full(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [tool_call("scroll", {"direction": "down"}) for _ in range(5)] + [tool_call("done", {"result": "ok"})]
    with ScriptedModel(script) as model:
        _run(db, alice, browser, model, _config(site, secrets=Secrets(), keep_full=2))
        last = model.chat_requests[-1].messages
    joined = json.dumps(last)
    assert joined.count("Interactive elements:") == 2
    assert "Earlier steps (summarised):\\n1. scroll direction='down' -> ok" in joined


def test_limits_end_the_run(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel(default=tool_call("scroll", {"direction": "down"})) as model:
        result = _run(db, alice, browser, model, _config(site, max_steps=3))
    assert result.status == "step_limit" and len(result.steps) == 3 and "3 steps" in result.reason


def test_bad_start_pages_stop_the_run_with_a_reason_and_keep_the_record(db, alice, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    record = tmp_path / "r.json"
    with ScriptedModel() as model:
        result = _run(db, alice, browser, model, RunConfig(task="x", start_url=f"http://127.0.0.1:{closed}/", record=record))
        assert result.status == "failed" and "connection refused" in result.reason
        assert json.loads(record.read_text())["status"] == "failed"
        slow = RunConfig(task="x", start_url=site.url("/never"), timing=Timing(navigation_s=1.0))
        result = _run(db, alice, browser, model, slow)
        assert result.status == "failed" and "did not finish loading within 1s" in result.reason
        assert model.chat_requests == []
    assert browser.contexts == []  # every run closed its context


def test_start_url_outside_the_allow_list_is_bad_input(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    import pytest

    from cristal.errors import InvalidInput

    with ScriptedModel() as model, pytest.raises(InvalidInput, match="outside the allowed domains"):
        _run(db, alice, browser, model, RunConfig(task="x", start_url=site.url("/"), allow_domains=("intranet.example",)))


def test_model_failure_and_browser_crash_stop_the_run(db, alice, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel([tool_call("scroll", {"direction": "down"})]) as model:  # then the script is exhausted: HTTP 400
        result = _run(db, alice, browser, model, _config(site))
    assert result.status == "failed" and "400" in result.reason and len(result.steps) == 1

    def crash(kind: str, message: str) -> None:
        if kind == "act":
            try:  # the renderer dies under the run, between the check and the action
                browser.contexts[-1].pages[-1].goto("chrome://crash", timeout=3000)
            except PlaywrightError:
                pass

    record = tmp_path / "crash.json"
    with ScriptedModel([tool_call("scroll", {"direction": "down"}), tool_call("done", {"result": "x"})]) as model:
        result = _run(db, alice, browser, model, _config(site, record=record), progress=crash)
    assert result.status == "failed" and "crash" in result.reason
    assert json.loads(record.read_text())["status"] == "failed"
    assert browser.contexts == []


def test_a_page_stuck_in_a_script_loop_stops_the_run(db, alice, browser, site: SiteServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    timing = Timing(script_s=1.5)
    for button in ("Recalculate", "Refresh later"):  # the loop runs in the click itself / a moment later, in a timer
        record = tmp_path / f"{button}.json"
        script = [act("click", f'button "{button}"'), tool_call("scroll", {"direction": "down"}), tool_call("done", {"result": "x"})]
        config = RunConfig(task="Recalculate the report", start_url=site.url("/busy"), record=record, timing=timing)
        with ScriptedModel(script) as model:
            result = _run(db, alice, browser, model, config)
        assert result.status == "failed", (button, result.reason)
        assert result.reason.startswith("the page stopped responding: ") and "got no answer within" in result.reason
        doc = json.loads(record.read_text())  # the record so far is kept
        assert doc["status"] == "failed" and doc["reason"] == result.reason
        assert browser.contexts == []  # the browser context was closed
