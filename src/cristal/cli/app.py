"""The ``cristal`` entry point: builds the Typer app and turns errors into one line."""

from __future__ import annotations

import os
import sys

import typer

from cristal.errors import CristalError

app = typer.Typer(
    name="cristal",
    help="Cristal: self-hosted enterprise AI over your company's own knowledge, apps and workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command group lives in its own module and adds itself to ``app``.
    from cristal.cli import admin, audit, demo, knowledge, operator, research, serve, setup, usage, webapps, workflows  # noqa: F401


def _usage_error(exc: Exception) -> tuple[str, int] | None:
    """Click's usage errors (missing argument, unknown command) as one line.

    Typer vendors Click privately, so they are recognised by shape.
    """
    if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return f"{exc.format_message()}{hint}", exc.exit_code  # type: ignore[attr-defined]
    return None


def main() -> None:
    """Console-script entry: no tracebacks for anything a user can cause."""
    _register()
    try:
        result = app(standalone_mode=False)
    except CristalError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI contract
        usage = _usage_error(exc)
        if usage is not None:
            typer.echo(f"error: {usage[0]}", err=True)
            sys.exit(usage[1])
        if type(exc).__name__ == "Abort":
            typer.echo("error: aborted", err=True)
            sys.exit(130)
        if os.environ.get("CRISTAL_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        typer.echo(f"error: internal error ({type(exc).__name__}: {first}); set CRISTAL_DEBUG=1 for details", err=True)
        sys.exit(70)
    sys.exit(result if isinstance(result, int) else 0)
