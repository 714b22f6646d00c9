"""What needs approval is decided by effect: the state-changing requests an action sends wait in the real
browser until a (scripted) approver decides, shown to them as method, URL and body; a click that changes
nothing outside the page never waits, whatever its label. Checked against the apps' own state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser

from cristal.db import Database
from cristal.models import Gateway
from cristal.operator import RunConfig, Secrets, run_operator
from cristal.operator.run import ApprovalDecision, RunResult
from cristal.operator.safety import body_view, write_request
from cristal.sample.webapps import AppState, WebApps
from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import employee, model_settings
from tests.operator.scripts import act, latest_observation, login_steps
from tests.operator.site import PASSWORD, SiteServer

LUKAS = "lukas.weber@aozora-de.example"
MESSAGE = 204  # the team offsite message, in Lukas's inbox


class Approver:
    """A scripted person: answers each pending action with the next decision, and keeps what it was shown."""

    def __init__(self, *decisions: str) -> None:
        self.decisions = list(decisions)
        self.asked: list[dict[str, Any]] = []

    def __call__(self, pending: dict[str, Any]) -> ApprovalDecision:
        self.asked.append(pending)
        assert self.decisions, f"nobody expected to be asked: {pending['reason']}"
        return ApprovalDecision(self.decisions.pop(0), f"apr_test{len(self.asked)}", "boss@acme.example", "not now")


def _run(db: Database, browser: Browser, apps: WebApps, script: list[Any], approver: Approver | None,
         **config: Any) -> tuple[RunResult, list[dict[str, Any]]]:
    """Sign in as Lukas on the message's page, then the script."""
    steps = [act("fill", 'textbox "E-mail address"', text=LUKAS), act("click", 'button "Sign in"'), *script]
    run = RunConfig(task="Archive the offsite message", start_url=apps.url(f"/inbox/{MESSAGE}"), approve=approver, **config)
    with ScriptedModel(steps) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, employee(db, LUKAS), run, gateway=gateway, browser=browser)
        return result, [dict(r.json) for r in model.chat_requests]


def _folder(apps: WebApps) -> str:
    return next(m.folder for m in AppState(apps.db_path).messages("aozora-de", LUKAS) if m.id == MESSAGE)


def _outcomes(result: RunResult) -> list[str]:
    return [f"{s['n']}: {s['outcome']}" for s in result.steps]


def _after(check: Callable[[str], None], then: Any) -> Any:
    """A script step that first checks the latest observation."""
    def step(body: dict[str, Any]) -> Any:
        check(latest_observation(body))
        return then(body) if callable(then) else then
    return step


def test_a_submit_that_sends_nothing_never_waits_and_an_ok_that_writes_waits_until_approved(
        db: Database, browser: Browser, apps: WebApps) -> None:
    def noted(obs: str) -> None:
        assert "Note (this page only): ask about the venue" in obs

    script = [act("fill", 'textbox "Private note"', text="ask about the venue"), act("click", 'button "Submit"'),
              _after(noted, act("click", 'button "OK"')), tool_call("done", {"result": "archived"})]
    approver = Approver("approved")
    result, requests = _run(db, browser, apps, script, approver)
    assert result.status == "done", (result.reason, _outcomes(result))
    assert len(approver.asked) == 1  # neither the sign-in nor the harmless "Submit": only the fetch behind "OK"
    pending = approver.asked[0]
    assert pending["requests"] == [{"method": "POST", "url": apps.url(f"/inbox/{MESSAGE}/move"), "body": "folder=archive",
                                    "kind": "fetch"}]
    assert pending["reason"].startswith(f"it sends POST {apps.url(f'/inbox/{MESSAGE}/move')} with body 'folder=archive'")
    assert _folder(apps) == "archive"  # the held request went through once approved
    assert "Archived." in latest_observation(requests[-1])
    assert result.approvals[0]["requests"] == pending["requests"]


