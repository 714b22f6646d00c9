"""What every command shares: settings, the database, the acting principal, and output.

Commands print results on stdout (exactly one JSON document with ``--json``)
and everything else (progress, notes) on stderr.

Output goes through ``show``, ``note``, ``show_table`` and ``markup`` only. A
template is Rich markup written in this package; every value put into it, and
every table cell, comes from data (names, messages, errors a member may have
chosen) and is shown as plain text, never read as markup. A workflow named
``quarterly [/report]`` is printed as exactly that.

This module is the only part of ``cristal.cli`` the others import, and it
imports the layers below (settings, database, identity) inside its functions:
``cristal --help`` loads Typer and Rich, not SQLAlchemy.
"""

from __future__ import annotations

import json
import string
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn
from rich.table import Column, Table
from rich.text import Text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cristal.config import Settings
    from cristal.db import Database
    from cristal.identity.principal import Principal


JSON = typer.Option(False, "--json", help="Print exactly one JSON document.")


# ---------------------------------------------------------------------------
# Settings, database, principal


def settings() -> Settings:
    from cristal.config import load_settings

    return load_settings()


def open_database(cfg: Settings | None = None, *, initialised: bool = True) -> Database:
    from cristal.db import Database

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
    """``--as EMAIL`` in ``--org``, or the installation principal when ``--as`` is absent."""
    from cristal.errors import InvalidInput
    from cristal.identity.directory import resolve_principal
    from cristal.identity.principal import Principal

    if as_email:
        if not org:
            raise InvalidInput("--as needs --org")
        return resolve_principal(session, org, as_email)
    return Principal.installation()


def initialise() -> dict[str, str]:
    """Create the home folder and bring the database to the newest schema (idempotent)."""
    from cristal.db.engine import redact

    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    db = open_database(cfg, initialised=False)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return {"home": str(cfg.home), "database": redact(db.url), "config_file": str(cfg.config_file)}


# ---------------------------------------------------------------------------
# Output


class _Escaping(string.Formatter):
    """``str.format`` that escapes each formatted value, so only the template is markup."""

    def format_field(self, value: Any, format_spec: str) -> str:
        return escape(super().format_field(value, format_spec))


_ESCAPING = _Escaping()  # stateless


def markup(template: str, *values: object, **named: object) -> str:
    """``template.format(*values, **named)`` with every value escaped: Rich markup safe to print.

    ``template`` is markup written here (``"[bold]{}[/] failed: {}"``); the values are data.
    """
    return _ESCAPING.vformat(template, values, named)


def _console(*, stderr: bool = False) -> Console:
    # A console per call: nothing is kept between commands, and output goes wherever
    # sys.stdout/sys.stderr point now (a pipe, a terminal, a test's capture). No emoji
    # codes or highlighting either: ``:fire:`` in a name stays ``:fire:``.
    return Console(stderr=stderr, soft_wrap=True, highlight=False, emoji=False)


def show(template: str, *values: object) -> None:
    """Print a result line on stdout; see ``markup``."""
    _console().print(markup(template, *values))


def note(template: str, *values: object) -> None:
    """Print a note (not a result) on stderr; see ``markup``."""
    _console(stderr=True).print(markup(template, *values))


def show_text(text: str) -> None:
    """Print ``text`` exactly as it is on stdout (a report, a secret, a model's answer)."""
    _console().print(text, markup=False)


def show_inline(text: str) -> None:
    """Print ``text`` as it is on stdout with no line end, at once (a streamed answer's next piece)."""
    _console().print(text, markup=False, end="")
    sys.stdout.flush()


def cell(value: object) -> Text:
    """A table cell showing ``value`` as plain text; a ``Text`` is kept (its styles were set in code)."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def show_table(
    title: str | None,
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[object]],
    *,
    caption: str | None = None,
    row_style: Callable[[Sequence[object]], str | None] | None = None,
) -> None:
    """Print a table of data on stdout: the title, caption and every cell are plain text (``str(value)``, ``None`` empty).

    ``columns`` are headers or ``rich.table.Column`` objects (for alignment or overflow);
    ``row_style`` may give a style per row, e.g. red for denials.
    """
    result = Table(*columns, title=None if title is None else escape(title),
                   caption=None if caption is None else escape(caption))
    for row in rows:
        result.add_row(*(cell(v) for v in row), style=row_style(row) if row_style else None)
    _console().print(result)


def progress(*columns: str | ProgressColumn, quiet: bool = False, transient: bool = True) -> Progress:
    """A progress display on stderr (off when ``quiet``); task descriptions are built with ``markup``."""
    return Progress(*columns, console=_console(stderr=True), transient=transient, disable=quiet)


def quiet_progress(json_out: bool) -> bool:
    """With ``--json`` into a pipe, progress stays quiet: stderr is then usually a log."""
    return json_out and not _console(stderr=True).is_terminal


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def read_attachment(path: str, max_bytes: int) -> tuple[str, bytes]:
    """A file to attach, as (name, bytes); ``InvalidInput`` when it cannot be read or is over ``max_bytes``
    (checked before it is read)."""
    from pathlib import Path

    from cristal.errors import InvalidInput

    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise InvalidInput(f"cannot attach {file.name}: {size} bytes, more than the {max_bytes} allowed "
                               "(attachment_max_bytes)")
        return file.name, file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot attach {path}: {exc.strerror or type(exc).__name__}") from None
