"""``cristal webapps``: serve the sample company's internal web apps (expenses, customers) on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cristal.cli.runtime import note, settings
from cristal.errors import InvalidInput

app = typer.Typer()


@app.command("webapps")
def webapps_command(
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0 picks a free one)."),
    reset: bool = typer.Option(False, "--reset", help="Start again from the seed data."),
) -> None:
    """Serve the sample Expenses and Customers apps on loopback until Ctrl-C (the Operator works in them)."""
    from cristal.sample.webapps.server import serve_webapps
    from cristal.sample.webapps.store import seed_database

    if not 0 <= port <= 65535:
        raise InvalidInput(f"invalid port {port}")
    db_path = Path(settings().home) / "webapps.db"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if reset:
        seed_database(db_path, overwrite=True)
    try:
        apps = serve_webapps(db_path, "127.0.0.1", port)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    with apps:
        note("Expenses:  {}\nCustomers: {}\nDatabase:  {}\nSign in as any sample employee, e.g. jonas.becker@aozora-de.example. "
             "Ctrl-C stops.", apps.expenses_url, apps.customers_url, db_path)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
