"""The SQL connector: tables and views become records; the source stays read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.directory import resolve_principal
from cristal.knowledge import sources
from cristal.knowledge.connectors.base import Item, ScanProblem
from cristal.knowledge.connectors.sql import SqlConnector, readonly_engine
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source

from ..conftest import INSTALLATION


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    con = sqlite3.connect(path)
    con.executescript(
        """
        create table customers (id integer primary key, name text, city text);
        insert into customers values (1, 'Kumo Components GmbH', 'München'), (2, 'Hikari Trading', '大阪');
        create table expenses (id integer primary key, employee text, amount numeric, status text);
        insert into expenses values (1, 'lukas', 120.5, 'pending'), (2, 'mia', 80, 'approved');
        create view pending as select * from expenses where status = 'pending';
        """
    )
    con.commit()
    con.close()
    return path


def test_tables_views_and_schema_become_records(erp: Path) -> None:
    items = list(SqlConnector(f"sqlite:///{erp}", ("org",)).scan())
    assert not [i for i in items if isinstance(i, ScanProblem)]
    ids = sorted(i.external_id for i in items if isinstance(i, Item))
    assert ids == ["customers", "customers/1", "customers/2", "expenses", "expenses/1", "expenses/2", "pending", "pending/1"]
    schema = next(i for i in items if isinstance(i, Item) and i.external_id == "customers").parsed
    assert "city: TEXT" in schema.text and "id: INTEGER (primary key)" in schema.text
    row = next(i for i in items if isinstance(i, Item) and i.external_id == "customers/2").parsed
    assert "city: 大阪" in row.text and row.title == "customers 2"


def test_the_source_is_opened_read_only(erp: Path) -> None:
    engine = readonly_engine(f"sqlite:///{erp}")
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from customers")).scalar() == 2
        with pytest.raises(DatabaseError, match="not authorized"):  # the authorizer; mode=ro would say "readonly"
            conn.execute(text("delete from customers"))
    engine.dispose()


def test_max_rows(erp: Path) -> None:
    items = [i for i in SqlConnector(f"sqlite:///{erp}", None, {"max_rows": 1}).scan() if isinstance(i, Item)]
    assert sorted(i.external_id for i in items) == ["customers", "customers/1", "expenses", "expenses/1", "pending", "pending/1"]


def test_sync_and_search_records(two_orgs: Database, erp: Path) -> None:
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "erp", "sql", f"sqlite:///{erp}", acl="group:finance")
    report = sync_source(two_orgs, INSTALLATION, "acme", "erp")
    assert report.added == 8 and not report.skipped
    with two_orgs.session() as s:
        fin = resolve_principal(s, "acme", "fin@acme.example")
        eng = resolve_principal(s, "acme", "eng@acme.example")
    assert Searcher(two_orgs).search(fin, "Kumo Components", mode="keyword")[0].title == "customers 1"
    assert Searcher(two_orgs).search(eng, "Kumo Components") == []


def test_database_gone_mid_sync_keeps_the_index(two_orgs: Database, erp: Path) -> None:
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "erp", "sql", f"sqlite:///{erp}", acl="org")
    sync_source(two_orgs, INSTALLATION, "acme", "erp")
    erp.unlink()
    erp.write_bytes(b"this is no longer a database")
    report = sync_source(two_orgs, INSTALLATION, "acme", "erp")
    assert report.deleted == 0 and report.skipped and report.kept_unseen == 8


@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "mysql+nothing://x", "not a url", "postgresql://u:pw@127.0.0.1:1/x"])
def test_bad_database_urls_are_refused_at_add(two_orgs: Database, uri: str) -> None:
    with pytest.raises(InvalidInput) as info:
        with two_orgs.session() as s:
            sources.add_source(s, INSTALLATION, "acme", "erp", "sql", uri)
    assert "pw" not in str(info.value)


def test_postgres_source_is_read_only_and_indexed(two_orgs: Database, postgres_server) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    url = postgres_server.new_database()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table suppliers (id int primary key, name text, iban text)")
        conn.execute("insert into suppliers values (1, 'Rheinfilter Technik GmbH', 'DE89 3704 0044 0532 0130 00')")
    engine = readonly_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("select name from suppliers")).scalar() == "Rheinfilter Technik GmbH"
        with pytest.raises(Exception, match="read-only"):
            conn.execute(text("delete from suppliers"))
    engine.dispose()
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "suppliers", "sql", url, acl="group:finance")
    assert sync_source(two_orgs, INSTALLATION, "acme", "suppliers").added == 2
    with two_orgs.session() as s:
        fin = resolve_principal(s, "acme", "fin@acme.example")
    assert Searcher(two_orgs).search(fin, "Rheinfilter", mode="keyword")[0].title == "suppliers 1"
