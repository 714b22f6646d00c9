"""``cristal --help`` and ``cristal search`` load only what they use (issue 17, item 7).

Each command runs in a real interpreter under ``python -X importtime``, whose
report names every module the process imported, however it exits.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.sync import sync_source

INSTALLATION = Principal.installation("test-operator")
# The model client, the browser, vectors, the durable engine and the web server: none is needed to list commands.
# SQLAlchemy neither: it is most of what is left of the start-up time once the others are gone.
HEAVY = ("openai", "playwright", "numpy", "dbos", "fastapi", "sqlalchemy")
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", re.MULTILINE)


def imported(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m cristal ARGS``: the finished process and the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cristal", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    return proc, {name.split(".")[0] for name in _IMPORTED.findall(proc.stderr)}


def test_help_imports_no_heavy_dependency() -> None:
    proc, packages = imported("--help")
    assert proc.returncode == 0 and "search" in proc.stdout
    assert {"cristal", "typer", "rich"} <= packages  # the report was read
    assert packages.isdisjoint(HEAVY), sorted(packages.intersection(HEAVY))


def test_a_group_help_imports_no_heavy_dependency() -> None:
    proc, packages = imported("workflow", "--help")
    assert proc.returncode == 0 and "deploy" in proc.stdout
    assert packages.isdisjoint(HEAVY), sorted(packages.intersection(HEAVY))


@pytest.fixture
def indexed(db: Database, db_url: str, tmp_path: Path) -> dict[str, str]:
    """An organization whose folder is indexed for keyword search; the environment that points the CLI at it."""
    folder = tmp_path / "wiki"
    folder.mkdir()
    (folder / "travel.md").write_text("# Travel\n\nThe hotel limit in Munich is 180 EUR a night.\n", encoding="utf-8")
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "eng@acme.example")
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(folder), acl="org")
    sync_source(db, INSTALLATION, "acme", "wiki", embed=False)
    return {"CRISTAL_DATABASE_URL": db_url}


def test_keyword_search_imports_neither_numpy_nor_the_model_client_nor_the_browser(indexed: dict[str, str]) -> None:
    proc, packages = imported("search", "hotel limit", "--org", "acme", "--as", "eng@acme.example", "--mode", "keyword",
                              "--json", env=indexed)
    assert proc.returncode == 0 and '"title": "Travel"' in proc.stdout, proc.stderr[-2000:]
    assert "sqlalchemy" in packages  # it did search
    assert not packages & {"openai", "playwright", "numpy", "dbos", "fastapi"}, sorted(packages & set(HEAVY))


def test_hybrid_search_uses_numpy_but_neither_the_model_client_nor_the_browser(indexed: dict[str, str]) -> None:
    proc, packages = imported("search", "hotel limit", "--org", "acme", "--as", "eng@acme.example", "--json", env=indexed)
    assert proc.returncode == 0 and '"title": "Travel"' in proc.stdout, proc.stderr[-2000:]
    assert "numpy" in packages  # the query was embedded for the dense half
    assert not packages & {"openai", "playwright", "dbos", "fastapi"}, sorted(packages & set(HEAVY))
