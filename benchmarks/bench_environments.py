"""Training environments benchmark: reset time and environment steps per second of the tools family.

Prints, for the built-in tools tasks played by ``scripted:solve``:

- reset time (a fresh per-rollout ERP copy, the instance for the seed, the goal state replayed), p50 and p95;
- environment steps per second in one process (the time of ``step`` alone, without a policy model);
- rollouts and steps per second end to end, in one process and in N worker processes (``--workers``);

beside BrowserGym's published MiniWoB step time (0.87 s per step), which cannot run here (no MiniWoB assets offline).
Writes ``benchmarks/results/environments.json``.

Run: ``.venv/bin/python benchmarks/bench_environments.py [--seeds 20] [--workers 2]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from output import results_path, write_json
from rich.console import Console
from rich.table import Table

from cristal.environments.catalog import builtin_tasks
from cristal.environments.policies import PolicySpec, Scripted
from cristal.environments.rollouts import run_rollouts
from cristal.environments.tools import ToolsEnv

BROWSERGYM_MINIWOB_STEP_SECONDS = 0.87  # published (BrowserGym paper), not measured here


def in_process(seeds: int) -> dict[str, float]:
    resets: list[float] = []
    step_time, steps = 0.0, 0
    for task in builtin_tasks():
        env = ToolsEnv(task)
        env.reset(seed=0)  # the ERP template is built once per environment; it is not what a reset costs
        try:
            for seed in range(seeds):
                t = time.perf_counter()
                observation, info = env.reset(seed=seed)
                resets.append(time.perf_counter() - t)
                policy = Scripted("solve")
                policy.start(env, observation, info)
                while True:
                    action = policy.act(observation)
                    t = time.perf_counter()
                    observation, _reward, terminated, truncated, _info = env.step(action)
                    step_time += time.perf_counter() - t
                    steps += 1
                    if terminated or truncated:
                        break
        finally:
            env.close()
    resets.sort()
    return {"reset_p50_s": statistics.median(resets), "reset_p95_s": resets[int(0.95 * (len(resets) - 1))],
            "steps": steps, "step_s": step_time / steps, "steps_per_s": steps / step_time}


def end_to_end(seeds: int, workers: int) -> dict[str, float]:
    tasks = builtin_tasks()
    t = time.perf_counter()
    done = run_rollouts(tasks, PolicySpec("scripted:solve"), seeds, workers=workers)
    seconds = time.perf_counter() - t
    assert all(r.reward == 1.0 for r in done), [r.error or r.details for r in done if r.reward != 1.0]
    steps = sum(r.steps for r in done)
    return {"workers": workers, "rollouts": len(done), "seconds": seconds, "rollouts_per_s": len(done) / seconds,
            "steps_per_s": steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per task")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the parallel run")
    args = parser.parse_args()
    figures = {"in_process": in_process(args.seeds),
               "end_to_end": [end_to_end(args.seeds, 1), end_to_end(args.seeds, args.workers)],
               "browsergym_miniwob_step_s_published": BROWSERGYM_MINIWOB_STEP_SECONDS}
    one = figures["in_process"]
    table = Table("measure", "Cristal tools family", "BrowserGym MiniWoB (published)")
    table.add_row("reset p50 / p95", f"{one['reset_p50_s'] * 1000:.1f} / {one['reset_p95_s'] * 1000:.1f} ms", "")
    table.add_row("env step", f"{one['step_s'] * 1000:.2f} ms ({one['steps_per_s']:,.0f}/s)",
                  f"{BROWSERGYM_MINIWOB_STEP_SECONDS * 1000:.0f} ms")
    for run in figures["end_to_end"]:
        table.add_row(f"end to end, {run['workers']} process(es)",
                      f"{run['rollouts_per_s']:.1f} rollouts/s, {run['steps_per_s']:.1f} steps/s", "")
    Console().print(table)
    write_json(results_path("environments.json"), figures)


if __name__ == "__main__":
    main()
