"""Functions that workflow python steps call in the tests: side effects recorded in a SQLite ledger.

``calls`` records every invocation; ``effects`` applies each idempotency key once
(``INSERT OR IGNORE`` on a unique key), as a real idempotent consumer would.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def _ledger(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT, name TEXT)")
    con.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, name TEXT)")
    return con


def effect(name: str, ledger: str, idempotency_key: str) -> dict:
    con = _ledger(ledger)
    try:
        con.execute("INSERT INTO calls VALUES (?, ?)", (idempotency_key, name))
        con.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (idempotency_key, name))
    finally:
        con.close()
    return {"name": name, "key": idempotency_key}


def effect_then_wait(name: str, ledger: str, gate: str, idempotency_key: str) -> dict:
    """Apply the effect, then block until ``gate`` exists: a kill here lands after the effect, before the checkpoint."""
    result = effect(name, ledger, idempotency_key)
    deadline = time.monotonic() + 300
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("gate never opened")
        time.sleep(0.05)
    return result


def big(size: int) -> str:
    return "x" * int(size)


def echo(**values: object) -> dict:
    """The arguments as the step received them (dates in YAML arrive as text)."""
    return {k: [type(v).__name__, v] for k, v in values.items()}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def occupy(ledger: str, hold: float, idempotency_key: str) -> dict:
    """Count how many calls are inside at once (a gauge updated atomically under SQLite's write lock)."""
    con = _ledger(ledger)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS gauge (id INTEGER PRIMARY KEY, inside INTEGER, peak INTEGER)")
        con.execute("CREATE TABLE IF NOT EXISTS starts (key TEXT, at REAL)")
        con.execute("INSERT OR IGNORE INTO gauge VALUES (1, 0, 0)")
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE gauge SET inside = inside + 1, peak = max(peak, inside + 1) WHERE id = 1")
        con.execute("INSERT INTO starts VALUES (?, ?)", (idempotency_key, time.time()))
        con.execute("INSERT INTO calls VALUES (?, 'occupy')", (idempotency_key,))
        con.execute("COMMIT")
        time.sleep(float(hold))
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE gauge SET inside = inside - 1 WHERE id = 1")
        con.execute("COMMIT")
    finally:
        con.close()
    return {"key": idempotency_key}
