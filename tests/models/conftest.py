"""Fixtures for the gateway tests: a fresh database with two organizations, and gateways
pointed at ``ScriptedModel`` servers with tiny timeouts (retries are fast because the
scripted faults send ``Retry-After-Ms``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import LLMUsage
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.models import Gateway

INSTALLATION = Principal.installation("test-operator")


@pytest.fixture
def db(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Database]:
    shutil.copyfile(migrated_sqlite, tmp_path / "c.db")
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    yield database
    database.dispose()


@dataclass(frozen=True)
class People:
    alice: Principal  # member of acme
    boss: Principal  # admin of acme
    carol: Principal  # member of globex
    gadmin: Principal  # admin of globex


@pytest.fixture
def people(db: Database) -> People:
    with db.session() as s:
        for slug in ("acme", "globex"):
            orgs.create_org(s, INSTALLATION, slug)
        users.add_user(s, INSTALLATION, "acme", "alice@acme.example", groups=["finance"])
        users.add_user(s, INSTALLATION, "acme", "boss@acme.example", role="admin")
        users.add_user(s, INSTALLATION, "globex", "carol@globex.example")
        users.add_user(s, INSTALLATION, "globex", "admin@globex.example", role="admin")
    with db.session() as s:
        return People(
            alice=resolve_principal(s, "acme", "alice@acme.example"),
            boss=resolve_principal(s, "acme", "boss@acme.example"),
            carol=resolve_principal(s, "globex", "carol@globex.example"),
            gadmin=resolve_principal(s, "globex", "admin@globex.example"),
        )


def make_settings(base_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_base_url": base_url,
        "llm_api_key": "test-key",
        "llm_model": "gpt-4o-mini",
        "llm_embedding_model": "text-embedding-3-small",
        "llm_timeout_seconds": 2.0,
        "llm_max_retries": 2,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def gateway(db: Database) -> Iterator[Callable[..., Gateway]]:
    """``gateway(base_url, **settings)``: a gateway on the test database, closed after the test."""
    made: list[Gateway] = []

    def make(base_url: str | None, **overrides: Any) -> Gateway:
        gw = Gateway(make_settings(base_url, **overrides), db)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


@pytest.fixture
def usage_rows(db: Database) -> Callable[[], list[LLMUsage]]:
    """``usage_rows()``: every metered call so far, oldest first."""

    def rows() -> list[LLMUsage]:
        with db.session() as s:
            return list(s.scalars(select(LLMUsage).order_by(LLMUsage.id)))

    return rows
