"""Sync and search together: incremental sync, access filtering that never leaks, three languages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cristal.db import Database
from cristal.errors import AccessDenied, InvalidInput
from cristal.identity import users
from cristal.identity.authorize import decide
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.knowledge.schema import Chunk, Document
from cristal.knowledge.search import Scope, Searcher
from cristal.knowledge.sync import sync_source

from .conftest import INSTALLATION

BACKENDS = ("sqlite", "postgres")  # the embedded index and the PostgreSQL path

QUERIES = [
    "hotel Munich per night", "Garantiezeit Luftreiniger", "warranty period air purifier Germany",
    "Abrechnung", "出張旅費の精算", "宿泊費の上限", "IBAN supplier payment", "revenue Q3", "salary bands engineers",
    "acquisition board", "Osaka office", "EUR", "policy",
]
PEOPLE = [("acme", e) for e in ("admin@acme.example", "fin@acme.example", "eng@acme.example", "hr@acme.example")] + [
    ("globex", "fin@globex.example")
]


def who(db: Database, org: str, email: str) -> Principal:
    with db.session() as s:
        return resolve_principal(s, org, email)


def titles(hits) -> list[str]:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    return [h.title for h in hits]


def assert_no_leak(db: Database, searcher: Searcher) -> int:
    """Every hit of every query in every mode is a document its searcher may read."""
    checked = 0
    for (org, email), query, mode in itertools.product(PEOPLE, QUERIES, ("hybrid", "keyword", "dense")):
        principal = who(db, org, email)
        for hit in searcher.search(principal, query, limit=20, mode=mode):
            with db.session() as s:
                doc = s.get(Document, hit.doc_id)
                resource = Resource("document", doc.org_id, str(doc.id), acl=tuple(doc.acl) if doc.acl else None)
            assert decide(principal, "document.read", resource), f"{email} saw {hit.title} for {query!r} ({mode})"
            checked += 1
    return checked


def test_each_user_sees_exactly_what_they_may(indexed: Database) -> None:
    searcher = Searcher(indexed)
    fin = who(indexed, "acme", "fin@acme.example")
    eng = who(indexed, "acme", "eng@acme.example")
    admin = who(indexed, "acme", "admin@acme.example")
    assert "Q3 results" in titles(searcher.search(fin, "revenue Q3"))
    assert "Q3 results" not in titles(searcher.search(eng, "revenue Q3"))
    assert "Salary bands" in titles(searcher.search(eng, "salary bands"))  # user: rule
    assert "Salary bands" not in titles(searcher.search(fin, "salary bands"))
    # No .cristal-acl and no source default: admins only.
    assert "Board minutes" in titles(searcher.search(admin, "acquisition board"))
    assert "Board minutes" not in titles(searcher.search(fin, "acquisition board"))
    assert assert_no_leak(indexed, searcher) > 100


def test_a_scope_only_narrows(indexed: Database) -> None:
    """An agent's knowledge scope (sources, folder prefixes) narrows the hits, never widens the reader's access."""
    searcher = Searcher(indexed)
    admin = who(indexed, "acme", "admin@acme.example")
    eng = who(indexed, "acme", "eng@acme.example")
    assert "Q3 results" in titles(searcher.search(admin, "revenue Q3", mode="keyword"))
    public = Scope(sources=("wiki",), paths=("public/",))
    for mode in ("hybrid", "keyword", "dense"):
        hits = searcher.search(admin, "revenue Q3 hotel Munich IBAN", mode=mode, scope=public)
        assert hits and all("/public/" in h.uri for h in hits), mode
    assert titles(searcher.search(admin, "revenue Q3", scope=Scope(sources=("nonesuch",)))) == []
    # The scope names a folder the member may not read: still nothing of it.
    assert titles(searcher.search(eng, "revenue Q3", mode="keyword", scope=Scope(paths=("finance/",)))) == []
    # A path is a prefix, not a pattern: "%" and "_" match themselves.
    assert searcher.search(admin, "hotel Munich", mode="keyword", scope=Scope(paths=("publi%",))) == []
    assert "Salary bands" in titles(searcher.search(eng, "salary bands", mode="keyword", scope=Scope(paths=("hr/",))))


def test_organizations_never_see_each_other(indexed: Database) -> None:
    searcher = Searcher(indexed)
    for hit in searcher.search(who(indexed, "globex", "admin@globex.example"), "hotel Munich travel policy", limit=50):
        assert hit.title == "Globex plan"
    for hit in searcher.search(who(indexed, "acme", "admin@acme.example"), "Globex Osaka office", limit=50):
        assert hit.title != "Globex plan"


def test_multilingual_and_cross_lingual(indexed: Database) -> None:
    searcher = Searcher(indexed)
    fin = who(indexed, "acme", "fin@acme.example")
    assert titles(searcher.search(fin, "出張旅費の精算", mode="keyword"))[0] == "出張規程"
    assert titles(searcher.search(fin, "Garantiezeit Luftreiniger", mode="keyword"))[0] == "Garantiebedingungen"
    # German compound part: "Abrechnung" inside "Reisekostenabrechnungen".
    assert "reise" in titles(searcher.search(fin, "Abrechnung", mode="keyword"))
    # English question, German document: only the dense retriever can bridge it.
    assert titles(searcher.search(fin, "How long is the warranty for air purifiers in Germany?", mode="dense"))[0] == "Garantiebedingungen"
    assert "Garantiebedingungen" in titles(searcher.search(fin, "How long is the warranty for air purifiers in Germany?")[:3])


def test_hit_shape_and_exact_spans(indexed: Database) -> None:
    hit = Searcher(indexed).search(who(indexed, "acme", "fin@acme.example"), "per diem meals")[0]
    assert set(hit.as_dict()) == {"doc_id", "chunk_id", "title", "uri", "score", "snippet", "lang"}
    assert hit.uri.startswith("file://") and hit.lang == "en" and hit.heading.endswith("Meals")
    with indexed.session() as s:
        doc = s.get(Document, hit.doc_id)
        assert doc.text[hit.start:hit.end] == hit.text


def test_group_and_rule_changes_apply_without_reindexing(indexed: Database, company_docs: Path) -> None:
    searcher = Searcher(indexed)
    assert "Q3 results" not in titles(searcher.search(who(indexed, "acme", "eng@acme.example"), "revenue Q3"))
    with indexed.session() as s:
        users.join_group(s, INSTALLATION, "acme", "eng@acme.example", "finance")
    assert "Q3 results" in titles(searcher.search(who(indexed, "acme", "eng@acme.example"), "revenue Q3"))
    with indexed.session() as s:
        users.leave_group(s, INSTALLATION, "acme", "fin@acme.example", "finance")
    assert "Q3 results" not in titles(searcher.search(who(indexed, "acme", "fin@acme.example"), "revenue Q3"))

    with indexed.session() as s:
        chunks_before = s.scalar(select(func.max(Chunk.id)))
    (company_docs / "finance" / ".cristal-acl").write_text("group:engineering\n")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert report.access_changed == 2 and report.updated == 0 and report.added == 0
    with indexed.session() as s:
        assert s.scalar(select(func.max(Chunk.id))) == chunks_before  # nothing re-chunked
    users_hits = titles(searcher.search(who(indexed, "acme", "hr@acme.example"), "revenue Q3"))
    assert "Q3 results" not in users_hits
    assert assert_no_leak(indexed, searcher) > 0


def test_incremental_sync(indexed: Database, company_docs: Path) -> None:
    again = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert (again.added, again.updated, again.deleted, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == 8
    (company_docs / "public" / "travel.md").write_text("# Travel policy\n\nHotels in Munich may cost up to 180 EUR per night.\n")
    (company_docs / "public" / "reise.txt").unlink()
    (company_docs / "public" / "new.md").write_text("# Parking\n\nParking at HQ is free for visitors.\n")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert (report.added, report.updated, report.deleted) == (1, 1, 1)
    fin = who(indexed, "acme", "fin@acme.example")
    hits = Searcher(indexed).search(fin, "hotel Munich per night", mode="keyword")
    assert "180 EUR" in hits[0].text
    assert all("150 EUR" not in h.text for h in hits if h.title == "Travel policy")
    assert "reise" not in titles(Searcher(indexed).search(fin, "Reisekostenabrechnungen", mode="keyword"))


def test_interrupted_sync_converges_to_the_same_index(two_orgs: Database, company_docs: Path, tmp_path: Path) -> None:
    from cristal.knowledge import sources

    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(company_docs))

    class Killed(Exception):
        pass

    def die_after_three(phase: str, done: int, total: int) -> None:
        if phase == "index" and done == 3:
            raise Killed

    with pytest.raises(Killed):
        sync_source(two_orgs, INSTALLATION, "acme", "wiki", progress=die_after_three)
    sync_source(two_orgs, INSTALLATION, "acme", "wiki")

    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.upgrade()
    with fresh.session() as s:
        from cristal.identity import orgs

        orgs.create_org(s, INSTALLATION, "acme")
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(company_docs))
    sync_source(fresh, INSTALLATION, "acme", "wiki")

    def state(db: Database) -> list[tuple]:
        with db.session() as s:
            return sorted(
                (d.external_id, d.content_hash, tuple(d.acl or ()),
                 tuple(s.scalars(select(Chunk.terms).where(Chunk.doc_id == d.id).order_by(Chunk.ord))))
                for d in s.scalars(select(Document))
            )

    assert state(two_orgs) == state(fresh)
    fresh.dispose()


def test_bad_files_are_reported_and_the_rest_is_indexed(indexed: Database, company_docs: Path) -> None:
    (company_docs / "public" / "empty.md").write_bytes(b"")
    (company_docs / "public" / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (company_docs / "public" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (company_docs / "public" / "loop").symlink_to(company_docs / "public", target_is_directory=True)
    (company_docs / "public" / "later.md").write_text("# Later\n\nA new document after the bad ones.\n")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    reasons = {p["id"]: p["reason"] for p in report.skipped}
    assert set(reasons) == {"public/empty.md", "public/binary.txt", "public/broken.pdf", "public/loop"}
    assert reasons["public/loop"] == "symbolic link, not followed"
    assert report.added == 1 and report.deleted == 0


def test_huge_files_are_skipped_unread_and_old_versions_kept(indexed: Database, company_docs: Path) -> None:
    with open(company_docs / "public" / "huge.txt", "wb") as fh:
        fh.truncate(60 * 1024 * 1024)  # sparse: 60 MB without writing them
    with open(company_docs / "finance" / "q3.md", "ab") as fh:
        fh.truncate(55 * 1024 * 1024)
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    reasons = {p["id"]: p["reason"] for p in report.skipped}
    assert reasons["public/huge.txt"].startswith("file too large: 63 MB > 52 MB")
    assert "finance/q3.md" in reasons and report.deleted == 0
    assert "Q3 results" in titles(Searcher(indexed).search(who(indexed, "acme", "fin@acme.example"), "revenue Q3"))


def test_a_corrupted_update_keeps_the_previous_version(indexed: Database, company_docs: Path) -> None:
    (company_docs / "finance" / "q3.md").write_bytes(b"\x00\x01\x02binary garbage" * 50)
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert [p["id"] for p in report.skipped] == ["finance/q3.md"] and report.deleted == 0
    assert "Q3 results" in titles(Searcher(indexed).search(who(indexed, "acme", "fin@acme.example"), "revenue Q3"))


def test_unreadable_folder_keeps_its_documents(indexed: Database, company_docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import cristal.knowledge.connectors.files as files_connector

    real_walk = os.walk
    hr = str(company_docs / "hr")

    def walk_with_unreadable_hr(top, onerror=None, followlinks=False):  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
        # Root reads any folder, so the permission error is injected where os.walk reports it.
        for folder, dirs, names in real_walk(top, onerror=onerror, followlinks=followlinks):
            if "hr" in dirs:
                dirs.remove("hr")
                onerror(PermissionError(13, "Permission denied", hr))
            yield folder, dirs, names

    monkeypatch.setattr(files_connector.os, "walk", walk_with_unreadable_hr)
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert report.deleted == 0 and report.kept_unseen == 1
    assert {"id": "hr", "reason": "unreadable folder (Permission denied)"} in report.skipped


def test_search_input_and_permissions(indexed: Database) -> None:
    searcher = Searcher(indexed)
    fin = who(indexed, "acme", "fin@acme.example")
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(InvalidInput):
            searcher.search(fin, bad)
    with pytest.raises(AccessDenied):
        searcher.search(Principal.installation("ops"), "anything")
    with pytest.raises(AccessDenied):
        sync_source(indexed, fin, "acme", "wiki")  # members cannot run syncs


def test_keyword_only_sync_then_embed_later(two_orgs: Database, company_docs: Path) -> None:
    from cristal.knowledge import sources

    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(company_docs), acl="org")
    first = sync_source(two_orgs, INSTALLATION, "acme", "wiki", embed=False)
    assert first.embedded == 0
    fin = who(two_orgs, "acme", "fin@acme.example")
    assert Searcher(two_orgs).search(fin, "hotel Munich", mode="keyword")
    assert Searcher(two_orgs).search(fin, "hotel Munich", mode="dense") == []
    second = sync_source(two_orgs, INSTALLATION, "acme", "wiki")
    assert second.embedded > 0 and second.unchanged == 8
    assert Searcher(two_orgs).search(fin, "hotel Munich", mode="dense")
