"""Connecting the sample company's documents and ERP database as sources.

The documents are copied into the workspace (``$CRISTAL_HOME/sample``) the
first time, so people can edit them and watch ``cristal sync`` pick up the
change; the ERP (``erp/erp.sql``) becomes one SQLite file per organization,
holding only that organization's rows.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.identity.directory import org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.schema import Source
from cristal.sample.company import GROUP

HERE = Path(__file__).parent
DOCUMENTS = HERE / "documents"
ERP_SQL = HERE / "erp" / "erp.sql"
ERP_ACL = "group:finance,group:management"


def copy_documents(home: Path) -> Path:
    target = home / "sample" / "documents"
    if not target.exists():
        shutil.copytree(DOCUMENTS, target, ignore=shutil.ignore_patterns("*.jsonl", "README.md"))
    return target


def build_erp(home: Path, org_slug: str) -> Path:
    """An ERP database file with only ``org_slug``'s rows (rebuilt if missing)."""
    path = home / "sample" / f"erp-{org_slug}.db"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript(ERP_SQL.read_text(encoding="utf-8"))
        for table in ("expenses", "employees", "customers"):
            con.execute(f"DELETE FROM {table} WHERE org <> ?", (org_slug,))
        con.execute("DELETE FROM orders WHERE customer_id NOT IN (SELECT id FROM customers)")
        con.commit()
    finally:
        con.close()
    tmp.replace(path)  # atomic: a half-built database is never picked up
    return path


def connect_sources(session: Session, installation: Principal, home: Path) -> list[tuple[str, str]]:
    """Add the ``documents`` and ``erp`` sources each organization lacks; returns what was added."""
    docs = copy_documents(home)
    added = []
    for company in GROUP:
        org = org_by_slug(session, company.slug)
        have = set(session.scalars(select(Source.name).where(Source.org_id == org.id)))
        if "documents" not in have:
            sources.add_source(session, installation, company.slug, "documents", "files", str(docs / company.slug))
            added.append((company.slug, "documents"))
        if "erp" not in have:
            erp = build_erp(home, company.slug)
            sources.add_source(session, installation, company.slug, "erp", "sql", f"sqlite:///{erp}", acl=ERP_ACL)
            added.append((company.slug, "erp"))
    return added
