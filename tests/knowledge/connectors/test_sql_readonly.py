"""Read-only SQL sources stay read-only: the attacks of issue 16 (findings 3 and 4), on real databases.

Each attack is tried through ``query_readonly`` (what ``sql`` workflow steps call), and again with the
statement parser switched off, to show that the database-side guards hold on their own.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cristal.knowledge.connectors import sql as sqlmod
from cristal.knowledge.connectors.sql import QueryFailed, QueryRefused, QueryTimedOut, check_read_statement, query_readonly

ATTACK = "SET TRANSACTION READ WRITE; DELETE FROM invoices WHERE id = 1; COMMIT"


@pytest.fixture
def pg_url(postgres_server) -> str:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    import psycopg

    url = postgres_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table invoices (id int primary key, customer text, amount numeric)")
        conn.execute("insert into invoices values (1, 'Kumo Components GmbH', 180), (2, 'Hikari Trading', 990)")
        conn.execute("create sequence invoice_numbers")
    return url


def pg_invoice_ids(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("select id from invoices order by id")]


@pytest.fixture
def marker(postgres_server) -> Path:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """A path the database server's own user may create: where COPY ... TO PROGRAM 'touch ...' would succeed."""
    return postgres_server.root / f"pwned-{uuid.uuid4().hex}"


@pytest.fixture
def no_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Switch the statement parser off: what is left is the database's own enforcement."""
    monkeypatch.setattr(sqlmod, "check_read_statement", lambda query, backend: None)
    yield


PG_ATTACKS = [
    ATTACK,
    "BEGIN; SET TRANSACTION READ WRITE; DELETE FROM invoices WHERE id = 1; COMMIT",
    "COMMIT; DELETE FROM invoices WHERE id = 1",
    "SELECT 1; DELETE FROM invoices WHERE id = 1",
    "SET TRANSACTION READ WRITE",
    "WITH d AS (DELETE FROM invoices WHERE id = 1 RETURNING *) SELECT * FROM d",
    "DELETE FROM invoices WHERE id = 1",
    "SELECT * INTO stolen FROM invoices",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
    "COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
    "SELECT nextval('invoice_numbers')",
    "SELECT * FROM invoices FOR UPDATE",
    "SELECT query_to_xml('DELETE FROM invoices WHERE id = 1 RETURNING id', true, true, '')",
]


@pytest.mark.postgres
@pytest.mark.parametrize("attack", PG_ATTACKS)
def test_postgres_attacks_are_refused_before_the_database_sees_them(pg_url: str, attack: str, marker: Path) -> None:
    with pytest.raises(QueryRefused, match=r"^query refused: "):
        query_readonly(pg_url, attack.format(marker=marker), max_rows=10)
    assert pg_invoice_ids(pg_url) == [1, 2]
    assert not marker.exists()


# Not pg_terminate_backend: without the parser, only the role swap stands between it and the other tests' sessions.
@pytest.mark.postgres
@pytest.mark.parametrize("attack", [a for a in PG_ATTACKS if "pg_terminate" not in a])
def test_postgres_refuses_them_too_without_the_parser(pg_url: str, attack: str, marker: Path, no_parser: None) -> None:
    try:
        found = query_readonly(pg_url, attack.format(marker=marker), max_rows=10)
    except QueryFailed as exc:
        assert str(exc).startswith("query failed: ")
    else:
        # What the database lets through changes nothing that outlives the query: the settings call
        # is rolled back with the transaction.
        assert "set_config" in attack, (attack, found)
    assert pg_invoice_ids(pg_url) == [1, 2]
    assert not marker.exists()


@pytest.mark.postgres
def test_the_exact_attack_fails_on_the_database_with_one_statement_per_query(pg_url: str, no_parser: None) -> None:
    with pytest.raises(QueryFailed, match="cannot insert multiple commands into a prepared statement"):
        query_readonly(pg_url, ATTACK)
    with pytest.raises(QueryFailed, match="read-write mode must be set before any query"):
        query_readonly(pg_url, "SET TRANSACTION READ WRITE")
    with pytest.raises(QueryFailed, match="read-only transaction"):
        query_readonly(pg_url, "WITH d AS (DELETE FROM invoices WHERE id = 1 RETURNING *) SELECT * FROM d")
    with pytest.raises(QueryFailed, match="must be superuser or have privileges of the pg_execute_server_program role"):
        query_readonly(pg_url, "COPY (SELECT 1) TO PROGRAM 'true'")  # the source's superuser was dropped to pg_read_all_data
    assert pg_invoice_ids(pg_url) == [1, 2]


