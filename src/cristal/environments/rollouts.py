"""Running rollouts and scoring them: success, mean reward, pass@k and pass^k per task and overall.

``run_rollouts`` plays one policy on each task for the seeds ``0 .. N-1``, each
rollout in its own environment (its own folder and ERP copy), and never drops
one: a policy or checker that fails is a rollout with reward 0 and its
``error``. ``summarize`` computes, per task over its ``n`` rollouts of which
``c`` succeeded (reward 1), the unbiased estimators

* pass@k = 1 - C(n-c, k) / C(n, k): at least one of k rollouts succeeds;
* pass^k = C(c, k) / C(n, k): all k rollouts succeed (τ-bench's reliability measure);

for k = 1 .. min(8, n); "overall" is the mean over tasks. Each seed is its own
randomised instance of the task, so pass^k measures reliability across instances.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any

from cristal.environments.policies import Policy, PolicySpec
from cristal.environments.task import TaskDefinition
from cristal.environments.tools import ToolsEnv
from cristal.environments.users import UserSpec
from cristal.errors import CristalError

MAX_K = 8


@dataclass
class Rollout:
    env_id: str
    task: str
    family: str
    seed: int
    policy: str
    reward: float
    steps: int
    seconds: float
    terminated: bool
    model: str | None = None
    tokens: int = 0  # the policy model's tokens (prompt and completion), as its endpoint reported them
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.reward >= 1.0

    def as_json(self, *, messages: bool = True) -> dict[str, Any]:
        out = {**asdict(self), "success": self.success}
        if not messages:
            out.pop("messages")
            out.pop("tools")
        return out


def rollout(task: TaskDefinition, seed: int, policy: Policy, *, max_steps: int | None = None,
            env: ToolsEnv | None = None) -> Rollout:
    """One episode of ``policy`` on ``task``'s instance for ``seed`` (in ``env`` when given: a new episode of it,
    on fresh state; otherwise in an environment of its own, closed afterwards)."""
    started = time.monotonic()
    own = env is None
    env = env or ToolsEnv(task, max_steps=max_steps)
    result = Rollout(task.env_id, task.name, task.family, seed, policy.name, 0.0, 0, 0.0, False,
                     model=getattr(policy, "model", None))
    try:
        observation, info = env.reset(seed=seed)
        result.tools = info["tools"]
        policy.start(env, observation, info)
        while True:
            observation, reward, terminated, truncated, info = env.step(policy.act(observation))
            result.steps = info["steps"]
            if terminated or truncated:
                result.reward, result.terminated, result.details = reward, terminated, info["reward_details"]
                break
    except CristalError as exc:
        result.error = exc.message
    except Exception as exc:  # noqa: BLE001 - a rollout that crashes is reported, never dropped
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.messages = list(env.messages)
        result.tokens = int(getattr(policy, "tokens", 0))
        if own:
            env.close()
        result.seconds = round(time.monotonic() - started, 4)
    return result


def _task_rollouts(task: TaskDefinition, seeds: list[int], policy: Callable[[], Policy],
                   max_steps: int | None, user: UserSpec) -> list[Rollout]:
    env = ToolsEnv(task, max_steps=max_steps, user=user.make())
    try:
        return [rollout(task, seed, policy(), env=env) for seed in seeds]
    finally:
        env.close()


def _job(task: TaskDefinition, seeds: list[int], policy: PolicySpec, max_steps: int | None,
         user: UserSpec) -> list[Rollout]:
    """A worker process's share: some seeds of one task."""
    return _task_rollouts(task, seeds, policy.factory(), max_steps, user)


def run_rollouts(tasks: list[TaskDefinition], policy: Callable[[], Policy] | PolicySpec, seeds: int, *,
                 max_steps: int | None = None, workers: int = 1, user: UserSpec | None = None) -> list[Rollout]:
    """``seeds`` rollouts of a fresh policy per task (seeds ``0 .. seeds-1``), in task and seed order.

    Each task's environment is reset per rollout, which gives every rollout fresh state of its own. With
    ``workers`` above 1 (``policy`` then a ``PolicySpec``, which can be sent to a process) the seeds of each task are
    shared among that many processes; a process that dies is reported as an error on each of its rollouts.
    ``user`` chooses the simulated employee (default: the scripted one).
    """
    user = user or UserSpec()
    if workers <= 1:
        factory = policy.factory() if isinstance(policy, PolicySpec) else policy
        return [r for task in tasks for r in _task_rollouts(task, list(range(seeds)), factory, max_steps, user)]
    if not isinstance(policy, PolicySpec):
        raise TypeError("rollouts in worker processes need a PolicySpec")
    chunks = [(task, list(range(seeds))[i::workers]) for task in tasks for i in range(min(workers, seeds))]
    done: list[Rollout] = []
    # spawn, not fork: the parent may hold threads (an HTTP server, a database pool) that a forked child would copy
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_job, task, chunk, policy, max_steps, user) for task, chunk in chunks]
        for (task, chunk), future in zip(chunks, futures, strict=True):
            try:
                done += future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died: its rollouts are reported, not dropped
                done += [Rollout(task.env_id, task.name, task.family, seed, policy.spec, 0.0, 0, 0.0, False,
                                 error=f"worker failed: {type(exc).__name__}: {exc}") for seed in chunk]
    return sorted(done, key=lambda r: ([t.env_id for t in tasks].index(r.env_id), r.seed))


def pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    return comb(c, k) / comb(n, k)


def _metrics(rows: list[Rollout]) -> dict[str, Any]:
    n, c = len(rows), sum(r.success for r in rows)
    ks = range(1, min(MAX_K, n) + 1)
    return {
        "episodes": n, "successes": c, "success": round(c / n, 4) if n else 0.0,
        "mean_reward": round(sum(r.reward for r in rows) / n, 4) if n else 0.0,
        "errors": sum(r.error is not None for r in rows),
        "mean_steps": round(sum(r.steps for r in rows) / n, 2) if n else 0.0,
        "seconds": round(sum(r.seconds for r in rows), 3),
        "tokens": sum(r.tokens for r in rows),
        "pass_at_k": {str(k): round(pass_at_k(n, c, k), 4) for k in ks},
        "pass_hat_k": {str(k): round(pass_hat_k(n, c, k), 4) for k in ks},
    }


def summarize(rollouts: list[Rollout]) -> dict[str, Any]:
    """Per-task metrics and their mean over tasks (see the module docstring)."""
    by_task: dict[str, list[Rollout]] = {}
    for r in rollouts:
        by_task.setdefault(r.env_id, []).append(r)
    per_task = {env_id: _metrics(rows) for env_id, rows in by_task.items()}
    overall: dict[str, Any] = {"tasks": len(per_task), "episodes": len(rollouts),
                               "tokens": sum(r.tokens for r in rollouts), "seconds": round(sum(r.seconds for r in rollouts), 3)}
    if per_task:
        tables = list(per_task.values())
        for key in ("success", "mean_reward"):
            overall[key] = round(sum(t[key] for t in tables) / len(tables), 4)
        for key in ("pass_at_k", "pass_hat_k"):
            ks = set.intersection(*(set(t[key]) for t in tables))
            overall[key] = {k: round(sum(t[key][k] for t in tables) / len(tables), 4) for k in sorted(ks, key=int)}
    return {"policy": rollouts[0].policy if rollouts else None, "tasks": per_task, "overall": overall}
