"""The SQL connector: tables and views of a database (any SQLAlchemy URL) as searchable records.

Each table or view gives one schema document (its columns and types) and one
record document per row (``column: value`` lines), up to ``max_rows`` rows per
table. The database is only ever opened read-only; later workflow steps query
it through ``readonly_engine`` as well.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import MetaData, Table, create_engine, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cristal.db.engine import normalize_url, redact
from cristal.errors import InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.language import detect_language
from cristal.knowledge.parse.document import Block, ParsedDocument

DEFAULT_MAX_ROWS = 10_000


def readonly_engine(uri: str) -> Engine:
    """An engine that cannot write: SQLite opened with ``mode=ro``, PostgreSQL in read-only transactions."""
    url_text = normalize_url(uri)
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise InvalidInput(f"invalid database URL {uri!r}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInput("an SQL source needs a database file, not an in-memory database")
        engine = create_engine(f"sqlite:///file:{url.database}?mode=ro&uri=true")
    elif backend == "postgresql":
        engine = create_engine(url, connect_args={"connect_timeout": 10, "options": "-c default_transaction_read_only=on"})
    else:
        # Other databases need their own read-only guard and driver: one module each, when a customer needs it.
        raise InvalidInput(f"unsupported database {backend!r}: SQL sources are SQLite or PostgreSQL URLs")
    return engine


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
                except SQLAlchemyError as exc:
                    # The database failed mid-sync: keep what was indexed for this table.
                    self.scope.unseen_prefixes.append(f"{name}/")
                    self.scope.unseen_prefixes.append(name)
                    yield ScanProblem(name, f"cannot read {kind} ({str(getattr(exc, 'orig', exc)).strip().splitlines()[0]})")
        finally:
            engine.dispose()

    def _table(self, engine: Engine, inspector, name: str, kind: str) -> Iterator[Item]:  # type: ignore[no-untyped-def]
        columns = inspector.get_columns(name)
        pk = [] if kind == "view" else inspector.get_pk_constraint(name).get("constrained_columns", [])
        table = Table(name, MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(select(table).limit(self.max_rows)).mappings().all()
        schema_lines = [f"{c['name']}: {c['type']}" + (" (primary key)" if c["name"] in pk else "") for c in columns]
        schema_lines.append(f"rows: {len(rows)}{'+' if len(rows) == self.max_rows else ''}")
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
