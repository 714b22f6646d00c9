"""The ``search`` action: the organization's knowledge as the acting person, audited, as a workflow step."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.actions import build_registry
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import AuditRecord
from cristal.identity.directory import org_by_slug
from cristal.workflows.spec import load_workflow_text
from cristal.workflows.steps import Meta, StepError, perform
from tests.research.conftest import company_template, rdb  # noqa: F401  (fixtures: one indexed company)


def _meta(db: Database, email: str, step: str = "find") -> Meta:
    with db.session() as s:
        org_id = org_by_slug(s, "acme").id
    return Meta("run_search", step, None, org_id, email, None)


def test_a_search_step_finds_what_its_owner_may_read_and_is_audited(rdb: Database, tmp_path: Path) -> None:  # noqa: F811
    settings = Settings(home=str(tmp_path))
    meta = _meta(rdb, "eng@acme.example")
    out = perform(build_registry(), rdb, settings, "search", meta,
                  {"query": "hotel cap Munich", "limit": 3, "mode": "keyword"})
    hits = out["hits"]
    assert 1 <= len(hits) <= 3
    assert set(hits[0]) == {"doc_id", "chunk_id", "title", "uri", "score", "snippet", "lang"}
    with rdb.session() as s:
        actions = set(s.scalars(select(AuditRecord.action).where(AuditRecord.request_id == meta.key)))
    assert {"knowledge.search", "document.read"} <= actions


def test_a_search_step_with_an_empty_query_fails_in_one_line(rdb: Database, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(StepError, match=r"^empty query$"):
        perform(build_registry(), rdb, Settings(home=str(tmp_path)), "search", _meta(rdb, "eng@acme.example"),
                {"query": "  ", "limit": 10, "mode": "hybrid"})


def test_search_steps_are_validated_like_every_kind(tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path))
    ok = load_workflow_text("name: x\ninputs: {q: hotel}\nsteps:\n  - id: find\n    search: {query: '{{ inputs.q }}'}\n",
                            settings=settings)
    assert ok.steps[0]["spec"] == {"query": "{{ inputs.q }}", "limit": 10, "mode": "hybrid"}
    from cristal.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"step 'find': limit: Input should be less than or equal to 100"):
        load_workflow_text("name: x\nsteps:\n  - id: find\n    search: {query: hotel, limit: 1000}\n", settings=settings)
