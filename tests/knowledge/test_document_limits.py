"""What one document may cost at ingestion (issue 16, finding 13).

As found: a 0.95 MB DOCX that inflated to 416 MB (under the old 512 MB zip
cap) took 238 s and 2.8 GB and made 400,008 chunks. Text and chunks per
document are capped (``Settings``), DOCX sizes are checked while inflating,
and a skipped document is reported with the reason.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cristal.config import load_settings
from cristal.db import Database
from cristal.identity import orgs
from cristal.knowledge import sources
from cristal.knowledge.parse import DocumentLimits, DocumentTooLarge, parse_bytes
from cristal.knowledge.schema import Chunk, Document
from cristal.knowledge.sync import sync_source

from .conftest import INSTALLATION

# The peak memory of a child process, measured by a parent of its own (so no other test's children count).
PEAK_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.stdout.write(p.stdout)\n"
)
PARAGRAPH = b"<w:p><w:r><w:t>All work and no play makes Jack a dull boy. </w:t></w:r></w:p>"


def bomb_docx(path: Path, xml_bytes: int) -> Path:
    """A real DOCX (python-docx's own template) whose body repeats one paragraph up to ``xml_bytes``: tiny on disk."""
    import docx

    template = io.BytesIO()
    docx.Document().save(template)
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, src.read(info))
        head, tail = src.read("word/document.xml").split(b"<w:body>", 1)
        block = PARAGRAPH * 1000
        with out.open("word/document.xml", "w", force_zip64=True) as body:
            body.write(head + b"<w:body>")
            for _ in range(xml_bytes // len(block) + 1):
                body.write(block)
            body.write(tail)
    return path


def docs_named(db: Database, external_id: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Document).where(Document.external_id == external_id)) or 0


@pytest.fixture
def bomb_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "share"
    tree.mkdir()
    (tree / "hello.md").write_text("# Hello\n\nA normal document next to the bomb.\n")
    bomb_docx(tree / "report.docx", 100 * 1024 * 1024)
    assert (tree / "report.docx").stat().st_size < 1024 * 1024  # small on disk, 100 MB inflated
    return tree


def test_a_docx_that_inflates_hugely_is_skipped_without_spending_the_memory(
    cli, db: Database, bomb_tree: Path  # type: ignore[no-untyped-def]  # the cli fixture is an untyped function with an env attribute
) -> None:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        sources.add_source(s, INSTALLATION, "acme", "share", "files", str(bomb_tree), acl="org")

    def sync(extra_env: dict[str, str]) -> tuple[int, int, str]:
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "cristal", "sync", "share", "--org", "acme", "--keyword-only"],
            capture_output=True, text=True, env={**cli.env, **extra_env}, timeout=300,
        )
        first, _, output = proc.stdout.partition("\n")
        code, peak_kb = (int(x) for x in first.split())
        return code, peak_kb // 1024, output

    # The default limit on the inflated size refuses it from the archive's directory.
    code, peak_mb, output = sync({})
    assert code == 0, output
    assert re.search(
        r"skipped report.docx: DOCX unpacks to 10\d MB, over the limit of 64 MB \(CRISTAL_KNOWLEDGE_MAX_UNZIPPED_BYTES\)", output)
    assert peak_mb < 300, f"{peak_mb} MB"
    # With archives allowed to be huge, the text limit stops the body while it inflates.
    code, peak_mb, output = sync({"CRISTAL_KNOWLEDGE_MAX_UNZIPPED_BYTES": str(2 * 1024**3)})
    assert code == 0, output
    assert "skipped report.docx: text over the limit of 5,000,000 characters per document" in output
    assert peak_mb < 300, f"{peak_mb} MB"

    assert docs_named(db, "report.docx") == 0 and docs_named(db, "hello.md") == 1
    listed = json.loads(cli("source", "list", "--org", "acme", "--json").stdout)
    last = listed["sources"][0]["last_sync"]  # the document's status, kept with the source
    assert last["skipped"] == 1
    reason = "text over the limit of 5,000,000 characters per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHARS)"
    assert last["skipped_items"] == [{"id": "report.docx", "reason": reason}]


def test_limits_come_from_settings_for_every_format(two_orgs: Database, tmp_path: Path) -> None:
    tree = tmp_path / "docs"
    tree.mkdir()
    (tree / "long.md").write_text("# Long\n\n" + "A sentence of filler text for the limit. " * 200)  # ~8,400 characters
    (tree / "sections.md").write_text("".join(f"# Part {i}\n\nShort body {i}.\n\n" for i in range(60)))  # 60 chunks
    bomb_docx(tree / "small-bomb.docx", 100 * 1024)  # ~55,000 characters
    (tree / "fine.md").write_text("# Fine\n\nWithin every limit.\n")
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "docs", "files", str(tree), acl="org")
    settings = load_settings(knowledge_max_document_chars=5_000, knowledge_max_document_chunks=50)
    report = sync_source(two_orgs, INSTALLATION, "acme", "docs", embed=False, settings=settings)
    reasons = {p["id"]: p["reason"] for p in report.skipped}
    assert reasons == {
        "long.md": "text over the limit of 5,000 characters per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHARS)",
        "small-bomb.docx": "text over the limit of 5,000 characters per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHARS)",
        "sections.md": "more than the limit of 50 chunks per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHUNKS)",
    }
    assert report.added == 1 and report.chunks_written == 1
    with two_orgs.session() as s:
        assert s.scalars(select(Document.external_id)).all() == ["fine.md"]
        assert s.scalar(select(func.count()).select_from(Chunk)) == 1
    # Raised limits index them on the next sync.
    report = sync_source(two_orgs, INSTALLATION, "acme", "docs", embed=False,
                         settings=load_settings(knowledge_max_document_chunks=100))
    assert report.skipped == [] and report.added == 3


def test_parse_bytes_applies_the_limits_it_is_given(tmp_path: Path) -> None:
    data = bomb_docx(tmp_path / "b.docx", 1024 * 1024).read_bytes()
    with pytest.raises(DocumentTooLarge, match="text over the limit of 10,000 characters"):
        parse_bytes(data, "b.docx", limits=DocumentLimits(max_chars=10_000))
    with pytest.raises(DocumentTooLarge, match=r"DOCX unpacks to [\d.]+ MB, over the limit of 512 KB"):
        parse_bytes(data, "b.docx", limits=DocumentLimits(max_unzipped_bytes=512 * 1024))
    small = bomb_docx(tmp_path / "small.docx", 20 * 1024).read_bytes()
    assert parse_bytes(small, "small.docx").text.startswith("All work and no play")
    with pytest.raises(DocumentTooLarge, match="characters per document"):
        parse_bytes(b"# Title\n\n" + b"word " * 1000, "a.md", limits=DocumentLimits(max_chars=1000))
