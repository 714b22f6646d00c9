"""Spine benchmark: authorization decisions and audit writes per second.

Prints, for SQLite (WAL, on disk) and PostgreSQL (a throwaway server on
loopback, fsync off like any CI database — so it measures Cristal's overhead,
not the disk):

- pure policy decisions per second (``decide``, no I/O);
- audited decisions per second with one transaction per decision (an API
  request that reads one thing) and with 100 decisions per transaction
  (a search that checks a page of documents);
- refusals per second (each refusal is committed on its own connection);
- raw INSERT rate into the audit table with SQLAlchemy Core as the floor.

Run: ``.venv/bin/python benchmarks/bench_spine.py [--n 2000]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from cristal.db import Database
from cristal.db.schema import AuditRecord, utcnow
from cristal.identity import orgs, users
from cristal.identity.authorize import authorize, decide
from cristal.identity.directory import in_org, org_by_slug, resolve_principal
from cristal.identity.principal import Principal
from cristal.testing.postgres import TemporaryPostgres


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def setup(db: Database):  # type: ignore[no-untyped-def]
    db.upgrade()
    op = Principal.installation("bench")
    with db.session() as s:
        orgs.create_org(s, op, "acme")
        users.add_user(s, op, "acme", "fin@acme.example", groups=["finance"])
    with db.session() as s:
        p = resolve_principal(s, "acme", "fin@acme.example")
        org = org_by_slug(s, "acme")
        allowed = in_org(org, "document", "d1", acl=("group:finance",))
        denied = in_org(org, "document", "d2", acl=("group:hr",))
    return p, allowed, denied


def measure(db: Database, n: int) -> dict[str, str]:
    p, allowed, denied = setup(db)
    out: dict[str, str] = {}

    t = time.perf_counter()
    for _ in range(n * 50):
        decide(p, "document.read", allowed)
    out["decide() (no I/O)"] = rate(n * 50, time.perf_counter() - t)

    latencies = []
    t = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        with db.session() as s:
            authorize(s, p, "document.read", allowed)
        latencies.append(time.perf_counter() - t0)
    out["authorize(), 1 per transaction"] = rate(n, time.perf_counter() - t)
    q = statistics.quantiles(latencies, n=100)
    out["  latency p50 / p95"] = f"{q[49] * 1000:.2f} / {q[94] * 1000:.2f} ms"

    t = time.perf_counter()
    for _ in range(n // 100 or 1):
        with db.session() as s:
            for _ in range(100):
                authorize(s, p, "document.read", allowed)
    out["authorize(), 100 per transaction"] = rate((n // 100 or 1) * 100, time.perf_counter() - t)

    t = time.perf_counter()
    m = max(n // 4, 50)
    for _ in range(m):
        with db.session() as s:
            authorize(s, p, "document.read", denied)
    out["refusals (own connection each)"] = rate(m, time.perf_counter() - t)

    row = {"at": utcnow(), "org_id": 1, "org_slug": "acme", "actor": p.label, "action": "document.read",
           "resource": "document:d1", "decision": "allow", "reason": "raw", "request_id": None, "details": None}
    t = time.perf_counter()
    for _ in range(n):
        with db.engine.begin() as conn:
            conn.execute(insert(AuditRecord), [row])
    out["raw Core INSERT, 1 per transaction (floor)"] = rate(n, time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="decisions per measurement")
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        with console.status("SQLite..."):
            results["SQLite (WAL)"] = measure(db, args.n)
        db.dispose()
    with TemporaryPostgres() as pg:
        db = Database(pg.new_database())
        with console.status("PostgreSQL..."):
            results["PostgreSQL"] = measure(db, args.n)
        db.dispose()
    table = Table(title=f"Authorization and audit (n={args.n}, 1 process)")
    table.add_column("measure")
    for name in results:
        table.add_column(name, justify="right")
    for key in next(iter(results.values())):
        table.add_row(key, *(r[key] for r in results.values()))
    console.print(table)


if __name__ == "__main__":
    main()
