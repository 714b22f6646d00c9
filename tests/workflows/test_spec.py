"""Validation before anything runs: precise FILE:LINE: step 'ID': problem messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.errors import InvalidInput
from cristal.workflows.spec import load_workflow, parse_cli_inputs, parse_duration, parse_inputs
from tests.workflows.conftest import write

OK_STEP = '    python: {call: "cristal.sample.checks:numbers", args: {n: 2}}\n'


def _error(tmp_path: Path, text: str, name: str = "wf.yaml") -> str:
    path = write(tmp_path / name, text)
    with pytest.raises(InvalidInput) as info:
        load_workflow(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_valid_file_compiles_to_plain_json(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.yaml", "name: ok\ninputs: {threshold: 100}\nsteps:\n  - id: a\n" + OK_STEP +
                 "  - id: b\n    for_each: \"{{ steps.a.output }}\"\n    when: \"{{ item > inputs.threshold }}\"\n"
                 "    concurrency: 4\n    retry: {attempts: 3, backoff: 2s}\n    timeout: 5m\n"
                 + OK_STEP.replace("n: 2", "n: \"{{ item }}\""))
    compiled = load_workflow(path)
    b = compiled.steps[1]
    assert b["kind"] == "python" and b["timeout"] == 300 and b["retry"]["backoff"] == 2 and b["line"] == 6
    assert parse_inputs(compiled, {"threshold": 5}) == {"threshold": 5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nsteps: [\n", ":3: malformed YAML"),
        ("name: x\nname: y\nsteps: []\n", ":2: malformed YAML: duplicate key 'name'"),
        ("name: x\nsteps:\n  - id: a\n    shell: {cmd: ls}\n", ":3: step 'a': no step kind (unknown kind 'shell')"),
        ("name: x\nsteps:\n  - id: a\n" + OK_STEP + "    http: {url: 'http://x'}\n", ":5: step 'a': two kinds in one step (python, http)"),
        ("name: x\nsteps:\n  - id: a\n" + OK_STEP + "  - id: a\n" + OK_STEP, ":5: step 'a': duplicate step id (first used on line 3)"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'cristal.sample.checks:double', args: {x: '{{ steps.b.output }}'}}\n"
         "  - id: b\n" + OK_STEP,
         ":4: step 'a': refers to step 'b', which runs later"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'cristal.sample.checks:double', args: {x: '{{ steps.nope.output }}'}}\n",
         ":4: step 'a': refers to unknown step 'nope'"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'cristal.sample.checks:double', args: {x: '{{ inputs.x + }}'}}\n",
         ":4: step 'a': template syntax error"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'cristal.sample.checks:double', args: {x: '{{ item }}'}}\n",
         "'item' is only defined in a step with for_each"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'cristal.sample.checks:double', args: {x: '{{ inputs.nope }}'}}\n",
         "unknown input 'nope'"),
        ("name: x\nsteps:\n  - id: a\n    timeout: soon\n" + OK_STEP, ":4: step 'a': timeout: invalid duration 'soon'"),
        ("name: x\nsteps:\n  - id: a\n    research: {question: why, mode: magic}\n",
         ":4: step 'a': mode: Input should be 'auto', 'extractive' or 'llm'"),
        ("name: x\nsteps:\n  - id: a\n    operate: {task: t}\n", "step 'a': missing field 'start_url'"),
        ("name: x\nsteps:\n  - id: a\n    python: {call: 'os:system', args: {command: ls}}\n", "python module 'os' is not allowed"),
        ("name: x\nsteps:\n  - id: a\n    sql: {source: erp, query: \"select * from t where id = {{ inputs.x }}\"}\n",
         "a query cannot contain templates"),
        ("name: x\nsteps:\n  - id: a\n    approval: {approvers: ['finance']}\n", "invalid approver 'finance'"),
        ("name: x\nsteps:\n  - id: a\n    http: {url: 'http://x', verb: GET}\n", ":4: step 'a': unknown field 'verb'"),
        ("name: x\nsteps:\n  - id: a\n    python: {args: {}}\n", ":4: step 'a': missing field 'call'"),
    ],
)
def test_validation_errors_name_file_line_and_step(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(str(tmp_path / "wf.yaml"))
    assert expected in message, message


def test_cycles_between_sub_workflows_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", "name: b\nsteps:\n  - id: back\n    workflow: {file: a.yaml}\n")
    message = _error(tmp_path, "name: a\nsteps:\n  - id: sub\n    workflow: {file: b.yaml}\n", "a.yaml")
    assert "cycle in sub-workflows: a.yaml -> b.yaml -> a.yaml" in message


def test_sub_workflow_files_are_resolved_next_to_the_parent(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib" / "child.yaml", "name: child\ninputs: {n: null}\nsteps:\n  - id: c\n" + OK_STEP)
    assert "needs input 'n'" in _error(tmp_path, "name: p\nsteps:\n  - id: s\n    workflow: {file: lib/child.yaml}\n")
    path = write(tmp_path / "p.yaml", "name: p\nsteps:\n  - id: s\n    workflow: {file: lib/child.yaml, inputs: {n: 2}}\n")
    assert load_workflow(path).steps[0]["spec"]["definition"]["name"] == "child"
    assert "not found" in _error(tmp_path, "name: p\nsteps:\n  - id: s\n    workflow: {file: nope.yaml}\n")


def test_inputs_and_durations() -> None:
    assert parse_cli_inputs(["threshold=250", "name=Anna", "flag=true"]) == {"threshold": 250, "name": "Anna", "flag": True}
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_cli_inputs(["novalue"])
    assert parse_duration("3d") == 259200 and parse_duration("250ms") == 0.25 and parse_duration(10) == 10
    with pytest.raises(ValueError):
        parse_duration("-1s")


def test_research_steps_cannot_pick_a_checkpoint_or_an_unbounded_budget(tmp_path: Path) -> None:
    """Workflow text comes from any employee (the REST API): it may not choose whose notes a step resumes,
    nor spend more than one step's cap of the organization's model budget and time."""
    from cristal.workflows.spec import load_workflow_text

    step = "name: x\nsteps:\n  - id: a\n    research: {question: why, %s}\n"
    assert "research checkpoints are chosen by Cristal" in _error(tmp_path, step % "checkpoint: 0123456789ab")
    with pytest.raises(InvalidInput, match="checkpoints are chosen by Cristal"):
        load_workflow_text(step % "checkpoint: 0123456789ab", origin="<request>")
    assert ":4: step 'a': max_tokens: at most 1000000 tokens per research step" in _error(tmp_path, step % "max_tokens: 10000000")
    assert ":4: step 'a': max_seconds: at most 3600 seconds per research step" in _error(tmp_path, step % "max_seconds: 86400")
    spec = load_workflow(write(tmp_path / "ok.yaml", step % "max_tokens: 1000000, max_seconds: 3600")).steps[0]["spec"]
    assert spec["max_tokens"] == 1_000_000 and spec["max_seconds"] == 3600 and "checkpoint" not in spec
