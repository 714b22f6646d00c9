"""The Operator part of the showcase: record a run in the sample Expenses app, then replay it with no model.

The recording is made by a scripted policy (``cristal.operator.scripted``)
served through the real OpenAI protocol on loopback, so it needs no model and
no network. The app's database is then reset and the recording replayed in a
fresh browser with no model at all; the task's own check on the app's
database decides whether the replay did the work.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError
from cristal.identity.directory import resolve_principal
from cristal.models import Gateway
from cristal.operator.browser import chromium
from cristal.operator.record import load as load_trajectory
from cristal.operator.replay import replay_trajectory
from cristal.operator.run import RunConfig, run_operator
from cristal.operator.scripted import act
from cristal.sample.webapps import AppState, serve_webapps
from cristal.sample.webapps.store import seed_database
from cristal.sample.webapps.tasks import TASKS
from cristal.testing.scripted_model import ScriptedModel, tool_call

ORG = "aozora-de"
TASK_ID = "expenses-file-taxi-claim"
# The apps judge dates against "today"; a fixed day keeps the episode reproducible.
EPISODE_DAY = date(2025, 10, 31)


def taxi_claim_policy(email: str) -> list[Any]:
    """The scripted steps of the taxi-claim task, signed in as ``email``."""
    return [
        act("fill", 'textbox "E-mail address"', text=email),
        act("click", 'button "Sign in"'),
        act("click", 'link "New claim"'),
        act("fill", 'textbox "Date"', text="2025-10-02"),
        act("select_option", 'combobox "Category"', value="Travel"),
        act("fill", 'textbox "Amount"', text="42.50"),
        act("select_option", 'combobox "Currency"', value="EUR"),
        act("fill", 'textbox "Description"', text="Taxi Hauptbahnhof to Klinikum Rheinland"),
        act("click", 'button "Save draft"'),
        tool_call("done", {"result": "saved the taxi claim as a draft"}),
    ]


def run_demo_operator(db: Database, home: Path) -> dict[str, Any]:
    """Record the taxi-claim task, reset the app, replay without a model, and check the app's state."""
    task = next(t for t in TASKS if t.id == TASK_ID)
    apps_db = home / "sample" / "webapps-demo.db"
    record = home / "recordings" / f"{TASK_ID}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    with db.session() as s:
        principal = resolve_principal(s, ORG, task.as_email)
    seed_database(apps_db, overwrite=True)
    with chromium() as browser:
        with serve_webapps(apps_db, today=lambda: EPISODE_DAY) as apps:
            port = int(apps.base_url.rsplit(":", 1)[1])
            # Filing a draft posts a form: the demo's run allows writes to the sample app (the replay reads it from the record).
            config = RunConfig(task=task.instruction, start_url=apps.url(task.start_path), record=record,
                               allow_writes=(urlsplit(apps.url("/")).netloc,))
            with ScriptedModel(taxi_claim_policy(task.as_email)) as model:
                settings = Settings(llm_base_url=model.base_url, llm_api_key="scripted", llm_model="scripted", llm_max_retries=0)
                with Gateway(settings, db) as gateway:
                    recorded = run_operator(db, principal, config, gateway=gateway, browser=browser)
            if recorded.status != "done" or not task.check(AppState(apps_db)):
                raise CristalError(f"the demo operator run did not finish its task: {recorded.status} ({recorded.reason})")
        # Same address, fresh data: the replay has to do the work again, with no model.
        seed_database(apps_db, overwrite=True)
        with serve_webapps(apps_db, port=port, today=lambda: EPISODE_DAY):
            replayed = replay_trajectory(db, principal, load_trajectory(record), browser=browser)
        done = task.check(AppState(apps_db))
    return {
        "task": task.instruction,
        "as": task.as_email,
        "record": str(record),
        "steps": len(recorded.steps),
        "recorded_status": recorded.status,
        "replay_status": replayed.status,
        "replayed_steps": replayed.replayed,
        "replay_seconds": round(replayed.seconds, 2),
        "task_done_after_replay": done,
    }
