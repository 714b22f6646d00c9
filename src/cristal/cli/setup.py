"""``cristal init``: the workspace folder and the database schema."""

from __future__ import annotations

import typer

from cristal.cli.app import app
from cristal.cli.runtime import err, open_database, print_json, settings
from cristal.db.engine import redact


def initialise() -> dict:
    """Create the home folder and bring the database to the newest schema (idempotent)."""
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    db = open_database(cfg, initialised=False)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return {"home": str(cfg.home), "database": redact(db.url), "config_file": str(cfg.config_file)}


@app.command("init")
def init_command(json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Create the workspace and database (safe to run again)."""
    result = initialise()
    if json_out:
        print_json(result)
    else:
        err.print(f"[green]workspace[/] {result['home']}")
        err.print(f"[green]database[/]  {result['database']} (schema up to date)")
