"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL where a module asks),
a workspace for CLI tests (as a process, or in this process), and the sample principals.

A test module sets ``BACKENDS = ("sqlite", "postgres")`` to run its ``db``
tests on both; the PostgreSQL server is started once per session on loopback.

Migrating a database takes seconds (SQLite rebuilds tables), so it happens once
per session and backend: a test that asks for ``db`` gets a copy of that
migrated database (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL). A test that asks only for ``db_url`` gets an empty database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cristal.cli.app import run as run_cli
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


MIGRATED_POSTGRES = "cristal_migrated"  # the template database on the session's server


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied by each test that asks for a migrated database."""
    path = tmp_path_factory.mktemp("migrated") / "cristal.db"
    template = Database(f"sqlite:///{path}")
    template.upgrade()
    template.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server: TemporaryPostgres) -> str:
    """The name of a migrated PostgreSQL database that new databases are created from."""
    template = Database(postgres_server.new_database(MIGRATED_POSTGRES))
    template.upgrade()
    template.dispose()  # CREATE DATABASE ... TEMPLATE needs it to have no connections
    return MIGRATED_POSTGRES


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    """A fresh database: empty, or migrated (a copy of the session's template) when the test asks for ``db``."""
    migrated = "db" in request.fixturenames
    if db_backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        return server.new_database(template=request.getfixturevalue("migrated_postgres") if migrated else None)
    path = tmp_path / "cristal.db"
    if migrated:
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database (``db_url`` made it a copy of the migrated template)."""
    database = Database(db_url)
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


Invoke = Callable[..., CliResult]  # invoke("workflow", "list", ...) -> CliResult


def invoke_in_process(*args: str, input: str | None = None) -> CliResult:
    """Run exactly what ``python -m cristal ARGS`` runs (``cristal.cli.app.run``: the composed Typer
    app and its one-line error handling) in this process, with stdout and stderr captured by Typer's
    ``CliRunner`` isolation. The settings come from this process's environment."""
    with CliRunner().isolation(input=input) as (stdout, stderr, _output):
        code = run_cli(args)
        sys.stdout.flush()
        sys.stderr.flush()
        return CliResult(code, stdout.getvalue().decode(), stderr.getvalue().decode())


@pytest.fixture
def cli_in_process(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The command line in this process on the test's database: where a new interpreter proves
    nothing more. The ``cli`` fixture (a real process) stays for what only a process shows."""
    monkeypatch.setenv("CRISTAL_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "240")  # wide enough that table cells are not wrapped mid-name
    return invoke_in_process
