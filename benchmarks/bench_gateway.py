"""What the gateway adds to a model call: authorization, audit, budget check and metering.

Calls the same local ``ScriptedModel`` server with the ``openai`` client
directly and through ``Gateway`` (SQLite metering in a temporary folder), and
prints p50/p95 latency per call and the difference.

    .venv/bin/python benchmarks/bench_gateway.py [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openai

from cristal.config import Settings
from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.models import Gateway
from cristal.testing import ScriptedModel, text

MESSAGES = [{"role": "user", "content": "Summarise the travel expense policy in one sentence."}]
WARMUP = 20


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))]


def measure(fn: Callable[[], object], calls: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ScriptedModel(
        default=text("Economy class, receipts within 30 days."), dimension=256
    ) as server:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        operator = Principal.installation("bench")
        with db.session() as s:
            orgs.create_org(s, operator, "acme")
            orgs.configure_llm(s, operator, "acme", monthly_budget_usd=1000)  # exercise the budget query too
            users.add_user(s, operator, "acme", "alice@acme.example")
        with db.session() as s:
            alice = resolve_principal(s, "acme", "alice@acme.example")

        settings = Settings(
            llm_base_url=server.base_url, llm_api_key="bench", llm_model="gpt-4o-mini",
            llm_embedding_model="text-embedding-3-small", llm_max_retries=0,
        )
        direct = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        gateway = Gateway(settings, db)
        cases = {
            "chat": (
                lambda: direct.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
                lambda: gateway.chat(alice, MESSAGES),
            ),
            "embed": (
                lambda: direct.embeddings.create(model="text-embedding-3-small", input=["travel policy"], encoding_format="float"),
                lambda: gateway.embed(alice, ["travel policy"]),
            ),
        }
        rows = []
        for name, (plain, through) in cases.items():
            plain_ms = measure(plain, args.calls)
            gateway_ms = measure(through, args.calls)
            rows.append((name, plain_ms, gateway_ms))
        gateway.close()
        direct.close()
        db.dispose()

    print(f"{args.calls} calls each after {WARMUP} warm-up calls; SQLite metering; ScriptedModel on loopback")
    print(f"{'call':<6} {'openai p50':>11} {'p95':>7} {'gateway p50':>12} {'p95':>7} {'added p50':>10} {'p95':>7}  (ms)")
    for name, plain_ms, gateway_ms in rows:
        p50, p95 = percentile(plain_ms, 0.5), percentile(plain_ms, 0.95)
        g50, g95 = percentile(gateway_ms, 0.5), percentile(gateway_ms, 0.95)
        print(f"{name:<6} {p50:>11.2f} {p95:>7.2f} {g50:>12.2f} {g95:>7.2f} {g50 - p50:>10.2f} {g95 - p95:>7.2f}")
    print(f"(mean added: {', '.join(f'{n} {statistics.mean(g) - statistics.mean(p):.2f}' for n, p, g in rows)})")


if __name__ == "__main__":
    main()
