"""Agent files: a valid file loads; every malformed one is refused with FILE:LINE and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.agents.definition import load_agent, load_agent_text
from cristal.errors import InvalidInput

GOOD = """\
name: expense-helper
description: Answers travel and expense questions from the company's policies.
instructions: Answer from the policies only; cite every fact.
language: de
model: small
budgets: {steps: 8, tokens: 20000, cost: 0.5}
knowledge: {sources: [docs], paths: ["public/richtlinien/"], tags: [travel]}
tools:
  - search_knowledge
  - research
  - sql: {source: erp, queries: {open_expenses: "select id from expenses where owner = :email"}}
  - http: {endpoints: [{name: rates, url: "https://rates.example/today"}]}
  - run_workflow: {workflow: expense-review}
  - operate: {allow_domains: [expenses.example]}
  - mcp: {server: ticketing, tools: [create_ticket]}
starters: ["Wie hoch ist die Hotelobergrenze?"]
sharing: [group:finance, "user:fin@acme.example:edit", org]
tests:
  - ask: "Wie hoch ist die Hotelobergrenze in München?"
    expect: ["180 EUR"]
    tools: [search_knowledge]
policy: {approve: always}
"""


def test_a_full_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(GOOD)
    agent = load_agent(path)
    assert agent.name == "expense-helper"
    assert agent.grants == [("group:finance", "use"), ("user:fin@acme.example", "edit"), ("org", "use")]
    spec = agent.spec()
    assert spec["tools"][0] == {"search_knowledge": {}}
    assert spec["tools"][2]["sql"]["queries"] == {"open_expenses": "select id from expenses where owner = :email"}
    assert spec["tools"][3]["http"]["endpoints"][0]["method"] == "GET"
    assert spec["policy"] == {"approve": "always", "approvers": [], "tests_must_pass": False}
    assert spec["budgets"] == {"steps": 8, "tokens": 20000, "cost": 0.5}


@pytest.mark.parametrize(("text", "expected"), [
    ("name: a\ninstructions: x\ncolour: blue\n", "agent.yaml:3: colour: unknown field"),
    ("name: a\n", "agent.yaml:1: instructions: missing field"),
    ("name: Not A Slug\ninstructions: x\n", "agent.yaml:1: name: invalid agent name"),
    ("name: a\ninstructions: x\nbudgets:\n  steps: 0\n", "agent.yaml:4: budgets.steps:"),
    ("name: a\ninstructions: x\nbudgets:\n  minutes: 3\n", "agent.yaml:4: budgets.minutes: unknown field"),
    ("name: a\ninstructions: x\ntools:\n  - browse_web\n", "agent.yaml:4: tools.0: unknown tool 'browse_web'"),
    ("name: a\ninstructions: x\ntools:\n  - sql:\n      source: erp\n      query: select 1\n",
     "agent.yaml:6: tools.0.sql.query: unknown field"),
    ("name: a\ninstructions: x\ntools:\n  - sql: {}\n", "agent.yaml:4: tools.0.sql.source: missing field"),
    ("name: a\ninstructions: x\ntools:\n  - {sql: {source: erp}, http: {endpoints: []}}\n", "a tool is a name"),
    ("name: a\ninstructions: x\ntools: [search_knowledge, search_knowledge]\n", "tool 'search_knowledge' is listed twice"),
    ("name: a\ninstructions: x\nsharing: [team:finance]\n", "agent.yaml:3: sharing: invalid grantee 'team:finance'"),
    ("name: a\ninstructions: x\nsharing: ['user:not-an-address']\n", "agent.yaml:3: sharing: invalid e-mail"),
    ("name: a\ninstructions: x\npolicy: {approve: never}\n", "agent.yaml:3: policy.approve:"),
    ("name: a\ninstructions: x\ntests:\n  - ask: hi\n    tools: [sql]\n",
     "agent.yaml:5: tests.0.tools: test expects tool 'sql', which the agent does not have"),
    ("name: a\ninstructions: x\ntests:\n  - ask: hi\n    answer: y\n", "agent.yaml:5: tests.0.answer: unknown field"),
    ("name: a\ninstructions: [x\n", "agent.yaml:3: malformed YAML"),
    ("- just a list\n", "agent.yaml:1: an agent file is a mapping"),
])
def test_malformed_files_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_agent_text(text, "agent.yaml")
    assert str(err.value).startswith(expected) or expected in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such agent file"):
        load_agent(tmp_path / "nope.yaml")


def test_tests_must_pass_needs_tests(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: x\ninstructions: hi\npolicy:\n  tests_must_pass: true\n")
    with pytest.raises(InvalidInput) as err:
        load_agent(path)
    assert str(err.value) == f"{path}:4: policy.tests_must_pass: the agent asks its tests to pass but has no tests"
