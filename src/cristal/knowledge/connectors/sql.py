"""The SQL connector: tables and views of a database (any SQLAlchemy URL) as searchable records.

Each table or view gives one schema document (its columns and types) and one
record document per row (``column: value`` lines), up to ``max_rows`` rows per
table.

The database is only ever opened read-only, and every query Cristal runs on it
(the connector's own reads, and ``sql`` workflow steps through
``query_readonly``) goes through the same guards, each of which holds on its
own:

* the statement is parsed (``sqlglot``): exactly one statement, a read
  (``SELECT``, ``WITH … SELECT`` with no data-changing CTE, ``VALUES``, set
  operations), no ``SELECT … INTO``, no row locks, and no function that acts
  outside the transaction or runs SQL text (``pg_*``, ``lo_*``, ``dblink*``,
  ``set_config``, ``query_to_xml``, ``load_extension`` …);
* PostgreSQL: the session starts with ``default_transaction_read_only=on``; the
  query runs in a transaction that is ``READ ONLY`` with its snapshot already
  taken (so ``SET TRANSACTION READ WRITE`` fails), sent with the extended
  protocol (one statement, enforced by the server), under ``statement_timeout``,
  and always rolled back (which also undoes any setting the query changed). A
  role that could run programs or touch server files (a superuser) is dropped
  to ``pg_read_all_data`` for the query, or the query is refused;
* SQLite: opened with ``mode=ro``, one statement per call (the driver refuses
  more), and an authorizer that allows only reads of the database's own schema
  and a list of pure functions: no ``ATTACH`` (so no ``VACUUM INTO``, which
  attaches its target), no ``PRAGMA`` other than schema reads, no writes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlglot
from sqlalchemy import Inspector, MetaData, Table, create_engine, event, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlglot import exp

from cristal.db.engine import normalize_url, redact
from cristal.errors import CristalError, InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.language import detect_language
from cristal.knowledge.parse.document import Block, ParsedDocument

DEFAULT_MAX_ROWS = 10_000

# ---------------------------------------------------------------------------
# Read-only queries


class QueryRefused(InvalidInput):
    """The statement is not a single read (found by parsing it, before the database sees it)."""


class QueryFailed(CristalError):
    """The database refused or failed the query."""


class QueryTimedOut(QueryFailed):
    """The query ran longer than its time limit and was cancelled by the database."""


@dataclass(frozen=True)
class Rows:
    """At most ``max_rows`` rows of a query; ``more`` says whether the query had further rows."""

    rows: list[dict[str, Any]]
    more: bool


# Statements (and parts of statements) that are not reads. A read-only transaction refuses most of them
# anyway; the parser refuses them first, with a clear message, and also where the database would not
# (COPY ... TO PROGRAM runs in a read-only transaction).
_NOT_READS = tuple(getattr(exp, name) for name in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command", "Copy",
    "Set", "Transaction", "Commit", "Rollback", "Pragma", "Attach", "Detach", "Grant", "Revoke", "Use",
    "Analyze", "LoadData", "Kill", "Refresh", "Cache", "Uncache", "Execute", "Declare", "Comment",
    "Into", "Lock",
) if hasattr(exp, name))
_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)
# Functions that act outside the transaction (signals, sleeps, locks, files, other connections,
# settings) or run SQL text the parser never saw. Matched on the unqualified, lower-cased name.
_REFUSED_PREFIXES = ("pg_", "lo_", "dblink", "query_to_xml", "cursor_to_xml")
_REFUSED_FUNCTIONS = frozenset({
    "set_config", "current_setting", "nextval", "setval", "txid_current", "ts_stat", "ts_rewrite",
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "randomblob", "zeroblob",
})
_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite"}


def _kind_of(node: exp.Expr) -> str:
    if isinstance(node, exp.Into):
        return "SELECT ... INTO (it creates a table)"
    if isinstance(node, exp.Lock):
        return "a row lock (FOR UPDATE / FOR SHARE)"
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return type(node).__name__.upper()


def check_read_statement(query: str, backend: str) -> None:
    """Raise ``QueryRefused`` unless ``query`` is exactly one read statement (``backend``: sqlite or postgresql).

    This is the second signal: the database-side guards of ``query_readonly`` hold without it.
    """
    try:
        statements = [s for s in sqlglot.parse(query, dialect=_DIALECTS.get(backend, backend)) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryRefused(f"query refused: cannot check it is a read ({first})") from None
    if len(statements) != 1:
        raise QueryRefused(f"query refused: give exactly one statement, not {len(statements)}")
    root = statements[0]
    if not isinstance(root, _READ_ROOTS):
        raise QueryRefused(f"query refused: {_kind_of(root)} is not a read; only SELECT, WITH ... SELECT and VALUES are allowed")
    for node in root.walk():
        if isinstance(node, _NOT_READS):
            raise QueryRefused(f"query refused: {_kind_of(node)} is not a read; only SELECT, WITH ... SELECT and VALUES are allowed")
        if isinstance(node, exp.Anonymous):
            name = str(node.name).lower()
            if name in _REFUSED_FUNCTIONS or name.startswith(_REFUSED_PREFIXES):
                raise QueryRefused(f"query refused: function {name}() is not allowed in read-only queries")


# SQLite: what the authorizer lets through. Pure functions only (no randomblob/zeroblob: memory on demand).
_SQLITE_FUNCTIONS = frozenset("""
    abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likelihood likely lower
    ltrim max min nullif octet_length printf quote replace round rtrim sign soundex substr substring trim
    typeof unhex unicode unlikely upper random sqlite_version
    date time datetime julianday unixepoch strftime timediff
    avg count group_concat string_agg sum total
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi
    pow power radians sin sinh sqrt tan tanh trunc
    json json_array json_array_length json_extract json_insert json_object json_patch json_quote json_remove
    json_replace json_set json_type json_valid json_group_array json_group_object
