"""kill -9 mid-run, on SQLite and PostgreSQL: every run completes after a worker restarts,
completed steps are not repeated, and each side effect is applied exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.workflows.conftest import write

BACKENDS = ("sqlite", "postgres")


def _popen(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cristal", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, what: str, limit: float = 120.0) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _rows(ledger: Path, sql: str) -> list[tuple]:
    if not ledger.exists():
        return []
    con = sqlite3.connect(ledger, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_sigkill_mid_run_then_worker_completes_every_run_exactly_once(wf_cli, tmp_path: Path, counting_server) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    wf_cli.env["CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE"] = "true"  # the counting server is on loopback
    ledger, gate = tmp_path / "ledger.db", tmp_path / "gate"
    flow = write(tmp_path / "flow.yaml", f"""
name: durable
inputs:
  tag: x
steps:
  - id: first
    python: {{call: "tests.workflows.fns:effect", args: {{name: first, ledger: "{ledger}"}}}}
  - id: notify
    http: {{url: "{counting_server.url}", method: POST, json: {{step: notify, tag: "{{{{ inputs.tag }}}}"}}}}
  - id: slow
    python: {{call: "tests.workflows.fns:effect_then_wait", args: {{name: slow, ledger: "{ledger}", gate: "{gate}"}}}}
  - id: fan
    for_each: "{{{{ [1, 2, 3] }}}}"
    concurrency: 3
    python: {{call: "tests.workflows.fns:effect", args: {{name: fan, ledger: "{ledger}"}}}}
  - id: last
    http: {{url: "{counting_server.url}", method: POST, json: {{step: last, n: "{{{{ steps.fan.output | length }}}}"}}}}
""")
    env = wf_cli.env
    worker = _popen(env, "worker")
    queued = []
    for n in range(3):
        r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--input", f"tag=q{n}", "--queue", "--json")
        assert r.code == 0, r.stderr
        queued.append(json.loads(r.stdout)["run_id"])
    foreground = _popen(env, "workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--json")
    _wait_for(lambda: len(_rows(ledger, "select * from calls where name = 'slow'")) == 4, "four runs inside the slow step")
    for proc in (worker, foreground):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Every run is stuck mid-step: its effect applied, its checkpoint never written.
    assert len(_rows(ledger, "select * from effects where name = 'slow'")) == 4
    gate.write_text("open")

    worker = _popen(env, "worker")
    try:
        runs: dict = {}

        def all_done() -> bool:
            r = wf_cli("workflow", "list", "--org", "acme", "--as", "fin@acme.example", "--json")
            runs.update({x["run_id"]: x["status"] for x in json.loads(r.stdout)["runs"]})
            return len(runs) == 4 and all(s in ("succeeded", "failed") for s in runs.values())

        _wait_for(all_done, "every run to finish after the restart")
        assert set(runs.values()) == {"succeeded"}, runs
        assert set(queued) <= set(runs)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0

    calls = _rows(ledger, "select name, key from calls")
    effects = _rows(ledger, "select name, key from effects")
    by_name: dict[str, list[str]] = {}
    for name, key in calls:
        by_name.setdefault(name, []).append(key)
    # Completed before the kill: never run again.
    assert len(by_name["first"]) == 4 and len(set(by_name["first"])) == 4
    # Interrupted mid-step: run again with the same idempotency key, the effect applied once.
    assert len(by_name["slow"]) == 8 and len(set(by_name["slow"])) == 4
    assert sorted(n for n, _ in effects).count("slow") == 4
    # Fan-out after the restart: 3 items per run, each once, keys run:step:index.
    assert len(by_name["fan"]) == 12 and len(set(by_name["fan"])) == 12
    assert all(k.rsplit(":", 1)[1] in ("0", "1", "2") for k in by_name["fan"])
    # HTTP: one request per key, for both http steps of the four runs.
    assert len(counting_server.applied) == 8
    assert set(counting_server.requests.values()) == {1}
    assert {k.split(":")[1] for k in counting_server.applied} == {"notify", "last"}
    for run_id in runs:
        status = json.loads(wf_cli("workflow", "status", run_id, "--as", "fin@acme.example", "--json").stdout)
        assert [s["status"] for s in status["steps"]] == ["succeeded"] * 5
        assert status["steps"][-1]["output"]["body"]["echo"] == {"step": "last", "n": 3}
