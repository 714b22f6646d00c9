"""Replaying a recorded run with no model: same final state, and a clear stop when the page changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cristal.errors import InvalidInput
from cristal.models import Gateway
from cristal.operator import RunConfig, Secrets, load_trajectory, replay_trajectory, run_operator
from cristal.operator.replay import find_element
from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import model_settings
from tests.operator.scripts import act, login_steps, new_claim_steps
from tests.operator.site import PASSWORD, Site, SiteServer


@pytest.fixture
def recording(db, alice, browser, site: SiteServer, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """A run that logged in and filed a claim (with approval for irreversible actions)."""
    path = tmp_path / "claim.json"
    script = [*login_steps(), *new_claim_steps(), act("click", 'button "Submit claim"'), tool_call("done", {"result": "filed"})]
    config = RunConfig(task="File my train ticket", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}),
                       allow_irreversible=True, record=path)
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, alice, config, gateway=gateway, browser=browser)
    assert result.status == "done", result.reason
    return path


def _fresh(site: SiteServer) -> None:
    site.site.claims = Site().claims
    site.site.next_id = 3


def test_replay_reproduces_the_final_state_without_a_model(db, alice, browser, site: SiteServer, recording: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    _fresh(site)
    trajectory = load_trajectory(recording)
    result = replay_trajectory(db, alice, trajectory, secrets=Secrets({"PASSWORD": PASSWORD}), allow_irreversible=True, browser=browser)
    assert result.status == "complete", result.reason
    assert (result.replayed, result.total) == (9, 9)
    assert all(s["match"] in ("exact", None) for s in result.steps)
    assert result.final_url == result.recorded_final_url == site.url("/expenses")
    claims = [(c.description, c.amount, c.category, c.status) for c in site.site.claims]
    assert claims[-1] == ("Train to Berlin", "89.90", "Travel", "submitted") and len(claims) == 3
    assert result.original_seconds and result.seconds > 0 and result.as_dict()["speedup"]


def test_replay_stops_clearly_when_the_page_changed(db, alice, browser, site: SiteServer, recording: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    _fresh(site)
    site.site.variant = "renamed"  # "Submit claim" is now "Send for approval"
    result = replay_trajectory(db, alice, load_trajectory(recording), secrets=Secrets({"PASSWORD": PASSWORD}),
                               allow_irreversible=True, browser=browser)
    assert result.status == "diverged" and result.replayed == 8
    assert result.reason.startswith("step 9 (click button 'Submit claim'): no element with the same role and name on ")
    d = result.divergence
    assert d["expected"] == '[9] button "Submit claim" submits form' or (d["expected"].startswith("[") and "Submit claim" in d["expected"])
    assert d["closest"] and "Send for approval" in json.dumps(d["closest"])
    assert [c.status for c in site.site.claims] == ["draft", "draft"]  # nothing was submitted


def test_replay_keeps_the_rules_secrets_and_approval(db, alice, browser, site: SiteServer, recording: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    trajectory = load_trajectory(recording)
    assert PASSWORD not in recording.read_text()
    with pytest.raises(InvalidInput, match="--secret PASSWORD="):
        replay_trajectory(db, alice, trajectory, browser=browser)
    _fresh(site)
    result = replay_trajectory(db, alice, trajectory, secrets=Secrets({"PASSWORD": PASSWORD}), browser=browser)
    assert result.status == "needs_approval" and "Submit claim" in result.reason and result.replayed == 8
    assert [c.status for c in site.site.claims] == ["draft", "draft"]


def test_fuzzy_match_finds_an_element_whose_surroundings_changed(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.operator import AllowList, BrowserSession

    with BrowserSession(browser, AllowList.build([], site.url())) as s:
        obs = s.open(site.url("/login"))
        login = next(e for e in obs.elements if e["name"] == "Log in")
        moved = {**login, "key": "not-on-the-page", "fp": {**login["fp"], "path": "div>section>form>button"}}
        found, how, _ = find_element(obs, moved)
        assert how == "fuzzy" and found["id"] == login["id"]
        renamed = {**moved, "name": "Sign in now"}
        found, how, closest = find_element(obs, renamed)
        assert found is None and how == "no element with the same role and name" and closest[0]["element"].endswith('"Log in" submits form')
