"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL where a module asks),
a workspace for CLI tests, and the sample principals.

A test module sets ``BACKENDS = ("sqlite", "postgres")`` to run its ``db``
tests on both; the PostgreSQL server is started once per session on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.principal import Principal
from cristal.testing.postgres import TemporaryPostgres

INSTALLATION = Principal.installation("test-operator")


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's own CRISTAL_*/OPENAI_* variables or config.toml never leak into a test."""
    for name in list(os.environ):
        if name.startswith(("CRISTAL_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CRISTAL_HOME", str(tmp_path / "home"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ("sqlite",))
        metafunc.parametrize(
            "db_backend",
            [pytest.param(b, marks=pytest.mark.postgres) if b == "postgres" else b for b in backends],
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    if db_backend == "postgres":
        return request.getfixturevalue("postgres_server").new_database()
    return f"sqlite:///{tmp_path / 'cristal.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def two_orgs(db: Database) -> Database:
    """Two organizations, each with an admin and members in different groups."""
    with db.session() as s:
        for slug in ("acme", "globex"):
            orgs.create_org(s, INSTALLATION, slug, slug.title())
            users.add_user(s, INSTALLATION, slug, f"admin@{slug}.example", role="admin")
            users.add_user(s, INSTALLATION, slug, f"fin@{slug}.example", groups=["finance"])
            users.add_user(s, INSTALLATION, slug, f"eng@{slug}.example", groups=["engineering"])
    return db


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """Run ``python -m cristal ...`` as a user would, in a fresh workspace."""
    env = {**os.environ, "CRISTAL_DATABASE_URL": db_url}  # isolated_settings has cleaned the rest

    def run(*args: str, input: str | None = None, extra_env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "cristal", *args],
            capture_output=True, text=True, env={**env, **(extra_env or {})}, input=input, timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    run.env = env  # type: ignore[attr-defined]  # an attribute hung on the fixture's function
    return run
