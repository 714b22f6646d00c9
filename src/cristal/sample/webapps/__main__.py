"""Run the sample web apps by hand: ``python -m cristal.sample.webapps --db PATH --port N``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cristal.sample.webapps.server import serve_webapps
from cristal.sample.webapps.store import seed_database


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cristal.sample.webapps", description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("aozora-webapps.db"), help="SQLite file (seeded if new)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--reset", action="store_true", help="start again from the seed data")
    args = parser.parse_args(argv)
    if args.reset:
        seed_database(args.db, overwrite=True)
    with serve_webapps(args.db, args.host, args.port) as apps:
        print(f"Expenses:  {apps.expenses_url}\nCustomers: {apps.customers_url}\n"
              f"Database:  {args.db}\nSign in as e.g. jonas.becker@aozora-de.example. Ctrl-C stops.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
