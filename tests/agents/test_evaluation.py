"""``cristal agent test``'s runner: cases through the real runtime as the caller, on the version asked for, with
reasons; the publish gate of ``policy.tests_must_pass``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.agents import analytics, evaluation, store
from cristal.agents.definition import load_agent_text
from cristal.db import Database
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.testing.scripted_model import ScriptedModel, text, tool_call
from tests.agents.test_conversations import settings_for

ADMIN, FIN, ENG = "admin@acme.example", "fin@acme.example", "eng@acme.example"

FILE = """\
name: helper
instructions: {instructions}
tools: [search_knowledge, {{sql: {{source: nowhere}}}}]
budgets: {{steps: 2}}
sharing: [group:engineering]
tests:
  - ask: "Munich?"
    expect: ["180 EUR", "per night"]
  - ask: "Query it"
    tools: [sql]
{policy}"""


def _agent(db: Database, instructions: str = "v1", policy: str = "") -> None:
    store.create(db, load_agent_text(FILE.format(instructions=instructions, policy=policy)), "acme", FIN)


def test_cases_run_on_the_version_asked_for_with_reasons(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    _agent(db)
    store.publish(db, "acme", FIN, "helper")
    store.edit(db, "acme", FIN, "helper", load_agent_text(FILE.format(instructions="v2", policy="")))
    loop = tool_call("search_knowledge", {"query": "x"})
    sql = tool_call("sql", {"query": "select 1"})
    with ScriptedModel([text("180 eur Per  Night."), sql, text("Done."), loop, loop, text("Done.")]) as model:
        cfg = settings_for(model, tmp_path)
        published = evaluation.run_tests(db, cfg, "acme", ENG, "helper@1")
        draft = evaluation.run_tests(db, cfg, "acme", FIN, "helper", draft=True)
        systems = [r.json["messages"][0]["content"] for r in model.chat_requests]
    assert (published["version"], published["passed"], published["failed"]) == (1, False, 1)
    first, second = published["cases"]
    assert first["passed"] and first["reasons"] == []
    assert second["reasons"][0].startswith("sql was called but did not succeed (error: ")
    assert systems[0].startswith("v1") and systems[3].startswith("v2")
    assert draft["version"] is None and draft["draft"]
    assert draft["cases"][0]["reasons"] == ["the turn failed: agent 'helper' used its 2 steps (max_steps) without "
                                            "answering; the model kept calling tools"]
    assert draft["cases"][1]["reasons"] == ["sql was not called"]
    # Test turns are not usage.
    assert analytics.stats(db, "acme", FIN, "helper")["versions"] == []
    # The draft is for those who may edit it; a version must exist to test it without --draft.
    with pytest.raises(NotFound):
        evaluation.run_tests(db, cfg, "acme", ENG, "helper", draft=True)
    with pytest.raises(InvalidInput, match="either AGENT@N or --draft"):
        evaluation.run_tests(db, cfg, "acme", FIN, "helper@1", draft=True)


def test_publish_refuses_failing_tests_when_the_agent_asks(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    _agent(db, policy="policy: {tests_must_pass: true}\n")
    sql = tool_call("sql", {"query": "select 1"})
    with ScriptedModel([text("No idea."), sql, text("Done.")]) as model:
        cfg = settings_for(model, tmp_path)
        with pytest.raises(InvalidInput) as err:
            evaluation.publish(db, cfg, "acme", FIN, "helper")
        assert len(model.chat_requests) == 3
    assert str(err.value).startswith("agent 'helper': 2 of 2 test cases fail, so it is not published "
                                     "(policy.tests_must_pass); case 1 ('Munich?'): the answer does not contain '180 EUR'")
    assert store.versions(db, "acme", FIN, "helper") == []
    # Someone who may not edit it gets the refusal they always got, before any test runs.
    with pytest.raises(AccessDenied):
        evaluation.publish(db, cfg, "acme", ENG, "helper")
    # A draft that changed after its tests ran is not published.
    with pytest.raises(InvalidInput, match="changed while its tests ran"):
        store.publish(db, "acme", FIN, "helper", tested={"instructions": "something else"})
    # Without the policy, publishing runs nothing (no model needed).
    store.edit(db, "acme", FIN, "helper", load_agent_text(FILE.format(instructions="v2", policy="")))
    assert "tests" not in evaluation.publish(db, cfg, "acme", FIN, "helper")


def test_an_agent_without_cases_passes_without_a_model(two_orgs: Database, tmp_path: Path) -> None:
    from cristal.config import Settings

    store.create(two_orgs, load_agent_text("name: plain\ninstructions: hi\n"), "acme", FIN)
    report = evaluation.run_tests(two_orgs, Settings(home=str(tmp_path)), "acme", FIN, "plain", draft=True)
    assert (report["passed"], report["total"], report["cases"]) == (True, 0, [])
