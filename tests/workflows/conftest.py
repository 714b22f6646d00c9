"""Workflow test helpers: a workspace with two organizations, a counting HTTP server, a ledger."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke_in_process

REPO = Path(__file__).resolve().parents[2]
# The modules these tests' python steps call: installations allow none by default.
PYTHON_MODULES = "tests.workflows,cristal.sample.checks"


@pytest.fixture(autouse=True)
def python_modules(isolated_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_WORKFLOW_PYTHON_MODULES", PYTHON_MODULES)


def queued_in_dbos(db: Any, run_id: str) -> bool:
    """Whether DBOS knows the run (queued or further): a run only in Cristal's table is not."""
    from cristal.durable.runtime import new_client as dbos_client

    client = dbos_client(db)
    try:
        return any(w.workflow_id == run_id for w in client.list_workflows(workflow_ids=[run_id], load_input=False))
    finally:
        client.destroy()


class CountingServer:
    """Loopback HTTP server: counts requests per Idempotency-Key and applies each key's effect once."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.applied: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # the base class's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                key = self.headers.get("Idempotency-Key") or ""
                with outer.lock:
                    outer.requests[key] += 1
                    if key not in outer.applied:
                        outer.applied.append(key)
                data = json.dumps({"ok": True, "key": key, "echo": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counting_server():  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    with CountingServer() as server:
        yield server


@pytest.fixture
def wf_cli(cli, db, cli_in_process):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """The ``cli`` fixture with test functions allowed, a fast approval poll, and two organizations.

    The workspace is set up with the same commands run in this process (on the migrated ``db``),
    which proves what nine new interpreters would; the tests then drive real processes.
    """
    # PYTHONPATH: this tree's code (not the installed one) and the repository for ``tests.workflows``.
    extra = {"CRISTAL_WORKFLOW_PYTHON_MODULES": PYTHON_MODULES,
             "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO))),
             "CRISTAL_WORKFLOW_APPROVAL_POLL_SECONDS": "2"}
    cli.env.update(extra)

    def run(*args: str, **kwargs: Any):  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
        return cli(*args, **kwargs)

    run.env = cli.env  # type: ignore[attr-defined]  # an attribute hung on the fixture's function
    assert cli_in_process("init").code == 0
    for slug in ("acme", "globex"):
        assert cli_in_process("org", "create", slug).code == 0
        for email, options in ((f"admin@{slug}.example", ("--role", "admin", "--group", "management")),
                               (f"fin@{slug}.example", ("--group", "finance")),
                               (f"eng@{slug}.example", ("--group", "engineering"))):
            added = cli_in_process("user", "add", email, "--org", slug, *options)
            assert added.code == 0, added.stderr
    return run


def wait_status(cli, run_id: str, email: str, want: set[str], limit: float = 90) -> dict[str, Any]:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """Poll ``workflow status`` in this process (``wf_cli`` pointed it at the workspace) until the
    run reaches ``want``, then return what a real ``cristal workflow status --json`` process prints:
    a process per poll would prove nothing more and cost a second each."""
    deadline = time.monotonic() + limit
    while True:
        polled = invoke_in_process("workflow", "status", run_id, "--as", email, "--json")
        assert polled.code == 0, polled.stderr
        status = json.loads(polled.stdout)["status"]
        if status in want:
            final = cli("workflow", "status", run_id, "--as", email, "--json")
            assert final.code == 0, final.stderr
            doc: dict[str, Any] = json.loads(final.stdout)
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {status}")
        time.sleep(0.2)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
