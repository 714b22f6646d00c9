"""Workflow engine benchmarks: per-step checkpoint overhead, Cristal vs raw DBOS underneath.

    .venv/bin/python benchmarks/bench_workflows.py [--steps 200] [--runs 20] [--postgres] [--baseline COMMIT] [--repeat 5]

Each measurement runs in a fresh subprocess (DBOS is one instance per process):

* ``raw-dbos-journal``: a DBOS workflow of N trivial steps, SQLite opened by DBOS itself
  (rollback journal);
* ``raw-dbos-wal``: the same with the WAL engine Cristal hands DBOS;
* ``cristal``: a Cristal workflow file of N python steps (authorization, audit record and
  step rows included), on SQLite (WAL) — and on PostgreSQL with ``--postgres``;
* ``per_step_before_after_sqlite``: the ``cristal`` figure for this tree and for ``--baseline``
  (checked out beside it), taking turns ``--repeat`` times, medians side by side;
* ``cristal-runs``: workflows/s for small 3-step runs executed one after another;
* ``approval_wakeup``: an approver decides → the run's next step starts (p50/p95), with one
  ``cristal worker`` running, on SQLite and (with ``--postgres``) PostgreSQL;
* ``throughput_postgres``: 1, 2 and 4 ``cristal worker`` processes draining a queue of
  deployed 3-step runs (started with ``start_deployed``, the HTTP path), next to raw DBOS
  processes draining a queue of 3-step workflows; runs/s and steps/s over the span from the
  first dequeue to the last completion (DBOS's own timestamps), so start-up is not counted.

Figures are written to ``benchmarks/results/workflows.json`` as well as printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from baseline import ROOT, checked_out  # benchmarks/baseline.py: run as a script, this folder is on sys.path
from output import read_json, results_path, write_json

# The last commit before the durable runtime and the action registry (issue 17): the "before" of --baseline.
BASELINE = "1950f84"

RAW = textwrap.dedent("""
    import sys, time
    from sqlalchemy import create_engine, event
    from dbos import DBOS
    mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = {"name": "bench", "system_database_url": url, "log_level": "CRITICAL"}
    if mode == "wal":
        from cristal.durable.runtime import wal_pragmas as _wal_pragmas
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
    from cristal.workflows.spec import load_workflow
    try:
        from cristal.durable.runtime import shutdown
    except ImportError:  # a baseline commit from before the durable runtime (--baseline)
        from cristal.workflows.engine import shutdown
    url, folder, n, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    db = Database(url); db.upgrade()
    op = Principal.installation("bench") if hasattr(Principal, "installation") else Principal.operator("bench")
    with db.session() as s:
        orgs.create_org(s, op, "bench", "Bench"); users.add_user(s, op, "bench", "b@bench.example")
    step = '  - id: s{i}\\n    python: {{call: "cristal.sample.checks:double", args: {{x: {i}}}}}\\n'
    big = folder / "big.yaml"; big.write_text("name: big\\nsteps:\\n" + "".join(step.format(i=i) for i in range(n)))
    small = folder / "small.yaml"; small.write_text("name: small\\nsteps:\\n" + "".join(step.format(i=i) for i in range(3)))
    settings = load_settings(workflow_python_modules=("cristal.sample.checks",))
    def go(path):
        run = service.create_run(db, load_workflow(path, settings=settings), "bench", "b@bench.example", {})
        service.start(db, settings, run).get_result()
    go(small)
    t = time.perf_counter(); go(big); per_step = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    for _ in range(runs): go(small)
    rate = runs / (time.perf_counter() - t)
    shutdown()
    print(json.dumps({"per_step_ms": per_step, "runs_per_s": rate}))
""")


def _run(code: str, *args: str, src: Path | None = None) -> str:
    """The last line ``code`` prints, run in a fresh interpreter (on the code in ``src`` when given)."""
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return proc.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------------------
# Approval wake-up latency and multi-worker throughput (real ``cristal worker`` processes)

STAMP = textwrap.dedent("""
    import sqlite3, time
    def stamp(ledger, idempotency_key):
        at = time.time()
        con = sqlite3.connect(ledger, timeout=60, isolation_level=None)
        con.execute("create table if not exists s (key text, at real)")
        con.execute("insert into s values (?, ?)", (idempotency_key, at))
        con.close()
        return at
