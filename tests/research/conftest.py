"""One indexed company per session, copied for every test (syncing with embeddings takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cristal.config import Settings
from cristal.db import Database
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.research.store import CheckpointStore
from tests.research.company import build, copy_to


@pytest.fixture(scope="session")
def company_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("research-company")
    build(root / "c.db", root / "docs")
    return root / "c.db"


@pytest.fixture
def rdb(company_template: Path, tmp_path: Path) -> Iterator[Database]:
    db = copy_to(company_template, tmp_path / "c.db")
    yield db
    db.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=str(tmp_path / "home"))


@pytest.fixture
def store(rdb: Database) -> CheckpointStore:
    return CheckpointStore(rdb)


@pytest.fixture
def who(rdb: Database):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    def principal(email: str, org: str = "acme") -> Principal:
        with rdb.session() as s:
            return resolve_principal(s, org, email)
    return principal
