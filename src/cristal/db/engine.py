"""The database handle: one engine per URL, sessions, and schema upgrades.

SQLite is opened in WAL mode with a busy timeout (readers never block the
writer, and concurrent CLI processes wait instead of failing); PostgreSQL is
reached through psycopg 3 whatever spelling of the URL the user gave.
``Database.exclusive`` is a lock shared by every process on the database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from filelock import FileLock, Timeout
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from cristal.errors import Busy, DatabaseError

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """An engine plus a session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise DatabaseError(f"invalid database URL {url!r}") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # Where an SQLite database keeps its lock files; None for an in-memory one (one process only).
        self._lock_dir: Path | None = None
        self._local_locks: dict[str, threading.Lock] = {}
        self._local_locks_guard = threading.Lock()
        kwargs: dict = {"future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_dir = path.with_name(path.name + ".locks")
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise DatabaseError(f"cannot use database URL {redact(self.url)}: {exc}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Things built once per database and used for its life (the durable runtime's client and
        # caches): they belong to this object, not to a module, so two databases never share one.
        self._attached: dict[str, Any] = {}
        self._attached_guard = threading.RLock()  # a build may attach what it needs (a client, its migration)

    def check(self) -> None:
        """Connect once, turning driver errors into a one-line message."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", exc)).strip()
            reason = detail.splitlines()[0] if detail else type(exc).__name__
            raise DatabaseError(f"cannot reach database {redact(self.url)}: {reason}") from None

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to the newest migration (idempotent), or to ``revision``."""
        from alembic import command
        from alembic.config import Config

        self.check()
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.connect() as conn:
            try:
                if self.is_sqlite:
                    # SQLite changes a table by rebuilding it, and dropping the old one
                    # with foreign keys on would cascade-delete every row that references
                    # it. The pragma is ignored inside a transaction, hence before it, and checked.
                    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                    conn.commit()
                    if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
                        raise DatabaseError("cannot turn off foreign keys for the schema upgrade")
                    conn.commit()
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    if self.is_sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise DatabaseError("the schema upgrade would leave rows that reference missing rows")
            finally:
                if self.is_sqlite:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()

    def is_initialised(self) -> bool:
        try:
            return inspect(self.engine).has_table("alembic_version")
        except OperationalError:
            return False

    def require_initialised(self) -> None:
        self.check()
        if not self.is_initialised():
            raise DatabaseError("the database is not initialised: run `cristal init` first")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def exclusive(self, name: str, busy: str) -> Iterator[None]:
        """Hold the lock ``name`` for the block, or raise ``Busy(busy)`` at once if anyone holds it.

        Every process on the database shares the lock, and it goes with its
        holder, even one killed with SIGKILL: on PostgreSQL it is an advisory
        lock on a connection of its own, on SQLite a lock file beside the
        database that the operating system releases.
        """
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        if not self.is_sqlite:
            key = int.from_bytes(digest[:8], "big", signed=True)
            with self.engine.connect() as conn:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()  # a session-level lock: it outlives the transaction, not the connection
                if not got:
                    raise Busy(busy)
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        if self._lock_dir is None:
            with self._local_locks_guard:
                local = self._local_locks.setdefault(name, threading.Lock())
            if not local.acquire(blocking=False):
                raise Busy(busy)
            try:
                yield
            finally:
                local.release()
            return
        self._lock_dir.mkdir(exist_ok=True)
        lock = FileLock(self._lock_dir / f"{digest.hex()[:32]}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise Busy(busy) from None
        try:
            yield
        finally:
            lock.release()

    def attached(self, key: str, build: Callable[[], T]) -> T:
        """The object stored under ``key`` for this database, built by ``build()`` the first time."""
        with self._attached_guard:
            if key not in self._attached:
                self._attached[key] = build()
            return cast(T, self._attached[key])

    def dispose(self) -> None:
        with self._attached_guard:
            attached, self._attached = list(self._attached.values()), {}
        for value in attached:
            close = getattr(value, "destroy", None) or getattr(value, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - disposing must not fail on what an attachment does
                    pass
        self.engine.dispose()
