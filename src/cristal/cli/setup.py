"""``cristal init``: the workspace folder and the database schema."""

from __future__ import annotations

import typer

from cristal.cli.runtime import initialise, note, print_json

app = typer.Typer()


@app.command("init")
def init_command(json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Create the workspace and database (safe to run again)."""
    result = initialise()
    if json_out:
        print_json(result)
    else:
        note("[green]workspace[/] {}", result["home"])
        note("[green]database[/]  {} (schema up to date)", result["database"])
