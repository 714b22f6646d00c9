"""Storage: migrations, append-only audit, URL handling and unreachable databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import cristal.knowledge.schema
import cristal.workflows.schema  # noqa: F401 - imported with the line above so their tables are part of the schema
from cristal.db import Database, normalize_url
from cristal.db.schema import Base, include_in_schema_comparison
from cristal.errors import DatabaseError
from cristal.identity import orgs
from cristal.identity.principal import Principal

BACKENDS = ("sqlite", "postgres")
INSTALLATION = Principal.installation("t")


def test_upgrade_is_idempotent_and_matches_the_models(db: Database) -> None:
    db.upgrade()  # second time: nothing to do, no error
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_in_schema_comparison})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_audit_records_cannot_be_changed_or_deleted(db: Database) -> None:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
    for statement in ("UPDATE audit_records SET decision = 'deny'", "DELETE FROM audit_records"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_records WHERE decision = 'allow'")).scalar() == 1


def test_deleting_an_org_removes_its_people(db: Database) -> None:
    from cristal.identity import users

    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "a@acme.example", groups=["g"])
    with db.session() as s:
        orgs.delete_org(s, INSTALLATION, "acme")
    with db.engine.connect() as conn:
        for table in ("users", "groups", "group_members"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_failed_work_leaves_no_partial_writes(db: Database) -> None:
    from cristal.errors import AlreadyExists
    from cristal.identity import users

    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "a@acme.example")
    with pytest.raises(AlreadyExists):
        with db.session() as s:
            users.add_user(s, INSTALLATION, "acme", "b@acme.example", groups=["new-group"])
            users.add_user(s, INSTALLATION, "acme", "a@acme.example")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM groups")).scalar() == 0


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_database_is_one_line_without_password() -> None:
    db = Database("postgresql://bob:s3cret@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseError) as info:
        db.check()
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message and "cannot reach database" in message


def test_garbage_url_is_refused() -> None:
    with pytest.raises(DatabaseError, match="invalid database URL"):
        Database("not a url at all")


def test_uninitialised_database_says_run_init(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseError, match="cristal init"):
        db.require_initialised()


def test_exclusive_locks_refuse_a_second_holder_until_released(db: Database) -> None:
    from cristal.errors import Busy

    other = Database(db.url)  # another handle on the same database, as another process would have
    try:
        with db.exclusive("sync:source:1", "busy one"):
            with pytest.raises(Busy, match=r"^busy one$"):
                with other.exclusive("sync:source:1", "busy one"):
                    pass
            with other.exclusive("sync:source:2", "busy two"):  # another name is another lock
                pass
        with other.exclusive("sync:source:1", "busy one"):  # released with its block
            pass
    finally:
        other.dispose()
    memory = Database("sqlite:///:memory:")
    with memory.exclusive("x", "busy"):
        with pytest.raises(Busy):
            with memory.exclusive("x", "busy"):
                pass
