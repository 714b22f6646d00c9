"""Removing an organization leaves nothing a later one can see (issue 16, finding 2).

The attack as found: ``cristal serve`` held one search context while an
organization was removed and another created; SQLite handed the new one the
old ids, the cached embedding matrix still looked current, and hits fetched by
chunk id without an organization filter showed an intern with no groups a
``group:payroll`` document that was not theirs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import cristal.research.schema
import cristal.workflows.schema  # noqa: F401
from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.db.schema import Base, LLMUsage, Organization
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Embedding, IndexState
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source
from cristal.workflows.schema import WorkflowStepSlot

from .conftest import INSTALLATION, write_tree

BACKENDS = ("sqlite", "postgres")
MODES = ("hybrid", "keyword", "dense")
QUERY = "salary payroll"


def who(db: Database, org: str, email: str) -> Principal:
    with db.session() as s:
        return resolve_principal(s, org, email)


def org_id(db: Database, slug: str) -> int:
    with db.session() as s:
        return s.scalar(select(Organization.id).where(Organization.slug == slug))


def rows_naming(db: Database, removed: int) -> dict[str, int]:
    """Rows of every table with an ``org_id`` (bar the audit trail, which outlives by design) naming ``removed``."""
    found = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if "org_id" in table.c and table.name != "audit_records":
                count = conn.execute(select(func.count()).select_from(table).where(table.c.org_id == removed)).scalar()
                if count:
                    found[table.name] = count
    return found


def test_a_long_lived_search_context_never_shows_a_removed_or_other_orgs_documents(
    db: Database, cli, tmp_path: Path  # type: ignore[no-untyped-def]  # the cli fixture is an untyped function with an env attribute
) -> None:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "boss@acme.example", groups=["payroll"])
        acme_tree = write_tree(tmp_path / "acme", {"welcome.md": "# Welcome\n\nWelcome to Acme.\n"})
        sources.add_source(s, INSTALLATION, "acme", "hr", "files", str(acme_tree), acl="org")
        orgs.create_org(s, INSTALLATION, "old")
        users.add_user(s, INSTALLATION, "old", "member@old.example")
        sources.add_source(s, INSTALLATION, "old", "wiki", "files", str(write_tree(tmp_path / "old", {
            "salary.md": "# Salary questions\n\nQuestions about the salary and the payroll go to HR.\n",
            "pay/.cristal-acl": "group:payroll\n",
            "pay/bands.md": "# Payroll bands\n\nThe payroll salary bands of Old are 40 to 90 thousand.\n",
        })), acl="org")
    sync_source(db, INSTALLATION, "acme", "hr")
    sync_source(db, INSTALLATION, "old", "wiki")
    with db.session() as s:  # what else an organization owns
        old_id = s.scalar(select(Organization.id).where(Organization.slug == "old"))
        s.add(LLMUsage(org_id=old_id, actor="user:member@old.example@old", kind="chat", model="m", status="ok"))
        s.add(WorkflowStepSlot(org_id=old_id, kind="http", executor_id="x", step_key="k"))

    searcher = Searcher(db)  # what `cristal serve` holds for its whole life
    assert [h.title for h in searcher.search(who(db, "old", "member@old.example"), QUERY)] == ["Salary questions"]
    assert old_id in searcher.dense.cached_orgs()

    assert cli("org", "remove", "old", "--yes").code == 0
    # Meanwhile another organization indexes its payroll (on the old code, into the freed chunk ids).
    write_tree(tmp_path / "acme", {"pay/.cristal-acl": "group:payroll\n",
                                   "pay/ceo.md": "# CEO pay\n\nThe CEO salary on the payroll is 900,000 EUR per year.\n"})
    sync_source(db, INSTALLATION, "acme", "hr")
    assert cli("org", "create", "new").code == 0
    assert cli("user", "add", "intern@new.example", "--org", "new").code == 0

    assert org_id(db, "new") != old_id  # never handed out twice
    assert rows_naming(db, old_id) == {}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding).where(
            ~select(Chunk.id).where(Chunk.embed_hash == Embedding.content_hash).exists())) == 0

    intern = who(db, "new", "intern@new.example")
    for mode in MODES:
        assert searcher.search(intern, QUERY, mode=mode) == [], mode
    assert old_id not in searcher.dense.cached_orgs()  # nothing of the removed organization stays in memory

    # The new organization's own documents are found, and only they.
    write_tree(tmp_path / "new", {"handbook.md": "# Handbook\n\nSalary and payroll questions go to the new HR desk.\n"})
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "new", "wiki", "files", str(tmp_path / "new"), acl="org")
    sync_source(db, INSTALLATION, "new", "wiki")
    for mode in MODES:
        assert [h.title for h in searcher.search(intern, QUERY, mode=mode)] == ["Handbook"], mode
    boss = who(db, "acme", "boss@acme.example")
    assert "CEO pay" in [h.title for h in searcher.search(boss, QUERY)]


def test_a_new_organization_with_a_removed_ones_slug_does_not_see_its_audit_trail(indexed: Database) -> None:
    Searcher(indexed).search(who(indexed, "acme", "hr@acme.example"), "salary bands engineers")
    with indexed.session() as s:
        assert any(r.action == "document.read" for r in query_audit(s, "acme"))
        orgs.delete_org(s, INSTALLATION, "acme")
    with indexed.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "admin@acme.example", role="admin")
    with indexed.session() as s:
        seen = query_audit(s, "acme")
        new_id = s.scalar(select(Organization.id).where(Organization.slug == "acme"))
    assert seen and all(r.org_id in (None, new_id) for r in seen)
    assert not any(r.action in ("document.read", "knowledge.search") for r in seen)


def test_hits_are_checked_again_whatever_the_cached_matrix_says(indexed: Database) -> None:
    """An id is never trusted alone: a change the cache has not seen can hide a hit, never show one."""
    searcher = Searcher(indexed)
    fin = who(indexed, "acme", "fin@acme.example")
    assert "Q3 results" in [h.title for h in searcher.search(fin, "revenue Q3", mode="dense")]
    with indexed.session() as s:
        q3 = s.scalar(select(Document.id).where(Document.title == "Q3 results"))
        travel = s.scalar(select(Document.id).where(Document.title == "Travel policy"))
        globex = s.scalar(select(Organization.id).where(Organization.slug == "globex"))
        # Behind the cache's back (no index token change): one document loses its access rule,
        # another is moved to another organization.
        s.execute(DocumentAccess.__table__.delete().where(DocumentAccess.doc_id == q3))
        s.execute(Chunk.__table__.update().where(Chunk.doc_id == travel).values(org_id=globex))
    assert "Q3 results" not in [h.title for h in searcher.search(fin, "revenue Q3", mode="dense")]
    assert "Travel policy" not in [h.title for h in searcher.search(fin, "hotel Munich per night", mode="dense")]
    admin = who(indexed, "acme", "admin@acme.example")
    assert "Travel policy" not in [h.title for h in searcher.search(admin, "hotel Munich per night", mode="dense")]


@pytest.mark.parametrize("removed_last", [True, False])
def test_upgrading_an_existing_database_keeps_its_data_and_drops_the_leftovers(
    db_url: str, tmp_path: Path, removed_last: bool
) -> None:
    db = Database(db_url)
    db.upgrade("0006")
    tree = write_tree(tmp_path / "docs", {"a.md": "# Hotels\n\nHotels in Munich cost 150 EUR.\n"})
    # Organizations are written as the old schema has them (the ORM's table has the columns of later revisions).
    with db.engine.begin() as conn:
        for slug in ("acme", "gone") + (() if removed_last else ("zeta",)):
            conn.execute(text("INSERT INTO organizations (slug, name, created_at) VALUES (:s, :s, '2024-01-01')"), {"s": slug})
        conn.execute(text("INSERT INTO users (org_id, email, role, created_at) VALUES "
                          "((SELECT id FROM organizations WHERE slug = 'acme'), 'a@acme.example', 'member', '2024-01-01')"))
    with db.engine.begin() as conn:  # what the old schema let an org removal leave behind
        gone = conn.execute(text("SELECT id FROM organizations WHERE slug = 'gone'")).scalar()
        conn.execute(text("INSERT INTO index_state (org_id, generation) VALUES (:g, 7)"), {"g": gone})
        conn.execute(text("INSERT INTO sources (org_id, name, kind, uri, options, created_at) "
                          "VALUES ((SELECT id FROM organizations WHERE slug = 'acme'), 'wiki', 'files', :u, '{}', '2024-01-01')"),
                     {"u": str(tree)})
        conn.execute(text("DELETE FROM organizations WHERE slug = 'gone'"))
    db.upgrade()
    with db.session() as s:
        assert s.scalars(select(Organization.slug).order_by(Organization.id)).all() == ["acme"] + ([] if removed_last else ["zeta"])
        assert s.scalar(select(func.count()).select_from(IndexState).where(IndexState.org_id == gone)) == 0
        assert [i.name for i in sources.list_sources(s, INSTALLATION, "acme")] == ["wiki"]
    sync_source(db, INSTALLATION, "acme", "wiki")
    searcher = Searcher(db)
    assert [h.title for h in searcher.search(who(db, "acme", "a@acme.example"), "hotel Munich")] == []  # admins only
    with db.session() as s:
        users.add_user(s, INSTALLATION, "acme", "boss@acme.example", role="admin")
        orgs.create_org(s, INSTALLATION, "next")
    assert org_id(db, "next") > gone
    assert [h.title for h in searcher.search(who(db, "acme", "boss@acme.example"), "hotel Munich")] == ["Hotels"]
    if db.is_sqlite:
        with db.engine.begin() as conn:  # the keyword index survived the table rebuild, and foreign keys are on
            conn.exec_driver_sql("INSERT INTO chunk_fts(chunk_fts) VALUES ('integrity-check')")
            conn.exec_driver_sql("INSERT INTO chunk_tri(chunk_tri) VALUES ('integrity-check')")
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    acme = org_id(db, "acme")
    with db.session() as s:
        orgs.delete_org(s, INSTALLATION, "acme")
    assert rows_naming(db, acme) == {}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0
        assert s.scalar(select(func.count()).select_from(IndexState)) == 0
    db.dispose()
