"""The ``agent`` step kind: a workflow run asks an agent as its owner, with a question templated from earlier
steps, through the action registry; FILE:LINE errors for bad fields; the question counts as untrusted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cristal.agents import analytics, store
from cristal.agents.definition import load_agent_text
from cristal.config import Settings
from cristal.db import Database
from cristal.durable.runtime import shutdown
from cristal.errors import InvalidInput
from cristal.testing.scripted_model import ScriptedModel, text, tool_call
from cristal.workflows import service
from cristal.workflows.spec import load_workflow, load_workflow_text
from tests.workflows.conftest import PYTHON_MODULES, CountingServer, write

ADMIN, FIN, ENG = "admin@acme.example", "fin@acme.example", "eng@acme.example"

FLOW = """\
name: claim-check
inputs:
  city: Munich
steps:
  - id: claim
    python: {call: "tests.workflows.fns:echo", args: {amount: 200, city: "{{ inputs.city }}"}}
  - id: answer
    agent: {agent: helper, question: "Is {{ steps.claim.output.amount[1] }} EUR fine in {{ steps.claim.output.city[1] }}?"}
  - id: after
    python: {call: "tests.workflows.fns:echo", args: {said: "{{ steps.answer.output.answer }}"}}
"""


def _settings(model: ScriptedModel, home: Path) -> Settings:
    return Settings(home=str(home), llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted",
                    llm_timeout_seconds=5.0, llm_max_retries=0,
                    workflow_python_modules=tuple(PYTHON_MODULES.split(",")))


def _agent(db: Database, tools: str = "[search_knowledge]") -> None:
    store.create(db, load_agent_text(f"name: helper\ninstructions: Answer briefly.\ntools: {tools}\n"
                                     "sharing: [group:finance]\n"), "acme", ADMIN)
    store.publish(db, "acme", ADMIN, "helper")


def _run(db: Database, settings: Settings, flow: Path, email: str) -> dict[str, Any]:
    run = service.create_run(db, load_workflow(flow, settings=settings), "acme", email, {})
    try:
        handle = service.start(db, settings, run)
        try:
            handle.get_result()
        except Exception:  # noqa: BLE001 - a failed run is read back from its status below
            pass
    finally:
        shutdown()
    return service.run_status(db, run.run_id, email)


def _step(doc: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["id"] == step_id)


def test_a_run_asks_the_agent_as_its_owner(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    _agent(db)
    flow = write(tmp_path / "flow.yaml", FLOW)
    with ScriptedModel([text("Yes: the Munich cap is 180 EUR, so 200 EUR is above it.")]) as model:
        settings = _settings(model, tmp_path)
        done = _run(db, settings, flow, FIN)
        # Someone the agent is not shared with: the step fails, the agent does not exist for them.
        refused = _run(db, settings, flow, ENG)
        questions = [r.json["messages"][-1]["content"] for r in model.chat_requests]
    assert done["status"] == "succeeded", done
    output = _step(done, "answer")["output"]
    assert output["answer"].startswith("Yes: the Munich cap") and output["conversation_id"] is None
    assert (output["agent"], output["version"], output["citations"]) == ("helper", 1, [])
    assert questions == ["Is 200 EUR fine in Munich?"]
    assert _step(done, "after")["output"]["said"][1] == output["answer"]
    assert refused["status"] == "failed" and "unknown agent 'helper'" in refused["error"]
    # The turn is counted for the agent's statistics, as a workflow's.
    [version] = analytics.stats(db, "acme", ADMIN, "helper")["versions"]
    assert version["turns_by_way_in"] == {"conversation": 0, "api": 0, "workflow": 1}
    assert version["conversations"] == 0 and version["tokens"] > 0


def test_the_templated_question_cannot_steer_a_write(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    with CountingServer() as hook:
        _agent(db, f"[{{http: {{endpoints: [{{name: hook, url: '{hook.url}', method: POST}}]}}}}]")
        flow = write(tmp_path / "flow.yaml", FLOW.replace("city: Munich", f"city: {hook.url}?leak=secret-figures"))
        post = tool_call("http", {"method": "POST", "url": f"{hook.url}?leak=secret-figures", "json": {"x": 1}})
        with ScriptedModel([post, text("I could not send it.")]) as model:
            done = _run(db, _settings(model, tmp_path), flow, FIN)
        assert not hook.requests
    assert done["status"] == "succeeded", done
    [call] = _step(done, "answer")["output"]["tool_calls"]
    assert call["status"] == "refused" and "carry text from tool results" in call["message"]


@pytest.mark.parametrize(("body", "message"), [
    ("{agent: Helper, question: hi}", "agent: invalid agent 'Helper': its name (SLUG), or SLUG@N for a published version"),
    ("{agent: helper@0, question: hi}", "agent: invalid agent 'helper@0': its name (SLUG), or SLUG@N for a published version"),
    ("{agent: \"{{ inputs.who }}\", question: hi}", "agent: the agent is named literally (SLUG or SLUG@N), not by a template"),
    ("{agent: helper}", "missing field 'question'"),
    ("{agent: helper, question: hi, model: big}", "unknown field 'model'"),
    ("{agent: helper, question: \"{{ steps.nope.output }}\"}", "refers to unknown step 'nope'"),
])
def test_bad_fields_name_the_file_and_line(body: str, message: str) -> None:
    text_ = f"name: x\ninputs: {{who: a}}\nsteps:\n  - id: ask\n    agent: {body}\n"
    with pytest.raises(InvalidInput) as err:
        load_workflow_text(text_, origin="flow.yaml")
    assert str(err.value) == f"flow.yaml:5: step 'ask': {message}"


def test_a_good_step_compiles() -> None:
    compiled = load_workflow_text("name: x\nsteps:\n  - id: ask\n    agent: {agent: helper@2, question: hi}\n")
    [step] = compiled.definition["steps"]
    assert (step["kind"], step["spec"]) == ("agent", {"agent": "helper@2", "question": "hi"})
