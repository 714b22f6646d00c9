"""Scale-out on PostgreSQL with real ``cristal worker`` processes: workers share queued runs (each
completes exactly once), a worker whose heartbeat is stale and whose host is another machine has
its runs taken over, and per-organization step limits hold across workers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.durable.limits import set_limits
from cristal.workflows.deployments import start_deployed
from cristal.workflows.schema import WorkflowExecutor, WorkflowRun
from tests.workflows.conftest import write
from tests.workflows.test_kill import _rows, _wait_for

BACKENDS = ("postgres",)
pytestmark = pytest.mark.postgres


def _worker(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cristal", "worker", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(timeout=60) in (0, -signal.SIGKILL)


def _statuses(db: Database, ids: list[str]) -> dict[str, str]:
    with db.session() as s:
        return dict(s.execute(select(WorkflowRun.id, WorkflowRun.status).where(WorkflowRun.id.in_(ids))).all())


def _all_finished(db: Database, ids: list[str]) -> bool:
    st = _statuses(db, ids)
    return len(st) == len(ids) and all(v in ("succeeded", "failed", "rejected", "cancelled") for v in st.values())


def _deploy(wf_cli, path: Path, name: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = wf_cli("workflow", "deploy", str(path), "--org", "acme", "--as", "admin@acme.example", "--name", name, "--json")
    assert r.code == 0, r.stderr


def _executors_of(db: Database) -> set[str]:
    from cristal.durable.runtime import new_client as dbos_client

    client = dbos_client(db)
    try:
        return {w.executor_id for w in client.list_workflows(name="cristal_run", load_input=False, load_output=False)}
    finally:
        client.destroy()


def test_two_workers_share_queued_runs_and_each_completes_once(wf_cli, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    ledger = tmp_path / "ledger.db"
    flow = write(tmp_path / "share.yaml", f"""
name: share
inputs: {{n: 0}}
steps:
  - id: work
    python: {{call: "tests.workflows.fns:occupy", args: {{ledger: "{ledger}", hold: 0.2}}}}
  - id: done
    python: {{call: "tests.workflows.fns:effect", args: {{name: done, ledger: "{ledger}"}}}}
""")
    _deploy(wf_cli, flow, "share")
    db = Database(db_url)
    workers = [_worker(wf_cli.env, "--concurrency", "3") for _ in range(2)]
    try:
        ids = [start_deployed(db, "acme", "share", "fin@acme.example", {"n": i}).run_id for i in range(30)]
        _wait_for(lambda: _all_finished(db, ids), "every run to finish")
    finally:
        _stop(*workers)
    assert set(_statuses(db, ids).values()) == {"succeeded"}
    calls = [k for (k,) in _rows(ledger, "select key from calls")]
    assert sorted(calls) == sorted(f"{i}:{s}" for i in ids for s in ("work", "done"))  # each step once, no more
    # Both processes did part of the work (each may hold only 3 runs at once).
    assert len(_executors_of(db) - {None}) == 2
    db.dispose()


def test_a_stale_worker_on_another_host_is_taken_over(wf_cli, db_url: str, tmp_path: Path, counting_server) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    wf_cli.env["CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE"] = "true"  # the counting server is on loopback
    ledger, gate = tmp_path / "ledger.db", tmp_path / "gate"
    flow = write(tmp_path / "takeover.yaml", f"""
name: takeover
inputs: {{n: 0}}
steps:
  - id: first
    python: {{call: "tests.workflows.fns:effect", args: {{name: first, ledger: "{ledger}"}}}}
  - id: slow
    python: {{call: "tests.workflows.fns:effect_then_wait", args: {{name: slow, ledger: "{ledger}", gate: "{gate}"}}}}
  - id: notify
    http: {{url: "{counting_server.url}", method: POST, json: {{n: "{{{{ inputs.n }}}}"}}}}
