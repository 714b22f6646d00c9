"""Workflow engine benchmarks: per-step checkpoint overhead, Cristal vs raw DBOS underneath.

    .venv/bin/python benchmarks/bench_workflows.py [--steps 200] [--runs 20] [--postgres]

Each measurement runs in a fresh subprocess (DBOS is one instance per process):

* ``raw-dbos-journal``: a DBOS workflow of N trivial steps, SQLite opened by DBOS itself
  (rollback journal);
* ``raw-dbos-wal``: the same with the WAL engine Cristal hands DBOS;
* ``cristal``: a Cristal workflow file of N python steps (authorization, audit record and
  step rows included), on SQLite (WAL) — and on PostgreSQL with ``--postgres``;
* ``cristal-runs``: workflows/s for small 3-step runs executed one after another.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

RAW = textwrap.dedent("""
    import sys, time
    from sqlalchemy import create_engine, event
    from dbos import DBOS
    mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = {"name": "bench", "system_database_url": url, "log_level": "CRITICAL"}
    if mode == "wal":
        from cristal.workflows.engine import _wal_pragmas
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _wal_pragmas)
        config["system_database_engine"] = engine
    def noop(i): return i
    @DBOS.workflow()
    def flow(n):
        for i in range(n):
            DBOS.run_step({"name": f"s{i}"}, noop, i)
    DBOS(config=config); DBOS.launch()
    flow(3)
    t = time.perf_counter(); flow(n); dt = time.perf_counter() - t
    print(dt / n * 1000)
    DBOS.destroy()
""")

CRISTAL = textwrap.dedent("""
    import sys, time, json
    from pathlib import Path
    from cristal.config import load_settings
    from cristal.db import Database
    from cristal.identity import orgs, users
    from cristal.identity.principal import Principal
    from cristal.workflows import service
    from cristal.workflows.engine import shutdown
    from cristal.workflows.spec import load_workflow
    url, folder, n, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    db = Database(url); db.upgrade()
    op = Principal.operator("bench")
    with db.session() as s:
        orgs.create_org(s, op, "bench", "Bench"); users.add_user(s, op, "bench", "b@bench.example")
    step = '  - id: s{i}\\n    python: {{call: "cristal.sample.checks:double", args: {{x: {i}}}}}\\n'
    big = folder / "big.yaml"; big.write_text("name: big\\nsteps:\\n" + "".join(step.format(i=i) for i in range(n)))
    small = folder / "small.yaml"; small.write_text("name: small\\nsteps:\\n" + "".join(step.format(i=i) for i in range(3)))
    settings = load_settings()
    def go(path):
        run = service.create_run(db, load_workflow(path), "bench", "b@bench.example", {})
        service.start(db, settings, run).get_result()
    go(small)
    t = time.perf_counter(); go(big); per_step = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    for _ in range(runs): go(small)
    rate = runs / (time.perf_counter() - t)
    shutdown()
    print(json.dumps({"per_step_ms": per_step, "runs_per_s": rate}))
""")


def _run(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return proc.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    opts = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["raw_dbos_sqlite_journal_ms_per_step"] = float(_run(RAW, "journal", f"sqlite:///{folder / 'j.db'}", str(opts.steps)))
        results["raw_dbos_sqlite_wal_ms_per_step"] = float(_run(RAW, "wal", f"sqlite:///{folder / 'w.db'}", str(opts.steps)))
        results["cristal_sqlite"] = json.loads(_run(CRISTAL, f"sqlite:///{folder / 'c.db'}", str(folder), str(opts.steps), str(opts.runs)))
        if opts.postgres:
            from cristal.testing.postgres import TemporaryPostgres

            with TemporaryPostgres() as pg:
                raw_url = pg.new_database()
                results["raw_dbos_postgres_ms_per_step"] = float(_run(RAW, "url", raw_url, str(opts.steps)))
                results["cristal_postgres"] = json.loads(_run(CRISTAL, pg.new_database(), str(folder), str(opts.steps), str(opts.runs)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