""")

RAW_WORKER = textwrap.dedent("""
    import signal, sys, threading
    from dbos import DBOS
    url = sys.argv[1]
    def noop(i): return i
    @DBOS.workflow(name="raw3")
    def raw3(n):
        for i in range(3):
            DBOS.run_step({"name": f"s{i}"}, noop, i)
    DBOS(config={"name": "rawbench", "system_database_url": url, "log_level": "CRITICAL", "dbos_system_schema": "dbos",
                 "executor_id": f"raw-{__import__('os').getpid()}"})
    DBOS.listen_queues(["rawq"])
    DBOS.launch()
    DBOS.register_queue("rawq", worker_concurrency=int(sys.argv[2]), polling_interval_sec=float(sys.argv[3]),
                        on_conflict="always_update")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=0)
""")


def _env(url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRISTAL_", "OPENAI_"))}
    env.update(CRISTAL_DATABASE_URL=url, CRISTAL_HOME=str(folder / "home"), CRISTAL_WORKFLOW_PYTHON_MODULES="benchfns",
               PYTHONPATH=os.pathsep.join([str(folder), str(Path(__file__).resolve().parents[1] / "src")]))
    return env


def _setup(url: str, folder: Path):  # type: ignore[no-untyped-def]
    """A database with one organization, a requester and an approver, and the bench's python module."""
    from cristal.db import Database
    from cristal.identity import orgs, users
    from cristal.identity.principal import Principal

    (folder / "benchfns.py").write_text(STAMP)
    os.environ.update({k: v for k, v in _env(url, folder).items() if k.startswith("CRISTAL_WORKFLOW")})
    sys.path.insert(0, str(folder))
    db = Database(url)
    db.upgrade()
    op = Principal.installation("bench")
    with db.session() as s:
        orgs.create_org(s, op, "bench", "Bench")
        users.add_user(s, op, "bench", "b@bench.example")
        users.add_user(s, op, "bench", "boss@bench.example", groups=["finance"])
    return db


CONCURRENCY = 16
POLL = "0.2"


def _workers(n: int, env: dict[str, str], code: str | None = None, *args: str, concurrency: int | None = None) -> list[subprocess.Popen]:
    env = {**env, "CRISTAL_WORKER_POLL_SECONDS": POLL}
    cmd = ([sys.executable, "-c", code, *args] if code else
           [sys.executable, "-m", "cristal", "worker", "--concurrency", str(concurrency or CONCURRENCY)])
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(n)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def _until(predicate, limit: float = 900.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark gave up waiting")
        time.sleep(0.05)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_approvals(url: str, folder: Path, n: int) -> dict[str, float]:
    """Decide each waiting approval in turn; latency = the next step's start − the moment ``decide`` returned."""
    import sqlite3

    from sqlalchemy import func, select

    from cristal.durable import approvals
    from cristal.workflows.deployments import deploy, start_deployed
    from cristal.workflows.schema import WorkflowApproval
    from cristal.workflows.spec import load_workflow_text

    db = _setup(url, folder)
    ledger = folder / f"stamps-{abs(hash(url))}.db"
    text = (f"name: sign\nsteps:\n  - id: ok\n    approval: {{approvers: [\"group:finance\"]}}\n"
            f"  - id: after\n    python: {{call: \"benchfns:stamp\", args: {{ledger: \"{ledger}\"}}}}\n")
    deploy(db, load_workflow_text(text, origin="sign.yaml"), "bench", "b@bench.example")
    # A run waiting for an approval holds one unit of its worker's concurrency: room for all of them.
    workers = _workers(1, _env(url, folder), concurrency=n + 4)
    try:
        ids = [start_deployed(db, "bench", "sign", "b@bench.example", {}).run_id for _ in range(n)]

        def pending() -> int:
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(WorkflowApproval).where(WorkflowApproval.status == "pending"))

        _until(lambda: pending() == n)
        time.sleep(1.0)  # let every run reach its DBOS.recv
        latencies = []
        with db.session() as s:
            rows = [(a.id, a.run_id) for a in s.scalars(select(WorkflowApproval))]
        for approval_id, run_id in rows:
            approvals.decide(db, approval_id, "boss@bench.example", "approve")
            decided = time.time()

            def stamped() -> list[tuple]:
                if not ledger.exists():
                    return []
                con = sqlite3.connect(ledger, timeout=30)
                try:
                    return con.execute("select at from s where key like ?", (run_id + ":%",)).fetchall()
                except sqlite3.OperationalError:
                    return []
                finally:
                    con.close()

            _until(lambda: bool(stamped()), 120)
            latencies.append((stamped()[0][0] - decided) * 1000)
    finally:
        _stop(workers)
        db.dispose()
    assert len(ids) == len(latencies)
    return {"runs": n, "p50_ms": round(_pct(latencies, 0.5), 1), "p95_ms": round(_pct(latencies, 0.95), 1),
            "max_ms": round(max(latencies), 1)}


