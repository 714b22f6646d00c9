"""A small intranet site on 127.0.0.1 for the web and API connector tests: pages the test changes as it goes.

Each page has a body, a content type and extra headers; the server answers
``If-None-Match`` with ``304`` for an unchanged ETag, counts full answers per
path, and can redirect, require an ``Authorization`` header, or stream without end.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    endless: bool = False  # stream 64 KB pieces until the client hangs up, no Content-Length
    declared_length: int | None = None  # announce this Content-Length (and send that many bytes, if the client reads)


class Site:
    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.full: Counter[str] = Counter()  # 200 answers with a body, per path
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.require_auth: str | None = None
        self.handler: Callable[[BaseHTTPRequestHandler], bool] | None = None  # answers a request itself when it returns True
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                site.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def html(self, path: str, title: str, text: str, links: tuple[str, ...] = (), headers: dict[str, str] | None = None,
             head: str = "") -> None:
        anchors = "".join(f'<p><a href="{link}">{link}</a></p>' for link in links)
        body = f"<html><head><title>{title}</title>{head}</head><body><h1>{title}</h1><p>{text}</p>{anchors}</body></html>"
        self.pages[path] = Page(body.encode(), headers=dict(headers or {}))

    def json(self, path: str, value: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.pages[path] = Page(json.dumps(value).encode(), "application/json", dict(headers or {}), status)

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append((request.path, dict(request.headers)))
        if self.handler is not None and self.handler(request):
            return
        if self.require_auth is not None and request.headers.get("Authorization") != self.require_auth:
            self.answer(request, 401, b"login required", "text/plain", {})
            return
        page = self.pages.get(request.path)
        if page is None:
            self.answer(request, 404, b"not found", "text/plain", {})
            return
        headers = dict(page.headers)
        if page.status == 200 and not page.endless and page.declared_length is None:
            etag = '"' + hashlib.sha256(page.body).hexdigest()[:16] + '"'
            headers.setdefault("ETag", etag)
            if request.headers.get("If-None-Match") == headers["ETag"]:
                self.answer(request, 304, b"", None, headers)
                return
        if page.endless or page.declared_length is not None:
            self.stream(request, page)
            return
        if page.status == 200:
            with self.lock:
                self.full[request.path] += 1
        self.answer(request, page.status, page.body, page.content_type, headers)

    def answer(self, request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None,
               headers: dict[str, str]) -> None:
        request.send_response(status)
        if content_type:
            request.send_header("Content-Type", content_type)
        for name, value in headers.items():
            request.send_header(name, value)
        if status != 304:
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if status != 304:
            request.wfile.write(body)

    def stream(self, request: BaseHTTPRequestHandler, page: Page) -> None:
        request.send_response(200)
        request.send_header("Content-Type", page.content_type)
        if page.declared_length is not None:
            request.send_header("Content-Length", str(page.declared_length))
        request.end_headers()
        piece = b"x" * 65536
        sent = 0
        try:
            while page.declared_length is None or sent < page.declared_length:
                request.wfile.write(piece)
                sent += len(piece)
                if sent > 64 * 1024 * 1024:  # a client that reads this far has failed the test already
                    break
        except OSError:
            pass  # the client hung up, as it should

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
