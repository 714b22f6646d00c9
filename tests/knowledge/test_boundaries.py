"""Every public function of the knowledge layer, called across organizations and permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.errors import AccessDenied
from cristal.identity.directory import resolve_principal
from cristal.knowledge import sources
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source

from .conftest import INSTALLATION

BACKENDS = ("sqlite", "postgres")


def who(db: Database, org: str, email: str):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with db.session() as s:
        return resolve_principal(s, org, email)


CALLS = {
    "add_source": lambda db, p, path: _in_session(db, lambda s: sources.add_source(s, p, "globex", "x", "files", str(path))),
    "list_sources": lambda db, p, path: _in_session(db, lambda s: sources.list_sources(s, p, "globex")),
    "remove_source": lambda db, p, path: _in_session(db, lambda s: sources.remove_source(s, p, "globex", "wiki")),
    "sync_source": lambda db, p, path: sync_source(db, p, "globex", "wiki"),
}


def _in_session(db: Database, fn):  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    with db.session() as s:
        return fn(s)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_admin_of_another_org_is_refused_and_audited(indexed: Database, company_docs: Path, call: str) -> None:
    intruder = who(indexed, "acme", "admin@acme.example")
    with pytest.raises(AccessDenied):
        CALLS[call](indexed, intruder, company_docs)
    with indexed.session() as s:
        assert [i.name for i in sources.list_sources(s, INSTALLATION, "globex")] == ["wiki"]
        assert any(r.actor == intruder.label for r in query_audit(s, "globex", decision="deny"))


@pytest.mark.parametrize("call", sorted(CALLS))
def test_members_cannot_manage_sources(indexed: Database, company_docs: Path, call: str) -> None:
    member = who(indexed, "globex", "fin@globex.example")
    with pytest.raises(AccessDenied, match="admin"):
        CALLS[call](indexed, member, company_docs)


def test_searches_are_audited_with_the_documents_returned(indexed: Database) -> None:
    fin = who(indexed, "acme", "fin@acme.example")
    hits = Searcher(indexed).search(fin, "revenue Q3")
    with indexed.session() as s:
        records = query_audit(s, "acme", action="document.read")
        search = query_audit(s, "acme", action="knowledge.search")[0]
    assert records[0].actor == fin.label and set(records[0].details["docs"]) == {h.doc_id for h in hits}
    assert search.details["query"] == "revenue Q3" and search.request_id == records[0].request_id
