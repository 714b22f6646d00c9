"""Every widget class of the sample apps' workspace pages, driven through the Operator by a scripted policy in a
real Chromium; each task is decided by the app's own database. None needs ``allow_irreversible``: the runs allow
writes to the app's host (the tasks do write), so no request waits for approval."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser

from cristal.db import Database
from cristal.models import Gateway
from cristal.operator import RunConfig, Timing, run_operator
from cristal.operator.run import RunResult
from cristal.sample.webapps import AppState, WebApps
from cristal.sample.webapps.tasks import TASKS_BY_ID, UPLOADS, WebTask
from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import employee, model_settings
from tests.operator.scripts import act, latest_observation


def _run(db: Database, browser: Browser, apps: WebApps, task: WebTask, script: list[Any],
         **config: Any) -> tuple[RunResult, list[dict[str, Any]]]:
    """Sign in as the task's employee, then the script; the run's result and every request the model got."""
    steps = [act("fill", 'textbox "E-mail address"', text=task.as_email), act("click", 'button "Sign in"'), *script]
    run = RunConfig(task=task.instruction, start_url=apps.url(task.start_path), allow_writes=(urlsplit(apps.url("/")).netloc,),
                    **config)
    with ScriptedModel(steps) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, employee(db, task.as_email), run, gateway=gateway, browser=browser)
        return result, [dict(r.json) for r in model.chat_requests]


def _outcomes(result: RunResult) -> list[str]:
    return [f"{s['n']} {s['action'] and s['action']['tool']}: {s['outcome']}" for s in result.steps]


def _done(result: RunResult, apps: WebApps, task: WebTask) -> None:
    assert result.status == "done", (result.reason, _outcomes(result))
    assert all(s["ok"] for s in result.steps), _outcomes(result)
    assert task.check(AppState(apps.db_path)), _outcomes(result)


def test_pager_current_page_and_a_star_bound_with_onclick(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["inbox-flag-hotel-invoice"]

    def on_page_two(body: dict[str, Any]) -> Any:
        obs = latest_observation(body)
        assert 'link "Page 2" current' in obs and "Bernardine Okafor | Hotel invoice Bern" in obs
        return act("click", 'clickable "Flag"', after='row "☆ Bernardine Okafor')(body)

    script = [act("click", 'link "Page 2"'), on_page_two, tool_call("done", {"result": "flagged"})]
    result, requests = _run(db, browser, apps, task, script)
    _done(result, apps, task)
    assert 'link "Page 1" current' in latest_observation(requests[2])


def test_rows_open_on_click_and_a_menu_opens_on_hover(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["inbox-archive-offsite"]

    def menu_closed(body: dict[str, Any]) -> Any:
        assert 'clickable "Archive"' not in latest_observation(body)  # the menu's items are hidden until hovered
        return act("hover", 'clickable "Move to ▾"')(body)

    script = [act("click", 'row "☆ Jonas Becker Team offsite'), menu_closed, act("click", 'clickable "Archive"'),
              tool_call("done", {"result": "archived"})]
    result, requests = _run(db, browser, apps, task, script)
    _done(result, apps, task)
    assert "Moved to Archive." in latest_observation(requests[-1])


def test_drag_a_row_onto_a_folder_of_a_delegating_list(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["inbox-file-taxi-receipt"]
    script = [act("drag", 'row "☆ Taxi Zentrale', to='listitem "Receipts (0)"'), tool_call("done", {"result": "moved"})]
    result, requests = _run(db, browser, apps, task, script)
    _done(result, apps, task)
    assert 'listitem "Receipts (1)"' in latest_observation(requests[-1])


def test_a_span_drawn_as_a_link(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["inbox-mark-all-read"]
    result, _ = _run(db, browser, apps, task, [act("click", 'clickable "Mark all as read"'), tool_call("done", {"result": "ok"})])
    _done(result, apps, task)


def test_travel_form_autocomplete_date_picker_multi_select_and_unlinked_labels(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["travel-request-bern"]
    script = [
        act("fill", 'textbox "Purpose"', text="Customer workshop Berner Spital"),
        act("fill", 'textbox "Destination"', text="Ber"),  # suggestions come after a 600 ms debounce
        act("click", 'textbox "Departure"'),  # covered by the suggestions: said at once
        act("click", 'listitem "Bern (Switzerland)"'),
        act("click", 'textbox "Departure"'),
        act("click", 'link "Next"'),
        act("click", 'clickable "24"'),
        act("click", 'textbox "Return"'),
        act("click", 'clickable "26"'),
        act("select_option", 'listbox "Cost centres"', values=["4100 Sales Germany", "4300 Marketing"]),
        act("click", 'button "Save request"'),
        tool_call("done", {"result": "saved"}),
    ]
    result, requests = _run(db, browser, apps, task, script)
    assert result.status == "done", (result.reason, _outcomes(result))
    covered = result.steps[4]
    assert not covered["ok"] and "is covered by [" in covered["outcome"] and 'listitem "Bern (Switzerland)"' in covered["outcome"]
    assert all(s["ok"] for i, s in enumerate(result.steps) if i != 4), _outcomes(result)
    assert task.check(AppState(apps.db_path)), _outcomes(result)
    after_typing = latest_observation(requests[4])
    assert 'listitem "Berlin (Germany)"' in after_typing and 'listitem "Bergen (Norway)"' in after_typing
    picker = latest_observation(requests[7])
    assert 'link "Prev"' in picker and 'link "Next"' in picker and "October 2025" in picker


def test_options_of_a_multi_select_toggle_on_click_and_wait_looks_again(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["travel-request-bern"]
    script = [
        act("click", 'option "4100 Sales Germany"'),
        act("click", 'option "5100 R&D Kumo"'),
        act("click", 'option "4300 Marketing"'),
        act("click", 'option "5100 R&D Kumo"'),  # a second click removes it again
        act("select_option", 'listbox "Cost centres"', value="7100 Training"),  # the single-value form still works
        act("select_option", 'listbox "Cost centres"', values=["4100 Sales Germany", "Nowhere"]),
        tool_call("wait", {"element": 'listbox "Cost centres"'}),
        tool_call("wait", {"text": "Bern (Switzerland)", "seconds": 0.3}),
        tool_call("wait", {"text": "never on this page", "seconds": 30}),
        tool_call("done", {"result": "looked"}),
    ]
    result, requests = _run(db, browser, apps, task, script, timing=Timing(wait_s=0.5))
    assert result.status == "done", result.reason
    outcomes = [s["outcome"] for s in result.steps]
    assert [s["ok"] for s in result.steps[2:]] == [True, True, True, True, True, False, True, False, False, True], _outcomes(result)
    assert 'listbox "Cost centres" value="4100 Sales Germany, 4300 Marketing" multiselectable' in latest_observation(requests[6])
    assert 'value="7100 Training"' in latest_observation(requests[7])
    assert "has no option 'Nowhere'" in outcomes[7] and "'4300 Marketing'" in outcomes[7]
    assert outcomes[8].startswith('waited') and 'listbox "Cost centres"' in outcomes[8]
    assert "did not appear" in outcomes[9] and "the most one wait may take" not in outcomes[9]
    assert "did not appear" in outcomes[10] and "the most one wait may take" in outcomes[10]


def test_a_tree_and_an_upload_of_a_file_the_run_was_given(db: Database, browser: Browser, apps: WebApps, tmp_path: Path) -> None:
    task = TASKS_BY_ID["files-upload-hotel-receipt"]
    receipt = tmp_path / "hotel-bern-receipt.pdf"
    receipt.write_bytes(UPLOADS[receipt.name])
    secret = tmp_path / "not-given.txt"
    secret.write_text("private")
    script = [
        act("click", 'treeitem "Germany" collapsed'),
        act("click", 'treeitem "Finance" collapsed'),
        act("click", 'treeitem "Receipts"'),
        act("upload", 'button "File to upload"', file="not-given.txt"),  # refused: not a file of this run
        act("upload", 'button "File to upload"', file=str(secret)),  # nor is any path
        act("upload", 'button "File to upload"', file=receipt.name),
        act("click", 'button "Upload"'),
        tool_call("done", {"result": "uploaded"}),
    ]
    result, requests = _run(db, browser, apps, task, script, files=(receipt,))
    assert result.status == "done", result.reason
    assert [s["ok"] for s in result.steps[2:]] == [True, True, True, False, False, True, True, True], _outcomes(result)
    assert "can upload only the files it was given (hotel-bern-receipt.pdf)" in result.steps[5]["outcome"]
    assert task.check(AppState(apps.db_path))
    assert AppState(apps.db_path).files()[-1].sha256 == hashlib.sha256(receipt.read_bytes()).hexdigest()
    tree = latest_observation(requests[5])
    assert 'treeitem "Germany" expanded' in tree and 'treeitem "Finance" expanded' in tree and 'treeitem "Receipts" selected' in tree
    system = requests[0]["messages"][0]["content"]
    assert "Files you may upload" in system and "hotel-bern-receipt.pdf" in system


def test_click_point_only_with_vision(db: Database, browser: Browser, apps: WebApps) -> None:
    task = TASKS_BY_ID["inbox-mark-all-read"]

    def at_the_span(body: dict[str, Any]) -> Any:
        assert body["messages"][-1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
        return tool_call("click_point", {"x": 5000, "y": 10})

    script = [at_the_span, tool_call("done", {"result": "no"})]
    result, requests = _run(db, browser, apps, task, script, vision=True)
    assert "click_point" in [t["function"]["name"] for t in requests[0]["tools"]]
    assert not result.steps[2]["ok"] and "inside the 1280x900 screenshot" in result.steps[2]["outcome"]
    plain, plain_requests = _run(db, browser, apps, task,
                                 [tool_call("click_point", {"x": 10, "y": 10}), tool_call("done", {"result": "no"})])
    assert "click_point" not in [t["function"]["name"] for t in plain_requests[0]["tools"]]
    assert "only available in runs with --vision" in plain.steps[2]["outcome"]


def test_hover_and_drag_are_replayed_without_a_model(db: Database, browser: Browser, apps: WebApps, tmp_path: Path) -> None:
    from cristal.operator import load_trajectory, replay_trajectory
    from cristal.sample.webapps.store import seed_database

    archive, receipt = TASKS_BY_ID["inbox-archive-offsite"], TASKS_BY_ID["inbox-file-taxi-receipt"]
    script = [act("drag", 'row "☆ Taxi Zentrale', to='listitem "Receipts (0)"'), act("click", 'row "☆ Jonas Becker Team offsite'),
              act("hover", 'clickable "Move to ▾"'), act("click", 'clickable "Archive"'), tool_call("done", {"result": "both"})]
    record = tmp_path / "inbox.json"
    result, _ = _run(db, browser, apps, archive, script, record=record)
    assert result.status == "done" and all(s["ok"] for s in result.steps), _outcomes(result)
    moved = {m.id: m.folder for m in AppState(apps.db_path).messages("aozora-de", archive.as_email)}
    assert (moved[202], moved[204]) == ("receipts", "archive")
    seed_database(apps.db_path, overwrite=True)
    replayed = replay_trajectory(db, employee(db, archive.as_email), load_trajectory(record), browser=browser)
    assert replayed.status == "complete" and replayed.replayed == 6, replayed.reason
    state = AppState(apps.db_path)
    assert {m.id: m.folder for m in state.messages("aozora-de", archive.as_email)} == moved
    assert not archive.check(state) and not receipt.check(state)  # each task alone: both changes are there