def _span(url: str, name: str) -> tuple[int, float]:
    """(completed workflows, seconds from the first dequeue to the last completion) by DBOS's own clock."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=url, application_name="cristal" if name == "cristal_run" else "rawbench")
    try:
        done = [w for w in client.list_workflows(name=name, status="SUCCESS", load_input=False, load_output=False)]
    finally:
        client.destroy()
    if not done:
        return 0, 0.0
    start = min(w.dequeued_at or w.created_at for w in done)  # type: ignore[type-var]
    end = max(w.completed_at or w.updated_at for w in done)  # type: ignore[type-var]
    return len(done), (end - start) / 1000


def bench_throughput(pg, folder: Path, runs: int, counts: list[int]) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    from dbos import DBOSClient

    from cristal.workflows.deployments import deploy, start_deployed
    from cristal.workflows.spec import load_workflow_text

    step = '  - id: s{i}\n    python: {{call: "cristal.sample.checks:double", args: {{x: {i}}}}}\n'
    text = "name: three\nsteps:\n" + "".join(step.format(i=i) for i in range(3))
    out: dict[str, dict] = {}
    for n in counts:
        url = pg.new_database()
        db = _setup(url, folder)
        deploy(db, load_workflow_text(text, origin="three.yaml"), "bench", "b@bench.example")
        t = time.perf_counter()
        for _ in range(runs):
            start_deployed(db, "bench", "three", "b@bench.example", {})
        enqueue_rate = runs / (time.perf_counter() - t)
        workers = _workers(n, _env(url, folder))
        try:
            _until(lambda: _span(url, "cristal_run")[0] >= runs)
        finally:
            _stop(workers)
        done, seconds = _span(url, "cristal_run")
        db.dispose()
        # Raw DBOS: the same shape (3 trivial steps) on its own queue, n processes.
        raw_url = pg.new_database()
        from dbos import DBOS

        DBOS.migrate(raw_url, schema="dbos")
        client = DBOSClient(system_database_url=raw_url, application_name="rawbench")
        try:
            for i in range(runs):
                client.enqueue({"queue_name": "rawq", "workflow_name": "raw3"}, i)
        finally:
            client.destroy()
        raw = _workers(n, _env(raw_url, folder), RAW_WORKER, raw_url, str(CONCURRENCY), POLL)
        try:
            _until(lambda: _span(raw_url, "raw3")[0] >= runs)
        finally:
            _stop(raw)
        raw_done, raw_seconds = _span(raw_url, "raw3")
        out[f"{n}_workers"] = {
            "worker_concurrency": CONCURRENCY, "queue_poll_s": float(POLL), "runs": done, "seconds": round(seconds, 2), "runs_per_s": round(done / seconds, 1),
            "steps_per_s": round(3 * done / seconds, 1), "start_deployed_per_s": round(enqueue_rate, 1),
            "raw_dbos_runs_per_s": round(raw_done / raw_seconds, 1), "raw_dbos_steps_per_s": round(3 * raw_done / raw_seconds, 1),
        }
        print(f"{n} worker(s): {out[f'{n}_workers']}", file=sys.stderr, flush=True)
    return out


def bench_before_after(folder: Path, commit: str, steps: int, runs: int, repeat: int) -> dict[str, object] | None:
    """Per-step overhead (SQLite) of this tree and of ``commit``, taking turns ``repeat`` times; medians."""
    with checked_out(commit, folder / "baseline-src") as checkout:
        if checkout is None:
            return None
        trees = {"this tree": ROOT / "src", f"baseline {commit[:7]}": checkout / "src"}
        per_step: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(repeat):
            for name, src in trees.items():
                work = folder / f"ba-{len(per_step[name])}-{name.split()[0]}"
                work.mkdir()
                doc = json.loads(_run(CRISTAL, f"sqlite:///{work / 'c.db'}", str(work), str(steps), str(runs), src=src))
                per_step[name].append(doc["per_step_ms"])
            print(f"before/after {i + 1}/{repeat}: " + ", ".join(f"{n} {v[-1]:.2f} ms" for n, v in per_step.items()),
                  file=sys.stderr)
    return {name: {"median_ms_per_step": round(statistics.median(v), 2), "runs_ms_per_step": [round(x, 2) for x in v]}
            for name, v in per_step.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--approvals", type=int, default=20, help="approval wake-ups to time (0 skips)")
    parser.add_argument("--throughput-runs", type=int, default=300, help="runs per worker count (PostgreSQL)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts for the throughput figure")
    parser.add_argument("--only", choices=("engine", "approvals", "throughput"), help="one section only")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="runs per worker at once")
    parser.add_argument("--poll", default=POLL, help="queue poll interval of workers (s)")
    parser.add_argument("--baseline", default=BASELINE, help="commit for the before/after per-step figure")
    parser.add_argument("--repeat", type=int, default=5, help="before/after measurements per tree (0 skips)")
    opts = parser.parse_args()
    globals().update(CONCURRENCY=opts.concurrency, POLL=opts.poll)
    results: dict[str, object] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if opts.only in (None, "engine"):
            results["raw_dbos_sqlite_journal_ms_per_step"] = float(_run(RAW, "journal", f"sqlite:///{folder / 'j.db'}", str(opts.steps)))
            results["raw_dbos_sqlite_wal_ms_per_step"] = float(_run(RAW, "wal", f"sqlite:///{folder / 'w.db'}", str(opts.steps)))
            results["cristal_sqlite"] = json.loads(_run(CRISTAL, f"sqlite:///{folder / 'c.db'}", str(folder), str(opts.steps), str(opts.runs)))
        if opts.repeat and opts.only in (None, "engine"):
            compared = bench_before_after(folder, opts.baseline, opts.steps, opts.runs, opts.repeat)
            if compared is not None:
                results["per_step_before_after_sqlite"] = compared
        if opts.approvals and opts.only in (None, "approvals"):
            results["approval_wakeup_sqlite"] = bench_approvals(f"sqlite:///{folder / 'a.db'}", folder, opts.approvals)
        if opts.postgres:
            from cristal.testing.postgres import TemporaryPostgres

            with TemporaryPostgres() as pg:
                if opts.only in (None, "engine"):
                    raw_url = pg.new_database()
                    results["raw_dbos_postgres_ms_per_step"] = float(_run(RAW, "url", raw_url, str(opts.steps)))
                    results["cristal_postgres"] = json.loads(_run(CRISTAL, pg.new_database(), str(folder), str(opts.steps), str(opts.runs)))
                if opts.approvals and opts.only in (None, "approvals"):
                    results["approval_wakeup_postgres"] = bench_approvals(pg.new_database(), folder, opts.approvals)
                if opts.only in (None, "throughput"):
                    counts = [int(c) for c in opts.workers.split(",") if c.strip()]
                    results["throughput_postgres"] = bench_throughput(pg, folder, opts.throughput_runs, counts)
    print(json.dumps(results, indent=2))
    compared = results.get("per_step_before_after_sqlite")
    if isinstance(compared, dict):
        print("per-step overhead, SQLite, median of --repeat fresh processes each:")
        for name, figures in compared.items():
            print(f"  {name:<22} {figures['median_ms_per_step']:>7.2f} ms/step")
    target = results_path("workflows.json")
    write_json(target, {**read_json(target), **results})


if __name__ == "__main__":
    main()
