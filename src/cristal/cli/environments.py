"""``cristal env``: list the training environments, run rollouts of a policy, and evaluate it (pass@k, pass^k)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Column

from cristal.cli.runtime import JSON, database, note, print_json, settings, show, show_table, unit_of_work

if TYPE_CHECKING:
    from cristal.environments.rollouts import Rollout
    from cristal.environments.task import TaskDefinition

app = typer.Typer()


def env_column(header: str = "environment") -> Column:
    """Environment ids are never cut short: they are what a reader copies into the next command."""
    return Column(header, overflow="fold", min_width=len("cristal/tools-non-reimbursable-v0"))
env_app = typer.Typer(help="Training environments: tasks over the sample company with rewards from the state left behind.",
                      no_args_is_help=True)
app.add_typer(env_app, name="env")

TASK_FILES = typer.Option([], "--task-file", help="A task file of your own (repeatable), beside the built-in tasks.")
POLICY = typer.Option(..., "--policy", help="scripted:NAME (solve, wrong, silent) or an OpenAI-compatible base URL.")
MODEL = typer.Option(None, "--model", help="The model at a URL policy (default: CRISTAL_LLM_MODEL).")
MAX_STEPS = typer.Option(None, "--max-steps", min=1, max=500, help="Steps before a rollout is cut off (default: the task's).")
WORKERS = typer.Option(1, "--workers", min=1, max=256, help="Processes to run the rollouts in (default 1).")
USER = typer.Option(None, "--user", help="An OpenAI-compatible base URL whose model plays the employee (default: scripted).")
USER_MODEL = typer.Option(None, "--user-model", help="The model at --user (default: CRISTAL_LLM_MODEL).")
STORE = typer.Option(False, "--store", help="Keep the rollouts in the workspace database (for `cristal env export`).")


def _chosen(env: str, task_files: list[Path]) -> list[TaskDefinition]:
    from cristal.environments.catalog import select, tasks

    return select(env, tasks(task_files))


def _rollouts(env: str, policy: str, seeds: int, task_files: list[Path], model: str | None,
              max_steps: int | None, store: bool, workers: int, user: str | None, user_model: str | None) -> list[Rollout]:
    from cristal.environments.policies import PolicySpec
    from cristal.environments.rollouts import run_rollouts
    from cristal.environments.users import UserSpec
    from cristal.errors import InvalidInput

    chosen = _chosen(env, task_files)
    key = ""
    simulated = UserSpec()
    if policy.startswith(("http://", "https://")) or user:  # only an endpoint needs the settings (its model and key)
        cfg = settings()
        key = cfg.llm_api_key or ""
        if policy.startswith(("http://", "https://")):
            model = model or cfg.llm_model
        if user:
            if not user.startswith(("http://", "https://")):
                raise InvalidInput(f"--user {user!r} is not an http(s) URL")
            user_model = user_model or cfg.llm_model
            if not user_model:
                raise InvalidInput("a simulated user endpoint needs a model: set CRISTAL_LLM_MODEL or pass --user-model")
            simulated = UserSpec(user, user_model, key)
    spec = PolicySpec(policy, model or "", key)
    spec.factory()  # an unknown policy is refused before anything runs
    if store:
        with database():  # the workspace must be initialised: found out before the rollouts, not after
            pass
    note("running {} rollouts of {} on {} environments", seeds * len(chosen), policy, len(chosen))
    done = run_rollouts(chosen, spec, seeds, max_steps=max_steps, workers=workers, user=simulated)
    if store:
        from cristal.environments.store import save

        with unit_of_work() as session:
            batch = save(session, done)
        note("stored {} rollouts as batch {}", len(done), batch)
    return done


@env_app.command("list")
def list_command(task_file: list[Path] = TASK_FILES, json_out: bool = JSON) -> None:
    """List the environments: their Gymnasium id, family and task."""
    from cristal.environments.catalog import tasks

    found = tasks(task_file)
    if json_out:
        print_json({"environments": [{"id": t.env_id, "family": t.family, "task": t.name, "description": t.description,
                                      "tools": t.tools} for t in found]})
        return
    show_table("Environments", [env_column("id"), "family", "description"], [[t.env_id, t.family, t.description] for t in found])


@env_app.command("run")
def run_command(
    env: str = typer.Argument(..., help="An environment id, a task name, a family (tools) or all."),
    policy: str = POLICY,
    seeds: int = typer.Option(1, "--seeds", min=1, max=10_000, help="Rollouts per task, with seeds 0 .. N-1."),
    out: Path | None = typer.Option(None, "--out", help="Also write each rollout, with its messages, as a JSONL line."),
    task_file: list[Path] = TASK_FILES,
    model: str | None = MODEL,
    max_steps: int | None = MAX_STEPS,
    store: bool = STORE,
    workers: int = WORKERS,
    user: str | None = USER,
    user_model: str | None = USER_MODEL,
    json_out: bool = JSON,
) -> None:
    """Run rollouts of a policy: one per task and seed; each gets its own copy of the state."""
    done = _rollouts(env, policy, seeds, task_file, model, max_steps, store, workers, user, user_model)
    if out is not None:
        from cristal.environments.store import write_lines

        write_lines(out, (json.dumps(r.as_json(), ensure_ascii=False, default=str) for r in done))
        note("wrote {} rollouts to {}", len(done), out)
    if json_out:
        print_json({"rollouts": [r.as_json(messages=False) for r in done]})
        return
    show_table(None, [env_column(), "seed", "reward", "steps", "seconds", "why"],
               [[r.env_id, r.seed, r.reward, r.steps, r.seconds, r.error or _why(r)] for r in done])


def _why(r: Rollout) -> str:
    d = r.details
    parts = [] if d.get("state_matches", True) else ["state differs from the goal"]
    if d.get("facts_missing"):
        parts.append("not told: " + ", ".join(d["facts_missing"]))
    parts += d.get("checks_failed", [])
    if not r.terminated and not r.error:
        parts.append("step limit")
    return "; ".join(parts)


@env_app.command("eval")
def eval_command(
    env: str = typer.Argument(..., help="An environment id, a task name, a family (tools) or all."),
    policy: str = POLICY,
    episodes: int = typer.Option(8, "--episodes", "--seeds", min=1, max=10_000, help="Rollouts per task (seeds 0 .. N-1)."),
    task_file: list[Path] = TASK_FILES,
    model: str | None = MODEL,
    max_steps: int | None = MAX_STEPS,
    store: bool = STORE,
    workers: int = WORKERS,
    user: str | None = USER,
    user_model: str | None = USER_MODEL,
    json_out: bool = JSON,
) -> None:
    """Evaluate a policy: success, mean reward, pass@k and pass^k (k up to 8) per task and overall."""
    from cristal.environments.rollouts import summarize

    report = summarize(_rollouts(env, policy, episodes, task_file, model, max_steps, store, workers, user, user_model))
    if json_out:
        print_json(report)
        return
    ks = list(report["overall"].get("pass_hat_k", {}))
    rows = [[env_id, m["episodes"], m["success"], m["mean_reward"], *(m["pass_hat_k"][k] for k in ks), m["errors"]]
            for env_id, m in report["tasks"].items()]
    o = report["overall"]
    rows.append(["overall", o["episodes"], o.get("success"), o.get("mean_reward"), *(o["pass_hat_k"][k] for k in ks), ""])
    show_table(f"{policy}", [env_column(), "n", "success", "reward", *(f"pass^{k}" for k in ks), "errors"], rows)


@env_app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="The JSONL file to write (replaced whole)."),
    min_reward: float | None = typer.Option(None, "--min-reward", help="Only rollouts with at least this reward."),
    env: str | None = typer.Option(None, "--env", help="Only this environment id, task name or family."),
    policy: str | None = typer.Option(None, "--policy", help="Only rollouts of this policy (as stored)."),
    json_out: bool = JSON,
) -> None:
    """Write stored rollouts as OpenAI chat messages with tool calls plus the tools' schemas, one per line."""
    from cristal.environments.store import export

    with unit_of_work() as session:
        counts = export(session, out, min_reward=min_reward, env=env, policy=policy)
    if json_out:
        print_json({"out": str(out), **counts})
        return
    show("wrote {} of {} rollouts to {} ({} duplicates left out)", counts["written"], counts["read"], str(out),
         counts["duplicates"])
