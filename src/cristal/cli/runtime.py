"""What every command needs: settings, the database, the acting principal, output.

Commands print results on stdout (exactly one JSON document with ``--json``)
and everything else (progress, notes) on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from sqlalchemy.orm import Session

from cristal.config import Settings, load_settings
from cristal.db import Database
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    return load_settings()


def open_database(cfg: Settings | None = None, *, initialised: bool = True) -> Database:
    cfg = cfg or settings()
    db = Database(cfg.effective_database_url)
    if initialised:
        db.require_initialised()
    return db


@contextmanager
def database() -> Iterator[Database]:
    """The configured, initialised database for the length of a command."""
    db = open_database()
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session on the configured, initialised database; commits on success."""
    with database() as db, db.session() as session:
        yield session


def acting(session: Session, org: str | None, as_email: str | None) -> Principal:
    """``--as EMAIL`` in ``--org``, or the installation operator when ``--as`` is absent."""
    if as_email:
        from cristal.errors import InvalidInput

        if not org:
            raise InvalidInput("--as needs --org")
        return resolve_principal(session, org, as_email)
    return Principal.operator()


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
