"""A sync killed with SIGKILL in the middle, then run again, gives the same index as one uninterrupted sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from cristal.db import Database
from cristal.identity import orgs
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Embedding
from cristal.knowledge.sync import sync_source

INSTALLATION = Principal.installation("test-operator")
TOPICS = ["travel", "hotel", "invoice", "warranty", "Garantie", "Reisekosten", "出張", "精算", "security", "onboarding"]


def make_tree(root: Path, n: int) -> Path:
    for i in range(n):
        folder = root / f"team{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        if i < 7:
            (folder / ".cristal-acl").write_text("org\n" if i % 2 else f"group:g{i}\n")
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"doc{i:04d}.md").write_text(
            f"# Note {i} about {topic}\n\nDocument number {i} explains {topic} rules in detail. "
            f"Version {i * 7 % 13}. See also {TOPICS[(i + 3) % len(TOPICS)]}.\n\n## Details\n\n{topic} {i} " * 3,
            encoding="utf-8",
        )
    return root


def index_state(db: Database) -> list[tuple]:
    with db.session() as s:
        docs = sorted(
            (
                d.external_id,
                d.content_hash,
                tuple(sorted(s.scalars(select(DocumentAccess.rule).where(DocumentAccess.doc_id == d.id)))),
                tuple(s.scalars(select(Chunk.terms).where(Chunk.doc_id == d.id).order_by(Chunk.ord))),
            )
            for d in s.scalars(select(Document))
        )
        missing = s.scalar(
            select(func.count()).select_from(Chunk).where(~Chunk.embed_hash.in_(select(Embedding.content_hash)))
        )
    return [*docs, ("chunks without embedding", missing)]


def test_sigkill_mid_sync_then_resync_equals_one_clean_sync(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    tree = make_tree(tmp_path / "tree", 400)
    assert cli("init").code == 0
    assert cli("org", "create", "acme").code == 0
    assert cli("source", "add", "notes", "--org", "acme", "--kind", "files", "--uri", str(tree)).code == 0

    db = Database(cli.env["CRISTAL_DATABASE_URL"])
    child = subprocess.Popen(
        [sys.executable, "-m", "cristal", "sync", "notes", "--org", "acme"],
        env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    killed_at = None
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        with db.session() as s:
            count = s.scalar(select(func.count()).select_from(Document))
        if count >= 50:
            os.kill(child.pid, signal.SIGKILL)
            killed_at = count
            break
        time.sleep(0.02)
    child.wait()
    assert killed_at is not None and child.returncode == -signal.SIGKILL, "the sync must be killed mid-way"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) < 400  # really interrupted

    again = cli("sync", "notes", "--org", "acme", "--json")
    assert again.code == 0, again.stderr

    clean = Database(f"sqlite:///{tmp_path / 'clean.db'}")
    clean.upgrade()
    with clean.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        sources.add_source(s, INSTALLATION, "acme", "notes", "files", str(tree))
    sync_source(clean, INSTALLATION, "acme", "notes")
    assert index_state(db) == index_state(clean)
    assert index_state(db)[-1] == ("chunks without embedding", 0)
    with db.engine.begin() as conn:  # the FTS5 indexes agree with the chunks they index
        conn.exec_driver_sql("INSERT INTO chunk_fts(chunk_fts) VALUES ('integrity-check')")
        conn.exec_driver_sql("INSERT INTO chunk_tri(chunk_tri) VALUES ('integrity-check')")
    db.dispose()
    clean.dispose()
