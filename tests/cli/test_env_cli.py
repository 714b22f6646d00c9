"""``cristal env list|run|eval``: ids and families, rollouts to JSONL, pass^k reports, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Invoke, invoke_in_process


def test_env_list_json_gives_id_and_family() -> None:
    result = invoke_in_process("env", "list", "--json")
    assert result.code == 0, result.stderr
    envs = json.loads(result.stdout)["environments"]
    assert len(envs) >= 5 and all(e["id"].startswith("cristal/tools-") and e["family"] == "tools" for e in envs)


def test_env_eval_reports_success_and_pass_hat_k() -> None:
    solved = invoke_in_process("env", "eval", "tools", "--policy", "scripted:solve", "--episodes", "2", "--json")
    assert solved.code == 0, solved.stderr
    report = json.loads(solved.stdout)
    assert report["overall"]["success"] == 1.0 and report["overall"]["pass_hat_k"] == {"1": 1.0, "2": 1.0}
    wrong = json.loads(invoke_in_process("env", "eval", "file-mileage", "--policy", "scripted:wrong", "--episodes", "1",
                                         "--json").stdout)
    assert list(wrong["tasks"]) == ["cristal/tools-file-mileage-v0"] and wrong["overall"]["mean_reward"] == 0.0


def test_env_run_writes_rollouts_with_messages(tmp_path: Path) -> None:
    out = tmp_path / "rollouts.jsonl"
    result = invoke_in_process("env", "run", "cristal/tools-client-meal-v0", "--policy", "scripted:solve", "--seeds", "2",
                               "--out", str(out), "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)["rollouts"]
    assert [(r["seed"], r["reward"]) for r in summary] == [(0, 1.0), (1, 1.0)] and "messages" not in summary[0]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["messages"][0]["role"] == "system" and lines[0]["tools"][0]["type"] == "function"


def test_env_bad_input_is_one_line() -> None:
    for args in (("env", "eval", "nope", "--policy", "scripted:solve"), ("env", "run", "all", "--policy", "scripted:bad"),
                 ("env", "run", "all", "--policy", "agent:helper"), ("env", "list", "--task-file", "/nonexistent.yaml"),
                 ("env", "run", "all", "--policy", "scripted:solve", "--user", "ftp://x")):
        result = invoke_in_process(*args)
        assert result.code != 0 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), (args, result)


def test_stored_rollouts_export_as_chat_messages_with_tools(cli_in_process: Invoke, tmp_path: Path) -> None:
    assert cli_in_process("init").code == 0
    for policy, seeds in (("scripted:solve", "2"), ("scripted:wrong", "1")):
        result = cli_in_process("env", "run", "file-mileage", "--policy", policy, "--seeds", seeds, "--store")
        assert result.code == 0 and "stored" in result.stderr, result.stderr
    cli_in_process("env", "run", "file-mileage", "--policy", "scripted:solve", "--seeds", "1", "--store")  # seed 0 again
    out = tmp_path / "train.jsonl"
    result = cli_in_process("env", "export", "--out", str(out), "--min-reward", "1", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == {"out": str(out), "read": 3, "written": 2, "duplicates": 1}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and all(set(line) == {"messages", "tools"} for line in lines)
    roles = [m["role"] for m in lines[0]["messages"]]
    assert roles[:2] == ["system", "user"] and "tool" in roles and roles[-1] == "tool"
    call = next(m for m in lines[0]["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert call["type"] == "function" and json.loads(call["function"]["arguments"])["category"] == "mileage"
    assert {t["function"]["name"] for t in lines[0]["tools"]} == {"sql", "submit_expense", "done"}
    everything = json.loads(cli_in_process("env", "export", "--out", str(out), "--env", "tools", "--json").stdout)
    assert everything["written"] == 3


def test_storing_needs_an_initialised_workspace() -> None:
    result = invoke_in_process("env", "run", "file-mileage", "--policy", "scripted:solve", "--store")
    assert result.code != 0 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
