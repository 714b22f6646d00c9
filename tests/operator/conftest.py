"""Fixtures for the Operator: one real Chromium per test module, a fresh database with an
organization per test, the loopback expenses site, and settings for a ScriptedModel."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.operator import chromium
from cristal.sample.webapps import WebApps, serve_webapps
from tests.operator.site import USER, SiteServer

INSTALLATION = Principal.installation("test-operator")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def _org_template(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Path:
    """A migrated database with organization ``acme`` and its member alice; copied per test."""
    path = tmp_path_factory.mktemp("operator-template") / "c.db"
    shutil.copyfile(migrated_sqlite, path)
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme", "Acme")
        users.add_user(s, INSTALLATION, "acme", USER, groups=["finance"])
    db.dispose()
    return path


@pytest.fixture
def db(tmp_path: Path, _org_template: Path) -> Iterator[Database]:
    shutil.copyfile(_org_template, tmp_path / "c.db")
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    yield database
    database.dispose()


@pytest.fixture
def alice(db: Database) -> Principal:
    with db.session() as s:
        return resolve_principal(s, "acme", USER)


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        yield server


def model_settings(base_url: str) -> Settings:
    return Settings(llm_base_url=base_url, llm_api_key="k", llm_model="scripted", llm_max_retries=0, llm_timeout_seconds=10)


@pytest.fixture
def ocli(cli, db_url: str, _org_template: Path):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """The CLI on a workspace whose database already holds acme and alice (a copy of the module template)."""
    shutil.copyfile(_org_template, db_url.removeprefix("sqlite:///"))
    return cli


def model_env(base_url: str, **extra: str) -> dict[str, str]:
    """Environment for a CLI process whose model is a ScriptedModel at ``base_url``."""
    return {"CRISTAL_LLM_BASE_URL": base_url, "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "scripted",
            "CRISTAL_LLM_MAX_RETRIES": "0", "CRISTAL_OPERATOR_APPROVAL_POLL_SECONDS": "0.2", **extra}


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[WebApps]:
    """The sample company's web apps on loopback over a fresh database ("today" fixed for reproducible dates)."""
    with serve_webapps(tmp_path / "apps.db", today=lambda: date(2025, 10, 31)) as running:
        yield running


def employee(db: Database, email: str) -> Principal:
    """``email`` as a member of acme (the Operator's own organization in these tests), added the first time."""
    with db.session() as s:
        try:
            return resolve_principal(s, "acme", email)
        except CristalError:
            pass
    with db.session() as s:
        users.add_user(s, INSTALLATION, "acme", email)
    with db.session() as s:
        return resolve_principal(s, "acme", email)
