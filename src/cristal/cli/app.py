"""The ``cristal`` entry point: composes the command modules' Typer apps and turns errors into one line.

Each command module (``setup``, ``demo``, ``admin`` ...) exposes its own ``app``
and imports only Typer, Rich and ``cristal.cli.runtime`` at the top; the layers
below are imported inside the commands. So ``cristal --help`` starts without
loading SQLAlchemy, numpy, the ``openai`` client or Playwright, and a command
loads only what it uses.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from cristal.cli import (
    admin,
    agents,
    audit,
    chat,
    demo,
    environments,
    knowledge,
    mcp,
    operator,
    research,
    serve,
    setup,
    usage,
    webapps,
    workflows,
)
from cristal.errors import CristalError

app = typer.Typer(
    name="cristal",
    help="Cristal: self-hosted enterprise AI over your company's own knowledge, apps and workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Unnamed, so each module's commands and groups appear at the top level, in this order.
for _module in (setup, demo, admin, knowledge, research, operator, workflows, agents, chat, mcp, environments, serve, webapps, audit,
                usage):
    app.add_typer(_module.app)


def _usage_error(exc: Exception) -> tuple[str, int] | None:
    """Click's usage errors (missing argument, unknown command) as one line.

    Typer vendors Click privately, so they are recognised by shape.
    """
    if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return f"{exc.format_message()}{hint}", exc.exit_code  # type: ignore[attr-defined]  # a Click exception, recognised by shape
    return None


def _debug() -> bool:
    """The ``debug`` setting (``CRISTAL_DEBUG``); off when the settings themselves cannot be read."""
    from cristal.config import load_settings
    from cristal.errors import ConfigError

    try:
        return load_settings().debug
    except ConfigError:
        return False


def run(args: Sequence[str] | None = None) -> int:
    """Run the command line on ``args`` (default: ``sys.argv[1:]``) and return its exit status.

    Nothing a user can cause ends in a traceback: errors are one line on stderr.
    """
    try:
        result = app(args=None if args is None else list(args), standalone_mode=False)
    except CristalError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:  # the last line of defence of the CLI contract
        usage = _usage_error(exc)
        if usage is not None:
            typer.echo(f"error: {usage[0]}", err=True)
            return usage[1]
        if type(exc).__name__ == "Abort":
            typer.echo("error: aborted", err=True)
            return 130
        if _debug():
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        typer.echo(f"error: internal error ({type(exc).__name__}: {first}); set CRISTAL_DEBUG=1 for details", err=True)
        return 70
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry (``cristal``, ``python -m cristal``)."""
    sys.exit(run())