""")
    _deploy(wf_cli, flow, "takeover")
    db = Database(db_url)
    doomed = _worker(wf_cli.env, "--concurrency", "8")
    ids = [start_deployed(db, "acme", "takeover", "fin@acme.example", {"n": i}).run_id for i in range(4)]
    _wait_for(lambda: len(_rows(ledger, "select * from calls where name = 'slow'")) == 4, "four runs inside the slow step")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    # Make the dead worker look like a machine that stopped answering: another host (so no pid
    # check can apply) whose heartbeat is old.
    with db.session() as s:
        rows = list(s.scalars(select(WorkflowExecutor).where(WorkflowExecutor.kind == "worker")))
        assert len(rows) == 1
        s.execute(update(WorkflowExecutor).values(host="other-host.example", last_seen=utcnow() - timedelta(minutes=5)))
    gate.write_text("open")
    survivor = _worker(wf_cli.env)
    try:
        _wait_for(lambda: _all_finished(db, ids), "the survivor to finish every run")
    finally:
        _stop(survivor)
    assert set(_statuses(db, ids).values()) == {"succeeded"}
    by_name: dict[str, list[str]] = {}
    for name, key in _rows(ledger, "select name, key from calls"):
        by_name.setdefault(name, []).append(key)
    assert len(by_name["first"]) == 4 and len(set(by_name["first"])) == 4  # checkpointed before the kill: not repeated
    assert len(by_name["slow"]) == 8 and len(set(by_name["slow"])) == 4  # interrupted: again, same key
    assert sorted(n for n, _ in _rows(ledger, "select name, key from effects")).count("slow") == 4
    assert len(counting_server.applied) == 4 and set(counting_server.requests.values()) == {1}
    with db.session() as s:
        assert [r.host for r in s.scalars(select(WorkflowExecutor))] == []  # the stale row was removed
    db.dispose()


def _peak(ledger: Path) -> int:
    return _rows(ledger, "select peak from gauge")[0][0]


def test_step_limits_hold_across_workers(wf_cli, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    def fan(ledger: Path, hold: float) -> Path:
        return write(tmp_path / f"{ledger.stem}.yaml", f"""
name: fan
steps:
  - id: items
    for_each: "{{{{ [0, 1, 2, 3, 4, 5] }}}}"
    concurrency: 6
    python: {{call: "tests.workflows.fns:occupy", args: {{ledger: "{ledger}", hold: {hold}}}}}
""")

    free, limited, rated = tmp_path / "free.db", tmp_path / "limited.db", tmp_path / "rated.db"
    _deploy(wf_cli, fan(free, 0.3), "free")
    _deploy(wf_cli, fan(limited, 0.3), "limited")
    _deploy(wf_cli, fan(rated, 0.0), "rated")
    db = Database(db_url)
    workers = [_worker(wf_cli.env) for _ in range(2)]
    try:
        # Without a limit, the items of two runs on two workers overlap freely.
        ids = [start_deployed(db, "acme", "free", "fin@acme.example", {}).run_id for _ in range(2)]
        _wait_for(lambda: _all_finished(db, ids), "the unlimited runs")
        assert _peak(free) > 2

        set_limits(db, "acme", "admin@acme.example", "python", max_concurrent=2)
        time.sleep(2.5)  # the workers' cache of "is there a limit" lives 2 s
        ids = [start_deployed(db, "acme", "limited", "fin@acme.example", {}).run_id for _ in range(4)]
        _wait_for(lambda: _all_finished(db, ids), "the limited runs")
        assert set(_statuses(db, ids).values()) == {"succeeded"}
        assert len(_rows(limited, "select key from calls")) == 24
        assert _peak(limited) == 2  # at most two at once, across both workers (and two did overlap)

        set_limits(db, "acme", "admin@acme.example", "python", rate="4/2s")
        set_limits(db, "acme", "admin@acme.example", "python", clear=True)
        set_limits(db, "acme", "admin@acme.example", "python", rate="4/2s")
        time.sleep(2.5)
        ids = [start_deployed(db, "acme", "rated", "fin@acme.example", {}).run_id for _ in range(2)]
        _wait_for(lambda: _all_finished(db, ids), "the rate-limited runs")
        assert set(_statuses(db, ids).values()) == {"succeeded"}
    finally:
        _stop(*workers)
    starts = sorted(at for (at,) in _rows(rated, "select at from starts"))
    assert len(starts) == 12
    # No more than 4 starts in any 2 s window (less a margin for the time between taking the
    # slot and the function noting its start).
    assert max(sum(1 for t in starts if s <= t < s + 1.7) for s in starts) <= 4
    db.dispose()
