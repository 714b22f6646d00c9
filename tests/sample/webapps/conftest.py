"""Fixtures for the sample web apps: a server on loopback over a fresh database, and a tiny HTTP client.

The client speaks real HTTP (http.client), keeps the session cookie and does not follow
redirects, so tests can assert on status codes and ``Location`` headers.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from cristal.sample.webapps import AppState, WebApps, serve_webapps

TODAY = date(2025, 10, 25)  # the apps' "today": fixed so that date validation is reproducible


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def rows(self) -> int:
        """Number of data rows in the page's table."""
        body = self.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in self.text else ""
        return body.count("<tr>")


class Client:
    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str | list[str]] | None = None, *,
                body: bytes | None = None, content_type: str = "") -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {}
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif content_type:
            headers["Content-Type"] = content_type
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        for value in (v for k, v in response.getheaders() if k.lower() == "set-cookie"):
            for name, morsel in SimpleCookie(value).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return Reply(response.status, reply_headers, text)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str | list[str]] | None = None) -> Reply:
        return self.request("POST", path, form or {})

    def upload(self, path: str, field: str, filename: str, content: bytes) -> Reply:
        """POST a multipart/form-data form with one file, as a browser does."""
        boundary = "----cristal-test-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", path, body=body, content_type=f"multipart/form-data; boundary={boundary}")

    def follow(self, reply: Reply) -> Reply:
        assert reply.status == 303, (reply.status, reply.text[:500])
        return self.get(reply.location)

    def login(self, email: str) -> Client:
        reply = self.post("/login", {"email": email, "next": "/"})
        assert reply.status == 303 and self.cookies, reply.text[:500]
        return self


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[WebApps]:
    with serve_webapps(tmp_path / "apps.db", today=lambda: TODAY) as running:
        yield running


@pytest.fixture
def state(apps: WebApps) -> AppState:
    return AppState(apps.db_path)


@pytest.fixture
def client(apps: WebApps) -> Client:
    return Client(apps.base_url)


def new_client(apps: WebApps, email: str | None = None) -> Client:
    c = Client(apps.base_url)
    return c.login(email) if email else c


def created_id(reply: Reply) -> int:
    m = re.fullmatch(r"/expenses/(\d+)", reply.location)
    assert m, reply.location
    return int(m.group(1))