def test_a_rejected_request_never_reaches_the_server(db: Database, browser: Browser, apps: WebApps) -> None:
    approver = Approver("rejected")
    script = [act("click", 'button "OK"'), tool_call("done", {"result": "refused"})]
    result, requests = _run(db, browser, apps, script, approver)
    assert result.status == "done", (result.reason, _outcomes(result))
    assert _folder(apps) == "inbox"
    told = [m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"][-1]
    assert told.startswith("refused: boss@acme.example rejected this action") and "Its request was not sent" in told
    assert "Could not archive: the request was not sent." in told  # the page saw a failed fetch


def test_writes_to_an_allowed_host_and_get_navigations_never_wait(db: Database, browser: Browser, apps: WebApps) -> None:
    host = urlsplit(apps.url("/")).netloc
    script = [act("click", 'button "OK"'), act("click", 'link "Back to the inbox"'), tool_call("done", {"result": "archived"})]
    result, _requests = _run(db, browser, apps, script, Approver(), allow_writes=(host,))
    assert result.status == "done", (result.reason, _outcomes(result))
    assert _folder(apps) == "archive" and result.approvals == []
    assert result.final_url == apps.url("/inbox/")


def test_without_an_approver_a_write_ends_the_run_unsent_and_a_get_goes_on(db: Database, browser: Browser,
                                                                          apps: WebApps) -> None:
    script = [act("click", 'link "Back to the inbox"'), act("click", 'link "Page 2"'),
              act("click", 'clickable "Flag"', after='row "☆ Bernardine Okafor')]
    result, _requests = _run(db, browser, apps, script, None)
    assert result.status == "needs_approval", (result.reason, _outcomes(result))
    assert [s["ok"] for s in result.steps[:4]] == [True, True, True, True]  # sign-in, the two GETs: no pause
    assert result.pending is not None and result.pending["requests"][0]["method"] == "POST"
    assert result.pending["requests"][0]["url"] == apps.url("/inbox/211/flag") and "--allow-irreversible" in (result.reason or "")
    assert not next(m.flagged for m in AppState(apps.db_path).messages("aozora-de", LUKAS) if m.id == 211)


def test_an_approved_form_post_is_sent_exactly_once(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    approver = Approver("approved")
    script = [*login_steps(), act("click", 'button "Delete"'), tool_call("done", {"result": "deleted"})]
    config = RunConfig(task="Delete the taxi claim", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}),
                       approve=approver)
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, alice, config, gateway=gateway, browser=browser)
    assert result.status == "done", (result.reason, _outcomes(result))
    assert [p["requests"][0]["method"] + " " + urlsplit(p["requests"][0]["url"]).path for p in approver.asked] == \
        ["POST /expenses/1/delete"]  # the sign-in (a password form) went through unasked
    assert site.site.hits.count("POST /expenses/1/delete") == 1 and site.site.hits.count("POST /login") == 1
    assert [c.id for c in site.site.claims] == [2]
    assert "looks irreversible" in approver.asked[0]["reason"]  # the words are the second signal, in the reason


def test_enter_that_submits_a_form_waits_too_and_rejected_sends_nothing(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    approver = Approver("rejected")
    script = [*login_steps(), act("click", 'link "New expense"'), act("fill", 'textbox "Description"', text="Parking"),
              act("fill", 'textbox "Amount (EUR)"', text="7.50"), tool_call("press", {"key": "Enter"}),
              tool_call("done", {"result": "refused"})]
    config = RunConfig(task="File parking", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}), approve=approver)
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, alice, config, gateway=gateway, browser=browser)
    assert result.status == "done", (result.reason, _outcomes(result))
    assert len(approver.asked) == 1 and approver.asked[0]["tool"] == "press"
    assert approver.asked[0]["requests"][0]["body"].startswith("description=Parking&amount=7.50")
    assert "POST /expenses" not in site.site.hits and len(site.site.claims) == 2
    assert result.final_url == site.url("/expenses/new")  # the cancelled post left the page as it was


def test_fetch_delete_and_xhr_patch_behind_harmless_labels_wait(db, alice, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    approver = Approver("approved", "rejected")
    script = [*login_steps(), tool_call("goto", {"url": site.url("/quick")}), act("click", 'button "OK"'),
              act("click", 'button "Apply"'), tool_call("done", {"result": "removed one"})]
    config = RunConfig(task="Tidy my claims", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}), approve=approver)
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, alice, config, gateway=gateway, browser=browser)
        told = [m["content"] for m in model.chat_requests[-1].messages if m["role"] == "tool"][-1]
    assert result.status == "done", (result.reason, _outcomes(result))
    assert [(r["method"], r["kind"]) for p in approver.asked for r in p["requests"]] == [("DELETE", "fetch"), ("PATCH", "xhr")]
    assert approver.asked[1]["requests"][0]["body"] == "description=Taxi+(airport)"
    assert site.site.hits.count("DELETE /expenses/2") == 1 and "PATCH /expenses/1" not in site.site.hits
    assert [(c.id, c.description) for c in site.site.claims] == [(1, "Taxi to airport")]
    assert "Not sent." in told  # the page saw the rejected XHR fail


@pytest.mark.parametrize(("method", "writes"), [("GET", False), ("head", False), ("OPTIONS", False), ("POST", True),
                                               ("put", True), ("PATCH", True), ("DELETE", True)])
def test_write_requests_by_method(method: str, writes: bool) -> None:
    assert write_request(method) is writes


def test_the_body_view_is_bounded() -> None:
    assert body_view(None) == "" and body_view(b"a=1") == "a=1"
    assert body_view(b"x" * 700, limit=10) == "x" * 10 + "… (690 more characters)"
    assert body_view(b"\xff\xfeok") == "\ufffd\ufffdok"