@pytest.mark.postgres
def test_postgres_reads_still_work(pg_url: str) -> None:
    found = query_readonly(pg_url, "select id, customer, amount from invoices where amount > :t order by id", {"t": 100})
    assert found.rows == [{"id": 1, "customer": "Kumo Components GmbH", "amount": 180},
                          {"id": 2, "customer": "Hikari Trading", "amount": 990}] and not found.more
    found = query_readonly(pg_url, "WITH big AS (SELECT * FROM invoices WHERE amount > 500) SELECT customer FROM big;")
    assert found.rows == [{"customer": "Hikari Trading"}]
    assert query_readonly(pg_url, "select id from invoices order by id", max_rows=1) == sqlmod.Rows([{"id": 1}], True)
    assert query_readonly(pg_url, "VALUES (1, 'a')").rows == [{"column1": 1, "column2": "a"}]


@pytest.mark.postgres
def test_postgres_queries_are_cancelled_at_their_timeout(pg_url: str) -> None:
    with pytest.raises(QueryTimedOut, match=r"^query timed out after 0\.2s$"):
        query_readonly(pg_url, "SELECT count(*) FROM generate_series(1, 1000000000000)", timeout=0.2)


# ---------------------------------------------------------------------------
# SQLite (finding 4)


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    con = sqlite3.connect(path)
    con.executescript("create table invoices (id integer primary key, customer text, amount numeric);"
                      "insert into invoices values (1, 'Kumo Components GmbH', 180), (2, 'Hikari Trading', 990);")
    con.commit()
    con.close()
    return path


def _sqlite_invoices(path: Path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("select id from invoices order by id")]
    finally:
        con.close()


SQLITE_ATTACKS = [
    "VACUUM INTO '{target}'",
    "ATTACH DATABASE '{target}' AS x",
    "ATTACH DATABASE 'file:{target}?mode=rwc' AS x",
    "DELETE FROM invoices WHERE id = 1",
    "SELECT 1; DELETE FROM invoices WHERE id = 1",
    "PRAGMA journal_mode = WAL",
    "CREATE TEMP TABLE t AS SELECT * FROM invoices",
    "SELECT load_extension('{target}')",
    "SELECT randomblob(1000000000)",
]


@pytest.mark.parametrize("attack", SQLITE_ATTACKS)
@pytest.mark.parametrize("parser", ["on", "off"])
def test_sqlite_attacks_write_no_file(erp: Path, tmp_path: Path, attack: str, parser: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if parser == "off":
        monkeypatch.setattr(sqlmod, "check_read_statement", lambda query, backend: None)
    target = tmp_path / "copy.db"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises((QueryRefused, QueryFailed)) as caught:
        query_readonly(f"sqlite:///{erp}", attack.format(target=target))
    message = str(caught.value)
    assert message.startswith("query refused: " if parser == "on" else "query failed: "), message
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert _sqlite_invoices(erp) == [1, 2]


def test_sqlite_reads_still_work(erp: Path) -> None:
    uri = f"sqlite:///{erp}"
    found = query_readonly(uri, "select upper(customer) as c, count(*) as n, sum(amount) as s from invoices "
                                "where amount > :t group by customer order by c", {"t": 100})
    assert found.rows == [{"c": "HIKARI TRADING", "n": 1, "s": 990}, {"c": "KUMO COMPONENTS GMBH", "n": 1, "s": 180}]
    assert query_readonly(uri, "with recursive c(n) as (select 1 union all select n + 1 from c where n < 3) "
                               "select n from c").rows == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert query_readonly(uri, "select name from sqlite_master where type = 'table'").rows == [{"name": "invoices"}]
    assert query_readonly(uri, "select json_extract('{\"a\": 2}', '$.a') as a, date('2025-02-28', '+1 day') as d").rows == [
        {"a": 2, "d": "2025-03-01"}]


def test_sqlite_queries_are_interrupted_at_their_timeout(erp: Path) -> None:
    endless = "with recursive c(n) as (select 1 union all select n + 1 from c) select count(*) from c"
    with pytest.raises(QueryTimedOut, match=r"^query timed out after 0\.2s$"):
        query_readonly(f"sqlite:///{erp}", endless, timeout=0.2)


@pytest.mark.parametrize(("query", "message"), [
    ("", "give exactly one statement, not 0"),
    ("select 1; select 2", "give exactly one statement, not 2"),
    ("EXPLAIN SELECT 1", "EXPLAIN is not a read"),
    ("WITH d AS (UPDATE invoices SET amount = 0 RETURNING *) SELECT * FROM d", "UPDATE is not a read"),
    ("select pg_catalog.pg_sleep(100)", "function pg_sleep() is not allowed"),
    ("select * from dblink('host=evil', 'select 1') as t(x int)", "function dblink() is not allowed"),
])
def test_the_parser_names_what_it_refuses(query: str, message: str) -> None:
    with pytest.raises(QueryRefused) as caught:
        check_read_statement(query, "postgresql")
    assert message in str(caught.value)
