"""The tools family: task files, seeded instances, isolation between rollouts, rewards, Gymnasium, policies."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium
import pytest

from cristal.environments.catalog import builtin_tasks, select, tasks
from cristal.environments.gym import register_envs
from cristal.environments.policies import Scripted, make_policy
from cristal.environments.rollouts import pass_at_k, pass_hat_k, rollout, run_rollouts, summarize
from cristal.environments.task import TaskDefinition, load_task
from cristal.environments.tools import ToolsEnv, told
from cristal.errors import InvalidInput
from cristal.testing.scripted_model import ScriptedModel, text, tool_call

SEEDS = 2


@pytest.fixture(scope="module")
def catalog() -> list[TaskDefinition]:
    return builtin_tasks()


def _task(catalog: list[TaskDefinition], name: str) -> TaskDefinition:
    return select(name, catalog)[0]


def test_at_least_five_task_templates_with_ids(catalog: list[TaskDefinition]) -> None:
    assert len(catalog) >= 5
    assert all(t.env_id == f"cristal/tools-{t.name}-v0" and t.family == "tools" for t in catalog)


@pytest.mark.parametrize("policy, expected", [("solve", 1.0), ("wrong", 0.0)])
def test_scripted_policies_solve_and_fail_every_task(catalog: list[TaskDefinition], policy: str, expected: float) -> None:
    done = run_rollouts(catalog, lambda: Scripted(policy), SEEDS)
    assert len(done) == len(catalog) * SEEDS
    assert all(r.error is None for r in done), [r.error for r in done]
    assert {r.reward for r in done} == {expected}, [(r.task, r.seed, r.details) for r in done]


def test_doing_the_work_without_telling_the_facts_is_not_rewarded(catalog: list[TaskDefinition]) -> None:
    r = rollout(_task(catalog, "file-mileage"), 0, Scripted("silent"))
    assert r.reward == 0.0 and r.details["state_matches"] and r.details["facts_missing"]


def test_same_seed_same_instance_and_seeds_differ(catalog: list[TaskDefinition]) -> None:
    task = _task(catalog, "file-mileage")
    envs = [ToolsEnv(task) for _ in range(2)]
    try:
        first = [envs[0].reset(seed=s)[0] for s in (7, 7)]
        other = envs[1].reset(seed=7)[0]
        assert first[0] == first[1] == other
        instructions = {envs[0].reset(seed=s)[0] for s in range(6)}
        assert len(instructions) > 1
    finally:
        for env in envs:
            env.close()


def test_rollouts_never_share_state(catalog: list[TaskDefinition], tmp_path: Path) -> None:
    task = _task(catalog, "hotel-over-cap")
    a, b = ToolsEnv(task, workdir=tmp_path), ToolsEnv(task, workdir=tmp_path)
    try:
        a.reset(seed=1)
        b.reset(seed=1)
        assert a.erp is not None and b.erp is not None and a.erp.path != b.erp.path
        before = b.erp.snapshot()
        obs = a.step({"name": "approve_expense", "arguments": {"expense_id": 47}})[0]
        assert json.loads(obs)["status"] == "approved"
        assert b.erp.snapshot() == before  # the other rollout does not see the write
        assert b.step({"name": "sql", "arguments": {"query": "select status from expenses where id = 47"}})[0] == \
            json.dumps({"rows": [{"status": "pending"}], "truncated": False})
        # a new episode of the same environment starts from a fresh copy, and the old folder is gone
        old = a.erp.path
        a.reset(seed=1)
        assert not old.exists()
        assert a.step({"name": "sql", "arguments": {"query": "select status from expenses where id = 47"}})[0].count("pending") == 1
    finally:
        a.close()
        b.close()
    assert list(tmp_path.iterdir()) == []  # closing removes each rollout's folder


def test_bad_actions_are_observations_and_the_step_limit_ends_the_episode(catalog: list[TaskDefinition]) -> None:
    env = ToolsEnv(_task(catalog, "hotel-over-cap"), max_steps=5)
    try:
        env.reset(seed=0)
        assert env.step("not json")[0].startswith("error: an action is a JSON object")
        assert env.step({"name": "drop_table", "arguments": {}})[0].startswith("error: unknown tool 'drop_table'")
        assert "pending" in env.step({"name": "approve_expense", "arguments": {"expense_id": 36}})[0]  # approved already
        assert env.step({"name": "sql", "arguments": {"query": "delete from expenses"}})[0].startswith("error:")
        obs, reward, terminated, truncated, info = env.step('{"name": "update_expense", "arguments": "{\\"expense_id\\": 47}"}')
        assert obs.startswith("error: nothing to update")
        assert (reward, terminated, truncated) == (0.0, False, True)
        assert info["reward_details"]["state_matches"] is False
        with pytest.raises(RuntimeError):
            env.step({"message": "hello"})
    finally:
        env.close()


def test_invalid_tool_arguments_are_told_in_one_line(catalog: list[TaskDefinition]) -> None:
    env = ToolsEnv(_task(catalog, "hotel-over-cap"))
    try:
        env.reset(seed=0)
        assert env.step({"name": "approve_expense", "arguments": {}})[0] == \
            "error: invalid arguments for approve_expense: missing field 'expense_id'"
        assert env.step({"name": "approve_expense", "arguments": {"expense_id": 47, "why": "x"}})[0] == \
            "error: invalid arguments for approve_expense: unknown field 'why'"
        assert env.step({"name": "update_expense", "arguments": {"expense_id": 47, "amount": -1}})[0] == \
            "error: invalid arguments for update_expense: amount: Input should be greater than 0"
    finally:
        env.close()


def test_the_simulated_employee_reveals_the_hidden_goal_only_when_asked(catalog: list[TaskDefinition]) -> None:
    env = ToolsEnv(_task(catalog, "file-mileage"))
    try:
        obs, _ = env.reset(seed=3)
        assert "travel and expense policy" in obs.lower() and "mileage" in obs
        miles = env.instance.values["miles"]  # type: ignore[union-attr]  # set by reset()
        assert str(miles) not in env.step({"message": "Sure, I will file it."})[0]
        assert f"{miles} miles" in env.step({"message": "How many miles did you drive?"})[0]
    finally:
        env.close()


def test_gymnasium_make_by_registered_id() -> None:
    ids = register_envs()
    assert "cristal/tools-file-mileage-v0" in ids and register_envs() == ids  # registering again is harmless
    env = gymnasium.make("cristal/tools-expense-status-v0", max_steps=4)
    try:
        obs, info = env.reset(seed=2)
        assert isinstance(obs, str) and {t["function"]["name"] for t in info["tools"]} == {"sql", "done"}
        instance = env.unwrapped.instance  # type: ignore[attr-defined]  # gymnasium.make wraps our ToolsEnv
        env.step({"message": " and ".join(instance.facts)})
        _, reward, terminated, _, _ = env.step({"name": "done", "arguments": {}})
        assert terminated and reward == 1.0
    finally:
        env.close()


def test_a_model_behind_an_endpoint_plays_through_tool_calls(catalog: list[TaskDefinition]) -> None:
    task = _task(catalog, "expense-status")
    probe = ToolsEnv(task)
    probe.reset(seed=4)
    facts = probe.instance.facts  # type: ignore[union-attr]  # set by reset()
    probe.close()
    script = [tool_call("sql", {"query": "select status, amount from expenses"}), text(f"It is {facts[0]}, {facts[1]} USD."),
              tool_call("done", {})]
    with ScriptedModel(script) as model:
        r = rollout(task, 4, make_policy(model.base_url, model="scripted")())
        assert r.reward == 1.0 and r.tokens > 0 and r.model == "scripted", r.details
        sent = model.chat_requests[0].json
        assert {t["function"]["name"] for t in sent["tools"]} == {"sql", "done"}
        assert model.chat_requests[1].json["messages"][-1]["role"] == "tool"


def test_pass_at_k_and_pass_hat_k() -> None:
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6) and pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    assert pass_at_k(8, 0, 8) == 0.0 and pass_hat_k(8, 8, 8) == 1.0


def test_summary_per_task_and_overall(catalog: list[TaskDefinition]) -> None:
    chosen = [_task(catalog, "expense-status"), _task(catalog, "file-mileage")]
    report = summarize(run_rollouts(chosen, lambda: Scripted("solve"), 3) + run_rollouts(chosen[:1], lambda: Scripted("wrong"), 1))
    status = report["tasks"]["cristal/tools-expense-status-v0"]
    assert status["episodes"] == 4 and status["success"] == 0.75 and status["pass_hat_k"]["4"] == 0.0
    assert set(status["pass_at_k"]) == {"1", "2", "3", "4"}
    assert report["overall"]["success"] == pytest.approx((0.75 + 1.0) / 2, abs=1e-4)


def test_numbers_are_told_in_any_spelling() -> None:
    assert told("975", "the reimbursed amount is $975.00.") and told("1284.5", "1,284.50 eur")
    assert not told("97.5", "975") and told("approved", "it is approved")


def test_task_file_errors_name_file_line_and_field(tmp_path: Path, catalog: list[TaskDefinition]) -> None:
    good = (Path(__file__).parents[2] / "src/cristal/environments/tasks/expense-status.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.replace("tools: [sql, done]", "tools: [sql, done, rm_rf]"))
    with pytest.raises(InvalidInput, match=r"bad\.yaml:\d+: tools: unknown tool 'rm_rf'"):
        load_task(bad)
    bad.write_text(good + "colour: blue\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml:\d+: colour: unknown field"):
        load_task(bad)
    mine = tmp_path / "mine.yaml"
    mine.write_text(good.replace("name: expense-status", "name: my-status"))
    assert [t.name for t in tasks([mine])][-1] == "my-status"
    with pytest.raises(InvalidInput, match="two tasks have the environment id"):
        tasks([mine, mine])


def test_task_templates_render_in_the_workflow_sandbox_with_its_limits(catalog: list[TaskDefinition]) -> None:
    task = _task(catalog, "expense-status")
    row = {"id": 7, "employee_email": "a@aozora.example", "date": "2026-01-02", "category": "per_diem",
           "amount": 12.5, "status": "approved"}
    instance = task.instance(0, lambda sql, params: [row])
    assert instance.instruction == "What is the status of my per diem claim from 2026-01-02, and how much was it?"
    assert instance.facts == ("approved", "12.5")

    def broken(instruction: str) -> TaskDefinition:
        return task.model_copy(update={"instruction": instruction})

    with pytest.raises(InvalidInput, match=r"task expense-status: template .*'nope' is undefined"):
        broken("{{ nope }}").instance(0, lambda sql, params: [row])
    with pytest.raises(InvalidInput, match=r"task expense-status: template .* refused: .*digits"):
        broken("{{ 9 ** 999999 }}").instance(0, lambda sql, params: [row])
    with pytest.raises(InvalidInput, match=r"task expense-status: template .* is not allowed"):
        broken("{{ expense.__class__.__mro__ }}").instance(0, lambda sql, params: [row])


def test_the_ten_line_example_in_the_docs_runs(capsys: pytest.CaptureFixture[str]) -> None:
    page = (Path(__file__).parents[2] / "docs/environments.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in example.splitlines() if line.strip()]) == 10
    exec(compile(example, "docs/environments.md", "exec"), {})  # noqa: S102 - the documentation's own example
    assert capsys.readouterr().out.startswith("1.0 {")


def test_a_broken_task_is_reported_per_rollout_and_the_run_goes_on(tmp_path: Path, catalog: list[TaskDefinition]) -> None:
    base = (Path(__file__).parents[2] / "src/cristal/environments/tasks/hotel-over-cap.yaml").read_text()
    broken_checker = tmp_path / "checker.yaml"
    broken_checker.write_text(base.replace("name: hotel-over-cap", "name: bad-checker")
                              + "checker:\n  - {sql: select flag from no_such_table, says: the flag is set}\n")
    broken_reference = tmp_path / "reference.yaml"
    broken_reference.write_text(base.replace("name: hotel-over-cap", "name: bad-reference")
                                .replace("{expense_id: 47}}", "{expense_id: 1}}"))
    chosen = [load_task(broken_checker), load_task(broken_reference), _task(catalog, "expense-status")]
    done = run_rollouts(chosen, lambda: Scripted("solve"), 1)
    assert [r.task for r in done] == ["bad-checker", "bad-reference", "expense-status"]
    assert done[0].reward == 0.0 and "the flag is set: cannot run" in done[0].details["checks_failed"][0]
    assert done[1].reward == 0.0 and "reference action approve_expense fails: no expense 1" in (done[1].error or "")
    assert done[2].reward == 1.0


def test_rollouts_in_worker_processes_match_the_ones_in_process(catalog: list[TaskDefinition]) -> None:
    from cristal.environments.policies import PolicySpec

    chosen = [_task(catalog, "file-mileage")]
    here = run_rollouts(chosen, PolicySpec("scripted:solve"), 2)
    there = run_rollouts(chosen, PolicySpec("scripted:solve"), 2, workers=2)
    assert [(r.env_id, r.seed, r.reward, r.messages) for r in there] == [(r.env_id, r.seed, r.reward, r.messages) for r in here]


def test_a_model_can_play_the_employee(catalog: list[TaskDefinition]) -> None:
    from cristal.environments.users import UserSpec

    with ScriptedModel([text("About forty miles, I think.")]) as model:
        env = ToolsEnv(_task(catalog, "file-mileage"), user=UserSpec(model.base_url, "scripted").make())
        try:
            env.reset(seed=3)
            miles = env.instance.values["miles"]  # type: ignore[union-attr]  # set by reset()
            assert env.step({"message": "How far did you drive?"})[0] == "About forty miles, I think."
        finally:
            env.close()
        sent = model.chat_requests[0].json["messages"]
    assert f"{miles} miles" in sent[0]["content"] and "Policy" not in sent[0]["content"]  # the hidden goal, not the policy
    assert [m["role"] for m in sent[1:]] == ["assistant", "user"] and sent[-1]["content"] == "How far did you drive?"


def test_every_task_has_a_valid_instance_for_many_seeds(catalog: list[TaskDefinition]) -> None:
    for task in catalog:
        env = ToolsEnv(task)
        try:
            for seed in range(16):
                env.reset(seed=seed)  # raises when a reference action fails on the instance
        finally:
            env.close()


def test_gymnasiums_own_environment_checker_passes(catalog: list[TaskDefinition]) -> None:
    from gymnasium.utils.env_checker import check_env

    env = ToolsEnv(_task(catalog, "hotel-over-cap"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the checker reports problems as warnings
            check_env(env, skip_render_check=True)
    finally:
        env.close()
