"""CLI test helpers: the command line run in this process.

``cli_in_process`` runs exactly what ``python -m cristal ARGS`` runs
(``cristal.cli.app.run``: the composed Typer app and its one-line error
handling) inside Typer's ``CliRunner`` isolation, which captures stdout and
stderr. Use it where a new interpreter proves nothing more; the ``cli``
fixture (a real process) stays for what only a process shows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from cristal.cli.app import run
from tests.conftest import CliResult

Invoke = Callable[..., CliResult]  # invoke("workflow", "list", ...) -> CliResult


@pytest.fixture
def cli_in_process(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("CRISTAL_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "240")  # wide enough that table cells are not wrapped mid-name
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> CliResult:
        with runner.isolation(input=input) as (stdout, stderr, _output):
            code = run(args)
            sys.stdout.flush()
            sys.stderr.flush()
            return CliResult(code, stdout.getvalue().decode(), stderr.getvalue().decode())

    return invoke
