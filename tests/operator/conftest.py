"""Fixtures for the Operator: one real Chromium per test module, a fresh database with an
organization per test, the loopback expenses site, and settings for a ScriptedModel."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from cristal.config import Settings
from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.operator import chromium
from tests.operator.site import USER, SiteServer

OPERATOR = Principal.operator("test-operator")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def _org_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with organization ``acme`` and its member alice; copied per test."""
    path = tmp_path_factory.mktemp("operator-template") / "c.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as s:
        orgs.create_org(s, OPERATOR, "acme", "Acme")
        users.add_user(s, OPERATOR, "acme", USER, groups=["finance"])
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
