"""Sources, sync and search through the command line, as an administrator and employees would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..knowledge.conftest import write_tree


@pytest.fixture
def wiki(cli, db, cli_in_process, tmp_path: Path):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """An indexed wiki, set up with the same commands run in this process; the tests use real processes."""
    docs = write_tree(tmp_path / "wiki")
    assert cli_in_process("init").code == 0
    assert cli_in_process("org", "create", "acme").code == 0
    assert cli_in_process("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance").code == 0
    assert cli_in_process("user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering").code == 0
    added = cli_in_process("source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", str(docs), "--json")
    assert added.code == 0, added.stderr
    synced = cli_in_process("sync", "--org", "acme", "--json")
    assert synced.code == 0, synced.stderr
    report = json.loads(synced.stdout)["sources"][0]
    assert report["added"] == 8 and report["embedded"] > 0
    return cli, docs


def test_search_json_shape_and_access(wiki) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli, _ = wiki
    fin = json.loads(cli("search", "revenue Q3", "--org", "acme", "--as", "fin@acme.example", "--json").stdout)
    assert fin["hits"][0]["title"] == "Q3 results"
    assert set(fin["hits"][0]) == {"doc_id", "chunk_id", "title", "uri", "score", "snippet", "lang"}
    eng = json.loads(cli("search", "revenue Q3", "--org", "acme", "--as", "eng@acme.example", "--json").stdout)
    assert all(h["title"] != "Q3 results" for h in eng["hits"])
    text = cli("search", "出張旅費", "--org", "acme", "--as", "eng@acme.example")
    assert text.code == 0 and "出張規程" in text.stdout


def test_batch_queries(wiki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli, _ = wiki
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "a", "query": "hotel Munich"}\n\n{"id": 2, "query": "Garantiezeit"}\n', encoding="utf-8")
    result = cli("search", "--queries", str(queries), "--org", "acme", "--as", "fin@acme.example", "--limit", "2")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", 2]
    assert all(len(line["hits"]) <= 2 for line in lines) and lines[1]["hits"][0]["title"] == "Garantiebedingungen"


BAD_BATCHES = [
    (b'{"id": 1}\n', ":1: expected a JSON object"),
    (b"not json\n", ":1: expected a JSON object"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
]
BAD_INPUT = [
    (("search", "x", "--org", "acme", "--as", "ghost@acme.example"), 3, "unknown user"),
    (("search", "", "--org", "acme", "--as", "fin@acme.example"), 2, "empty query"),
    (("search", "x", "--org", "acme", "--as", "fin@acme.example", "--mode", "magic"), 2, "invalid --mode"),
    (("sync", "--org", "acme", "--as", "fin@acme.example"), 5, "admin"),
    (("sync", "nope", "--org", "acme"), 3, "unknown source"),
    (("source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", "/"), 4, "already exists"),
    (("source", "add", "x", "--org", "acme", "--kind", "ftp", "--uri", "/"), 2, "unknown source kind"),
    (("source", "add", "x", "--org", "acme", "--kind", "files", "--uri", "/no/such/folder"), 2, "does not exist"),
    (("source", "add", "x", "--org", "acme", "--kind", "files", "--uri", "/tmp", "--acl", "everyone"), 2, "invalid access rule"),
    (("source", "add", "x", "--org", "acme", "--kind", "sql", "--uri", "postgresql://u:pw@127.0.0.1:1/x"), 2, "cannot open database"),
    (("search", "--org", "acme", "--as", "fin@acme.example"), 2, "give either a QUERY"),
]


def test_bad_input(wiki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """One workspace for all cases: each is refused with one line and the right status."""
    cli, _ = wiki
    for content, message in BAD_BATCHES:
        queries = tmp_path / "bad.jsonl"
        queries.write_bytes(content)
        result = cli("search", "--queries", str(queries), "--org", "acme", "--as", "fin@acme.example")
        assert result.code == 2 and message in result.stderr and "Traceback" not in result.stderr
    for args, code, message in BAD_INPUT:
        result = cli(*args)
        assert result.code == code, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_incremental_sync_and_removal(wiki) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli, docs = wiki
    (docs / "public" / "travel.md").write_text("# Travel policy\n\nHotels in Munich may cost up to 180 EUR per night.\n")
    report = json.loads(cli("sync", "wiki", "--org", "acme", "--json").stdout)["sources"][0]
    assert (report["updated"], report["unchanged"], report["embedded"]) == (1, 7, 1)
    listed = json.loads(cli("source", "list", "--org", "acme", "--json").stdout)["sources"]
    assert listed[0]["documents"] == 8 and listed[0]["last_sync"]["updated"] == 1
    assert cli("source", "remove", "wiki", "--org", "acme").code == 0
    hits = json.loads(cli("search", "hotel", "--org", "acme", "--as", "fin@acme.example", "--json").stdout)["hits"]
    assert hits == []
