"""The research tests' small company (a poisoned newsletter, a finance-only document), copied for every test,
and an HTTP endpoint on loopback that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# The research tests' company, built once per session and copied for every test: the same fixtures serve here.
from tests.research.conftest import company_template, rdb, who

__all__ = ["company_template", "rdb", "who"]


class Hook:
    """What the endpoint received: (method, path, body as JSON or text)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[tuple[str, str, Any]] = []


@pytest.fixture
def hook() -> Iterator[Hook]:
    received: list[tuple[str, str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # `format`: the base class's name
            pass

        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
            try:
                body: Any = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw
            received.append((self.command, self.path, body))
            out = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    h = Hook(f"http://127.0.0.1:{server.server_address[1]}/hook")
    h.received = received
    try:
        yield h
    finally:
        server.shutdown()
        server.server_close()
