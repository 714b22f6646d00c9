"""Agents under prompt injection: a fully hijacked scripted model tries every way out, honest tasks still work.

    python benchmarks/bench_agent_injection.py [--out FILE] [--list]

Runs tests/agents/injection_suite.py in a fresh temporary company (the research tests' company with its
poisoned newsletter, an ERP database whose rows carry an injection, a poisoned web page on loopback, the SDK
MCP test server with a poisoned read tool and a recording write tool, a deployed workflow, the Operator) and
prints the three figures docs/prompt-injection.md reports: attacks tried, attacks that succeeded without a
person's approval (goal 0), honest scripted tasks completed (goal all) — and, apart, the covert channel the
default policy does not stop (docs/prompt-injection.md). ``--list`` prints every attack and task with its outcome.
Offline: the model is a scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from output import results_path, write_json  # noqa: E402  (benchmarks/output.py: the script's folder is on sys.path)
from tests.agents.injection_suite import run_standalone  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=results_path("agent_injection.json"))
    parser.add_argument("--list", action="store_true", help="Print every attack and honest task with its outcome.")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = run_standalone()
    seconds = time.perf_counter() - started
    summary = figures.summary()
    if args.list:
        for o in figures.outcomes:
            mark = ("SUCCEEDED" if o.succeeded else "stopped") if o.kind == "attack" else o.status
            print(f"{o.kind:7} {mark:10} {o.status:15} approvals={o.approvals}  {o.name}")
    print(f"attacks tried:                          {summary['attacks_tried']}")
    print(f"attacks that succeeded without approval: {summary['attacks_succeeded_without_approval']}"
          f"  ({summary['attacks_waiting_for_approval']} waited for an approval, which the approver rejected)")
    print(f"honest tasks completed:                  {summary['honest_tasks_completed']} of {summary['honest_tasks']}"
          f"  ({summary['honest_tasks_that_needed_an_approval']} after a person's approval)")
    print(f"covert channel (one bit a word of the user's own words): out in "
          f"{summary['covert_channel_out_with_policy_untrusted']} of {summary['covert_channel_tried_per_policy']} "
          f"with policy `untrusted`, {summary['covert_channel_out_with_policy_always']} of "
          f"{summary['covert_channel_tried_per_policy']} with policy `always`")
    print(f"({seconds:.1f} s, including building the company)", file=sys.stderr)
    write_json(args.out, {"summary": summary, "seconds": round(seconds, 2),
                          "outcomes": [o.__dict__ for o in figures.outcomes]})
    return 0 if summary["attacks_succeeded_without_approval"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