""".split())
# Schema reads the SQLAlchemy inspector needs (the query form, ``PRAGMA table_info(t)``); every other PRAGMA is refused.
_SQLITE_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"})
# The longest string or blob a query may build (SQLite's default is 1 GB): printf('%.*c', ...) and friends.
_SQLITE_MAX_LENGTH = 64 * 1024 * 1024


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, db_name: str | None, _trigger: str | None) -> int:
    """Reads of this database's own tables and schema, and pure functions; nothing else (no ATTACH, so no VACUUM INTO)."""
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ and db_name in ("main", "temp", None):  # None: count(*) reading no column
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and arg2 is not None and arg2.lower() in _SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg1.lower() in _SQLITE_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _guard_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.set_authorizer(_sqlite_authorizer)
    dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _SQLITE_MAX_LENGTH)


def _one_statement(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """PostgreSQL: send queries marked ``cristal_one_statement`` with the extended protocol.

    The server then refuses a text holding more than one statement ("cannot insert multiple commands
    into a prepared statement"); psycopg sends parameterless queries with the simple protocol otherwise.
    """
    if context is None or not context.execution_options.get("cristal_one_statement"):
        return False
    cursor.execute(statement, parameters, prepare=True)
    return True


def readonly_engine(uri: str) -> Engine:
    """An engine that cannot write: SQLite opened with ``mode=ro`` and an authorizer, PostgreSQL in read-only sessions."""
    url_text = normalize_url(uri)
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise InvalidInput(f"invalid database URL {uri!r}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInput("an SQL source needs a database file, not an in-memory database")
        engine = create_engine(f"sqlite:///file:{url.database}?mode=ro&uri=true", poolclass=NullPool)
        event.listen(engine, "connect", _guard_sqlite)
    elif backend == "postgresql":
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"connect_timeout": 10, "options": "-c default_transaction_read_only=on"})
        event.listen(engine, "do_execute", _one_statement)
    else:
        # Other databases need their own read-only guard and driver: one module each, when a customer needs it.
        raise InvalidInput(f"unsupported database {backend!r}: SQL sources are SQLite or PostgreSQL URLs")
    return engine


# A role with these powers can run programs or read and write files on the database server even in a
# read-only transaction; for a query it is swapped for pg_read_all_data (reads every table, nothing else).
_PG_ROLE_CHECK = """
SELECT r.rolsuper OR EXISTS (
         SELECT 1 FROM pg_roles p
         WHERE p.rolname IN ('pg_execute_server_program', 'pg_write_server_files', 'pg_read_server_files')
           AND pg_has_role(current_user, p.oid, 'USAGE')) AS strong,
       EXISTS (SELECT 1 FROM pg_roles p WHERE p.rolname = 'pg_read_all_data'
               AND pg_has_role(current_user, p.oid, 'MEMBER')) AS can_read_all
FROM pg_roles r WHERE r.rolname = current_user
"""


def _prepare_postgres(conn: Connection, timeout: float | None) -> None:
    # The transaction began read-only (the session default); say so explicitly, then take the snapshot:
    # from then on SET TRANSACTION READ WRITE fails ("must be set before any query").
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    strong, can_read_all = conn.exec_driver_sql(_PG_ROLE_CHECK).one()
    if strong:
        if not can_read_all:
            raise QueryFailed("the source's database role may run programs or write files on the database server; "
                              "connect it with a role that may only SELECT")
        conn.exec_driver_sql("SET LOCAL ROLE pg_read_all_data")
    if timeout is not None:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")


def _sqlite_deadline(conn: Connection, timeout: float | None) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None  # a connection checked out of the pool has its DBAPI connection
    if timeout is None:
        raw.set_progress_handler(None, 0)
        return
    deadline = time.monotonic() + timeout
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)


