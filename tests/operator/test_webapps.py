"""The Operator in the sample company's web apps: a ScriptedModel signs in, files and submits claims,
and the apps' own database decides whether the task was done."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cristal.db import Database
from cristal.models import Gateway
from cristal.operator import RunConfig, run_operator
from cristal.operator.demo import taxi_claim_policy
from cristal.sample.webapps import AppState, WebApps
from cristal.sample.webapps.tasks import TASKS
from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import employee, model_settings
from tests.operator.scripts import act

TASK = {t.id: t for t in TASKS}


def _run(db, principal, browser, script, config):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        return run_operator(db, principal, config, gateway=gateway, browser=browser)


def _sign_in(email: str) -> list[Any]:
    return [act("fill", 'textbox "E-mail address"', text=email), act("click", 'button "Sign in"')]


def test_files_a_draft_claim_in_the_expenses_app(db: Database, browser, apps: WebApps) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    task = TASK["expenses-file-taxi-claim"]
    script = taxi_claim_policy(task.as_email)  # the same scripted policy the demo records
    config = RunConfig(task=task.instruction, start_url=apps.url(task.start_path), allow_writes=(urlsplit(apps.url("/")).netloc,))
    result = _run(db, employee(db, task.as_email), browser, script, config)
    assert result.status == "done", result.reason
    assert all(s["ok"] for s in result.steps), [s["outcome"] for s in result.steps]
    assert task.check(AppState(apps.db_path))


def test_submitting_a_claim_pauses_then_succeeds_with_approval(db: Database, browser, apps: WebApps) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    task = TASK["expenses-submit-draft"]
    principal = employee(db, task.as_email)
    open_claim = [*_sign_in(task.as_email), act("click", 'link "Claim 101"')]
    config = RunConfig(task=task.instruction, start_url=apps.url(task.start_path))
    paused = _run(db, principal, browser, [*open_claim, act("click", 'button "Submit for approval"'),
                                           act("click", 'button "Confirm submission"')], config)
    assert paused.status == "needs_approval" and "Confirm submission" in paused.reason and "it sends POST" in paused.reason
    assert not AppState(apps.db_path).changes().claims
    config.allow_irreversible = True
    script = [*open_claim, act("click", 'button "Submit for approval"'), act("click", 'button "Confirm submission"'),
              tool_call("done", {"result": "submitted"})]
    result = _run(db, principal, browser, script, config)
    assert result.status == "done", result.reason
    assert task.check(AppState(apps.db_path))
