"""Workflow test helpers: a workspace with two organizations, a counting HTTP server, a ledger."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

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

            def do_POST(self) -> None:  # noqa: N802 - the base class's naming
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
def counting_server():  # type: ignore[no-untyped-def]
    with CountingServer() as server:
        yield server


@pytest.fixture
def wf_cli(cli, tmp_path):  # type: ignore[no-untyped-def]
    """The ``cli`` fixture with test functions allowed, a fast approval poll, and two organizations."""
    # PYTHONPATH: this tree's code (not the installed one) and the repository for ``tests.workflows``.
    extra = {"CRISTAL_WORKFLOW_PYTHON_MODULES": PYTHON_MODULES,
             "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO))),
             "CRISTAL_WORKFLOW_APPROVAL_POLL_SECONDS": "2"}
    cli.env.update(extra)

    def run(*args: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return cli(*args, **kwargs)

    run.env = cli.env  # type: ignore[attr-defined]
    assert run("init").code == 0
    for slug in ("acme", "globex"):
        assert run("org", "create", slug).code == 0
        assert run("user", "add", f"admin@{slug}.example", "--org", slug, "--role", "admin", "--group", "management").code == 0
        assert run("user", "add", f"fin@{slug}.example", "--org", slug, "--group", "finance").code == 0
        assert run("user", "add", f"eng@{slug}.example", "--org", slug, "--group", "engineering").code == 0
    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
