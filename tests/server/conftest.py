"""The server under test, for real: uvicorn on a free loopback port in a thread, called over HTTP.

``company`` builds two organizations (acme, globex), each with an admin, a
finance member and an engineer, a folder of documents (one readable by the
whole organization, one by finance only) indexed for search, and an API key
per person. ``live`` starts ``create_app`` on that database. ``providers``
gives each organization its OpenID Connect provider (real ones on loopback,
``cristal.testing.oidc_provider``), registered for that server's callback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from cristal.config import Settings
from cristal.db import Database
from cristal.identity import oidc, orgs, users
from cristal.identity.apikeys import create_api_key
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.sync import sync_source
from cristal.server import Limits, create_app
from cristal.testing.oidc_provider import OidcProvider, ProviderUser
from tests.conftest import CliResult

INSTALLATION = Principal.installation("test-operator")
Cli = Callable[..., CliResult]  # the `cli` fixture of tests/conftest.py: runs `python -m cristal ARGS`
REPO = Path(__file__).resolve().parents[2]
ORGS = ("acme", "globex")

DOCS = {
    "public/.cristal-acl": "org\n",
    "public/travel.md": "# Travel policy\n\nThe hotel cap in Munich is 150 EUR per night for {org} staff.\n",
    "finance/.cristal-acl": "group:finance\n",
    "finance/bank.md": "# Supplier payments\n\nThe supplier of {org} is paid to IBAN {iban}; the hotel cap for board trips is 240 EUR.\n",
}
IBAN = {"acme": "DE89370400440532013000", "globex": "GB33BUKB20201555555555"}


@dataclass
class Company:
    db: Database
    db_url: str
    home: Path
    keys: dict[str, str] = field(default_factory=dict)  # e-mail -> API key

    def key(self, email: str) -> str:
        return self.keys[email]


def person(role: str, org: str) -> str:
    return f"{role}@{org}.example"


def build_company(db: Database, db_url: str, root: Path) -> Company:
    with db.session() as s:
        for org in ORGS:
            orgs.create_org(s, INSTALLATION, org, org.title())
            users.add_user(s, INSTALLATION, org, person("admin", org), role="admin", groups=["management"])
            users.add_user(s, INSTALLATION, org, person("fin", org), groups=["finance"])
            users.add_user(s, INSTALLATION, org, person("eng", org), groups=["engineering"])
            folder = root / "docs" / org
            for rel, text in DOCS.items():
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text.format(org=org, iban=IBAN[org]), encoding="utf-8")
            sources.add_source(s, INSTALLATION, org, "wiki", "files", str(folder))
    for org in ORGS:
        sync_source(db, INSTALLATION, org, "wiki", embed=False)  # keyword search is enough here, and fast
    company = Company(db, db_url, root / "home")
    with db.session() as s:
        for org in ORGS:
            for role in ("admin", "fin", "eng"):
                email = person(role, org)
                me = resolve_principal(s, org, email)  # the employee mints their own key
                company.keys[email] = create_api_key(s, me, org, email, name="test")[1]
    return company


@pytest.fixture
def company(db: Database, db_url: str, tmp_path: Path) -> Company:
    return build_company(db, db_url, tmp_path)


class LiveServer:
    """``create_app`` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, db: Database, settings: Settings, limits: Limits | None = None) -> None:
        # IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections (as ``cristal serve`` does).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.app = create_app(db, settings, limits=limits)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


SECRET_ENV = "CRISTAL_ORG_KEY_ACME_OIDC"


@pytest.fixture(scope="module")
def idp_acme() -> Iterator[OidcProvider]:
    users = [ProviderUser("ana@acme.example", "pw-ana", groups=["finance", "ops"]),
             ProviderUser(person("fin", "acme"), "pw-fin", groups=["finance"])]
    with OidcProvider(users) as idp:
        yield idp


@pytest.fixture(scope="module")
def idp_globex() -> Iterator[OidcProvider]:
    with OidcProvider([ProviderUser("bo@globex.example", "pw-bo", groups=["finance"])]) as idp:
        yield idp


@pytest.fixture
def providers(company: Company, live: LiveServer, idp_acme: OidcProvider, idp_globex: OidcProvider,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OidcProvider, OidcProvider]]:
    """Both organizations' providers, configured by their admins, with this test's callback registered."""
    monkeypatch.setenv(SECRET_ENV, "acme-client-secret")
    callback = live.url + "/auth/callback"
    idp_acme.add_client("cristal-acme", "acme-client-secret", [callback])
    idp_globex.add_client("cristal-globex", None, [callback])
    with company.db.session() as s:
        acme_admin = resolve_principal(s, "acme", person("admin", "acme"))
        oidc.configure_oidc(s, acme_admin, "acme", issuer=idp_acme.issuer, client_id="cristal-acme",
                            secret_env=SECRET_ENV, groups_claim="groups")
        oidc.configure_oidc(s, INSTALLATION, "globex", issuer=idp_globex.issuer, client_id="cristal-globex")
    yield idp_acme, idp_globex
    for idp in (idp_acme, idp_globex):
        idp.claims_override, idp.discovery_override = {}, {}
        idp.sign_with_foreign_key = False


# The sample's checks, which the workflow tests' python steps call (installations allow no module by default).
PYTHON_MODULES = "cristal.sample.checks"


@pytest.fixture
def settings(company: Company) -> Settings:
    return Settings(home=company.home, workflow_python_modules=PYTHON_MODULES)


@pytest.fixture
def live(company: Company, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(company.db, settings) as server:
        yield server


@pytest.fixture
def client(live: LiveServer, company: Company) -> Iterator[Callable[[str | None], httpx.Client]]:
    """``client(email)``: an HTTP client carrying that employee's key (``None``: no key)."""
    made: list[httpx.Client] = []

    def make(email: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {company.key(email)}"} if email else {}
        c = httpx.Client(base_url=live.url, headers=headers, timeout=60)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error object of a failed response, checked to be the one shape with a one-line message."""
    doc = response.json()
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == {"type", "message"}, doc
    assert "\n" not in doc["error"]["message"] and "Traceback" not in doc["error"]["message"]
    return doc["error"]


class Worker:
    """``cristal worker`` as a separate process on the test database (as in production)."""

    def __init__(self, company: Company, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "CRISTAL_DATABASE_URL": company.db_url, "CRISTAL_HOME": str(company.home),
               "CRISTAL_WORKFLOW_APPROVAL_POLL_SECONDS": "2", "CRISTAL_WORKFLOW_PYTHON_MODULES": PYTHON_MODULES,
               **(extra_env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "cristal", "worker", "--concurrency", "4"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; a generous bound so a busy machine does not fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