def _reason(exc: SQLAlchemyError) -> str:
    text_ = str(getattr(exc, "orig", exc)).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def read_rows(engine: Engine, query: str, params: Mapping[str, Any] | None = None, *,
              max_rows: int = DEFAULT_MAX_ROWS, timeout: float | None = None) -> Rows:
    """One read statement on an engine from ``readonly_engine``: checked, limited in time and rows, rolled back."""
    backend = engine.url.get_backend_name()
    check_read_statement(query, backend)
    try:
        with engine.connect() as conn:
            try:
                if backend == "postgresql":
                    _prepare_postgres(conn, timeout)
                else:
                    _sqlite_deadline(conn, timeout)
                result = conn.execute(text(query).execution_options(cristal_one_statement=True), dict(params or {}))
                fetched = [dict(r) for r in result.mappings().fetchmany(max_rows + 1)] if result.returns_rows else []
            finally:
                if backend == "sqlite":
                    _sqlite_deadline(conn, None)
                conn.rollback()  # always: nothing a query did survives it, settings included
    except SQLAlchemyError as exc:
        reason = _reason(exc)
        if "statement timeout" in reason or reason == "interrupted":
            raise QueryTimedOut(f"query timed out after {timeout:g}s") from None
        if "not authorized" in reason or "authorization denied" in reason:
            reason = f"{reason} (only reads of the database's own tables are allowed)"
        raise QueryFailed(f"query failed: {reason}") from None
    return Rows(fetched[:max_rows], len(fetched) > max_rows)


def query_readonly(uri: str, query: str, params: Mapping[str, Any] | None = None, *,
                   max_rows: int = DEFAULT_MAX_ROWS, timeout: float | None = None) -> Rows:
    """Run one read statement against the database at ``uri`` (``:name`` placeholders filled from ``params``).

    Raises ``QueryRefused`` (not a single read), ``QueryTimedOut`` or ``QueryFailed``; see the module's docstring
    for the guards.
    """
    engine = readonly_engine(uri)
    try:
        return read_rows(engine, query, params, max_rows=max_rows, timeout=timeout)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------
# The connector


def _value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _record(title: str, lines: list[str], heading: str) -> ParsedDocument:
    body = "\n".join(lines)
    text_ = f"{heading}\n\n{body}"
    blocks = [
        Block("heading", heading, 0, len(heading)),
        Block("table", body, len(heading) + 2, len(text_), heading_path=(heading,)),
    ]
    return ParsedDocument(title=title, text=text_, blocks=blocks, language=detect_language(body))


class SqlConnector:
    kind = "sql"

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        self.uri = uri
        self.acl = acl
        self.max_rows = int((options or {}).get("max_rows", DEFAULT_MAX_ROWS))
        self.scope = ScanScope()

    @staticmethod
    def validate(uri: str) -> str:
        engine = readonly_engine(uri)
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise InvalidInput(f"cannot open database {redact(normalize_url(uri))}: {reason}") from None
        finally:
            engine.dispose()
        return uri

    def scan(self) -> Iterator[Item | ScanProblem]:
        engine = readonly_engine(self.uri)
        shown = redact(normalize_url(self.uri))
        try:
            try:
                inspector = inspect(engine)
                names = [(n, "table") for n in inspector.get_table_names()] + [(n, "view") for n in inspector.get_view_names()]
            except SQLAlchemyError as exc:
                self.scope.complete = False
                yield ScanProblem(shown, f"cannot list tables ({str(getattr(exc, 'orig', exc)).strip().splitlines()[0]})")
                return
            for name, kind in sorted(names):
                try:
                    yield from self._table(engine, inspector, name, kind)
                except (SQLAlchemyError, QueryFailed, QueryRefused) as exc:
                    # The database failed mid-sync: keep what was indexed for this table.
                    self.scope.unseen_prefixes.append(f"{name}/")
                    self.scope.unseen_prefixes.append(name)
                    yield ScanProblem(name, f"cannot read {kind} ({str(getattr(exc, 'orig', exc)).strip().splitlines()[0]})")
        finally:
            engine.dispose()

    def _table(self, engine: Engine, inspector: Inspector, name: str, kind: str) -> Iterator[Item]:
        columns = inspector.get_columns(name)
        pk = [] if kind == "view" else inspector.get_pk_constraint(name).get("constrained_columns", [])
        table = Table(name, MetaData(), autoload_with=engine)
        # The same guarded path as workflow queries; the LIMIT keeps the database from producing more.
        statement = str(select(table).limit(self.max_rows + 1).compile(engine, compile_kwargs={"literal_binds": True}))
        found = read_rows(engine, statement, max_rows=self.max_rows)
        rows = found.rows
        schema_lines = [f"{c['name']}: {c['type']}" + (" (primary key)" if c["name"] in pk else "") for c in columns]
        schema_lines.append(f"rows: {len(rows)}{'+' if found.more else ''}")
        yield self._item(name, f"{kind} {name}", _record(f"{kind} {name} (schema)", schema_lines, f"{kind} {name}"))
        for number, row in enumerate(rows, 1):
            key = "-".join(_value(row[c]) for c in pk) if pk else str(number)
            lines = [f"{col}: {_value(val)}" for col, val in row.items()]
            yield self._item(f"{name}/{key}", f"{name} {key}", _record(f"{name} {key}", lines, f"{name} {key}"))

    def _item(self, external_id: str, title: str, doc: ParsedDocument) -> Item:
        return Item(
            external_id=external_id,
            uri=f"{redact(normalize_url(self.uri))}#{external_id}",
            filename=title,
            acl=self.acl,
            size=len(doc.text.encode()),
            parsed=doc,
            fingerprint=hashlib.sha256(doc.text.encode()).hexdigest(),
        )
