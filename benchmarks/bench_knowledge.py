"""Knowledge benchmark: retrieval quality, ingestion throughput and query latency.

Everything goes through Cristal's real paths: each corpus is written as a
folder of files with a ``.cristal-acl`` of ``org``, added as a ``files``
source, synced (dense embeddings on) into its own SQLite database, and
queried with ``Searcher.search`` as a plain member (so the access filter is
inside every retrieval query and every search is audited).

1. Retrieval quality (nDCG@10, recall@10) of Cristal keyword / dense / hybrid
   against plain BM25 with ``bm25s`` on XQuAD-de, XQuAD-en, cross-lingual
   (English questions over German paragraphs) and JSQuAD (ja). The top 10
   chunks of ``search(limit=10)`` are mapped to their documents (a document
   hit twice counts once). bm25s runs over the same texts, with Snowball
   stemming and stop words of the corpus language (Japanese: character
   bigrams) and, as a second baseline, over Cristal's own tokens.
2. Ingestion throughput of JSQuAD (1,145 files): a sync without and with
   dense embedding, a second sync touching nothing, and one after 5% of the
   files were edited.
3. Query latency p50/p95 at 10k (and 100k) chunks: the unique chunks of the
   three corpora are copied with a copy number appended (so texts and content
   hashes differ) and inserted as real documents and chunks (the keyword
   indexes hold every copy); their embeddings reuse the vector of the original
   chunk (plus a little noise) instead of running the model 100k times.
   bm25s answers the same queries over the same chunks (Cristal's tokens).

Run: ``.venv/bin/python benchmarks/bench_knowledge.py [--quick] [--json]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import Corpus, Question, load_jsquad, load_xquad, sample  # noqa: E402
from output import results_path, write_json  # noqa: E402

from cristal.db import Database  # noqa: E402
from cristal.identity import orgs, users  # noqa: E402
from cristal.identity.directory import resolve_principal  # noqa: E402
from cristal.identity.principal import Principal  # noqa: E402
from cristal.knowledge import sources  # noqa: E402
from cristal.knowledge.embed import Embedder, default_embedder, to_blob  # noqa: E402
from cristal.knowledge.index import bump_generation, embedding_input  # noqa: E402
from cristal.knowledge.keyword import compound_search, keyword_search  # noqa: E402
from cristal.knowledge.language import detect_language  # noqa: E402
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Embedding, Source  # noqa: E402
from cristal.knowledge.search import Searcher  # noqa: E402
from cristal.knowledge.sync import sync_source  # noqa: E402
from cristal.knowledge.tokenize import tokens  # noqa: E402

INSTALLATION = Principal.installation("bench")
ORG = "bench"
MEMBER = "member@bench.example"
ADMIN = "admin@bench.example"
MODES = ("keyword", "dense", "hybrid")
K = 10
console = Console()
if not console.is_terminal:
    console = Console(width=150)


# --------------------------------------------------------------------------- setup


def new_database(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, ORG, "Bench")
        users.add_user(s, INSTALLATION, ORG, MEMBER)
        users.add_user(s, INSTALLATION, ORG, ADMIN, role="admin")
    return db


def member(db: Database, email: str = MEMBER) -> Principal:
    with db.session() as s:
        return resolve_principal(s, ORG, email)


def write_folder(folder: Path, corpus: Corpus) -> int:
    """One file per paragraph (.md with the title as heading when there is one, else .txt); returns bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".cristal-acl").write_text("org\n", encoding="utf-8")
    total = 0
    for p in corpus.paragraphs:
        if p.title:
            path, content = folder / f"p{p.idx:05d}.md", f"# {p.title}\n\n{p.text}\n"
        else:
            path, content = folder / f"p{p.idx:05d}.txt", f"{p.text}\n"
        data = content.encode("utf-8")
        path.write_bytes(data)
        total += len(data)
    return total


def paragraph_of(db: Database) -> dict[int, int]:
    """Document id -> paragraph index (from the file name)."""
    with db.session() as s:
        return {i: int(re.match(r"p(\d+)", ext).group(1)) for i, ext in s.execute(select(Document.id, Document.external_id))}


class CachedEmbedder:
    """The real embedder with a memo, so each question is embedded once (batched) for dense and hybrid."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.memo: dict[str, np.ndarray] = {}

    def prepare(self, texts: list[str], batch: int = 64) -> None:
        todo = list(dict.fromkeys(t.strip() for t in texts if t.strip() not in self.memo))
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            for text, vector in zip(part, self.inner.encode(part)):
                self.memo[text] = vector

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.memo]
        if missing:
            for text, vector in zip(missing, self.inner.encode(missing)):
                self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts])


# --------------------------------------------------------------------------- metrics


def rank_of(gold: int, ranked: list[int]) -> int | None:
    """1-based rank of ``gold`` among the first K distinct documents of ``ranked``."""
    seen: list[int] = []
    for d in ranked:
        if d not in seen:
            seen.append(d)
            if d == gold:
                return len(seen)
            if len(seen) == K:
                break
    return None


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "ndcg@10": sum(1 / math.log2(r + 1) for r in ranks if r) / n,
        "recall@10": sum(1 for r in ranks if r) / n,
    }


# --------------------------------------------------------------------------- bm25s baselines

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005\u30fc]+")
_WORDS = re.compile(r"\w+")
_STEMMERS = {"de": "german", "en": "english"}
_STOPWORDS = {"de": "de", "en": "en"}


def bigram_tokens(text: str) -> list[str]:
    """Japanese for bm25s: NFKC + case fold, character bigrams of CJK/kana runs, Latin and digit words whole."""
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    pos = 0
    for m in _CJK.finditer(text):
        out.extend(_WORDS.findall(text[pos : m.start()]))
        run = m.group()
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        pos = m.end()
    out.extend(_WORDS.findall(text[pos:]))
    return out


class BM25Baseline:
    """bm25s (Lucene BM25, k1=1.5, b=0.75) over token lists."""

    def __init__(self, docs: list[list[str]], tokenize: Callable[[str], list[str]]) -> None:
        self.tokenize = tokenize
        self.retriever = bm25s.BM25()
        self.retriever.index(docs, show_progress=False)
        self.n = len(docs)

    def search(self, query: str, k: int = K) -> list[int]:
        toks = self.tokenize(query) or ["\x00"]
        docs, sc = self.retriever.retrieve([toks], k=min(k, self.n), show_progress=False, n_threads=0)
        return [int(d) for d, s in zip(docs[0], sc[0]) if s > 0]


def snowball_baseline(texts: list[str], lang: str) -> BM25Baseline:
    stemmer = Stemmer.Stemmer(_STEMMERS[lang])

    def tok(text: str) -> list[str]:
        return bm25s.tokenize([text], stopwords=_STOPWORDS[lang], stemmer=stemmer, return_ids=False, show_progress=False)[0]

    docs = bm25s.tokenize(texts, stopwords=_STOPWORDS[lang], stemmer=stemmer, return_ids=False, show_progress=False)
    return BM25Baseline(docs, tok)


def cristal_tokens_query(query: str) -> list[str]:
    """How Searcher tokenizes a query (language detected, 'und' read as English)."""
    lang = detect_language(query)
    return tokens(query, lang if lang != "und" else "en")


# --------------------------------------------------------------------------- 1. quality


@dataclass
class Built:
    corpus: Corpus
    db: Database
    folder: Path
    bytes: int
    sync_seconds: float
    report: dict
    doc_to_par: dict[int, int] = field(default_factory=dict)


def build(corpus: Corpus, work: Path) -> Built:
    folder = work / f"{corpus.name}-files"
    size = write_folder(folder, corpus)
    db = new_database(work / f"{corpus.name}.db")
    with db.session() as s:
        sources.add_source(s, INSTALLATION, ORG, "corpus", "files", str(folder))
    t = time.perf_counter()
    report = sync_source(db, INSTALLATION, ORG, "corpus", embed=True)
    seconds = time.perf_counter() - t
    assert not report.skipped, report.skipped
    return Built(corpus, db, folder, size, seconds, report.as_dict(), paragraph_of(db))


def evaluate(built: Built, questions: list[Question], searcher: Searcher, principal: Principal) -> dict[str, dict[str, float]]:
    out = {}
    for mode in MODES:
        ranks = []
        for q in questions:
            hits = searcher.search(principal, q.text, limit=K, mode=mode)
            ranks.append(rank_of(q.gold, [built.doc_to_par[h.doc_id] for h in hits]))
        out[f"Cristal {mode}"] = scores(ranks)
    return out


def evaluate_bm25(corpus: Corpus, questions: list[Question]) -> dict[str, dict[str, float]]:
    """bm25s over the corpus texts (title + paragraph, as Cristal indexes them)."""
    texts = [f"{p.title}\n{p.text}" if p.title else p.text for p in corpus.paragraphs]
    if corpus.lang == "ja":
        plain = BM25Baseline([bigram_tokens(t) for t in texts], bigram_tokens)
    else:
        plain = snowball_baseline(texts, corpus.lang)
    ours = BM25Baseline([tokens(t, corpus.lang) for t in texts], cristal_tokens_query)
    out = {}
    for name, engine in (("bm25s", plain), ("bm25s on Cristal tokens", ours)):
        out[name] = scores([rank_of(q.gold, engine.search(q.text)) for q in questions])
    return out


# --------------------------------------------------------------------------- 2. ingestion


def ingestion(ja: Built, work: Path) -> list[tuple[str, str, str, str, str]]:
    """(run, docs, seconds, docs/s, MB/s) for JSQuAD."""
    rows = []
    n, mb = len(ja.corpus.paragraphs), ja.bytes / 1e6

    db = new_database(work / "ingest-noembed.db")
    with db.session() as s:
        sources.add_source(s, INSTALLATION, ORG, "corpus", "files", str(ja.folder))
    t = time.perf_counter()
    r = sync_source(db, INSTALLATION, ORG, "corpus", embed=False)
    sec = time.perf_counter() - t
    rows.append(("first sync, keyword only (embed=False)", f"{r.added} added, {r.chunks_written} chunks", sec, n / sec, mb / sec))
    db.dispose()

    rep = ja.report
    rows.append(("first sync with dense embedding", f"{rep['added']} added, {rep['embedded']} embedded", ja.sync_seconds,
                 n / ja.sync_seconds, mb / ja.sync_seconds))

    t = time.perf_counter()
    r = sync_source(ja.db, INSTALLATION, ORG, "corpus", embed=True)
    sec = time.perf_counter() - t
    rows.append(("second sync, nothing touched", f"{r.unchanged} unchanged, {r.embedded} embedded, {r.embeddings_reused} reused",
                 sec, n / sec, mb / sec))

    edited = sorted(ja.folder.glob("p*.md"))[::20]
    for path in edited:
        path.write_text(path.read_text(encoding="utf-8") + "\n（改訂）\n", encoding="utf-8")
    t = time.perf_counter()
    r = sync_source(ja.db, INSTALLATION, ORG, "corpus", embed=True)
    sec = time.perf_counter() - t
    rows.append((f"sync after editing {len(edited)} files (5%)",
                 f"{r.updated} updated, {r.unchanged} unchanged, {r.embedded} embedded, {r.embeddings_reused} reused",
                 sec, n / sec, mb / sec))
    return [(a, b, f"{c:.2f}", f"{d:,.0f}", f"{e:.3f}") for a, b, c, d, e in rows]


# --------------------------------------------------------------------------- 3. latency


@dataclass
class PoolChunk:
    title: str
    heading: str
    text: str
    terms: str
    lang: str
    vector: np.ndarray


def chunk_pool(dbs: list[Database]) -> list[PoolChunk]:
    """Every chunk of the quality databases with its embedding."""
    pool = []
    for db in dbs:
        with db.session() as s:
            rows = s.execute(
                select(Document.title, Chunk.heading, Chunk.text, Chunk.terms, Chunk.lang, Embedding.vector)
                .join(Document, Document.id == Chunk.doc_id)
                .join(Embedding, Embedding.content_hash == Chunk.embed_hash)
                .order_by(Chunk.id)
            ).all()
        pool.extend(PoolChunk(t, h, x, terms, lang, np.frombuffer(v, dtype=np.float32)) for t, h, x, terms, lang, v in rows)
    return pool


def synthetic_db(path: Path, folder: Path, pool: list[PoolChunk], n_chunks: int, seed: int = 7) -> tuple[Database, float]:
    """A database with ``n_chunks`` one-chunk documents: pool chunks copied round-robin, copy number appended."""
    rng = np.random.default_rng(seed)
    db = new_database(path)
    folder.mkdir(parents=True, exist_ok=True)
    with db.session() as s:
        sources.add_source(s, INSTALLATION, ORG, "synthetic", "files", str(folder))
        org_id, source_id = s.execute(select(Source.org_id, Source.id)).one()
    started = time.perf_counter()
    batch = 2000
    for start in range(0, n_chunks, batch):
        docs, access, chunks, embeddings = [], [], [], []
        for n in range(start, min(start + batch, n_chunks)):
            base = pool[n % len(pool)]
            text = f"{base.text} [{n}]"
            doc_id = n + 1
            embed_hash = hashlib.sha256(embedding_input(base.title, base.heading, text).encode()).hexdigest()
            docs.append({"id": doc_id, "org_id": org_id, "source_id": source_id, "external_id": f"d{n:06d}.md",
                         "uri": f"file:///synthetic/d{n:06d}.md", "title": base.title, "lang": base.lang, "mtime": None,
                         "size": len(text.encode()), "content_hash": hashlib.sha256(text.encode()).hexdigest(), "acl": ["org"],
                         "text": text, "meta": {}})
            access.append({"doc_id": doc_id, "rule": "org"})
            chunks.append({"org_id": org_id, "doc_id": doc_id, "ord": 0, "start": 0, "end": len(text), "text": text,
                           "terms": f"{base.terms} {n}", "heading": base.heading, "page": None, "lang": base.lang,
                           "embed_hash": embed_hash})
            vector = base.vector + rng.normal(0, 0.01, base.vector.shape).astype(np.float32)
            embeddings.append({"content_hash": embed_hash, "model": default_embedder().name,
                               "vector": to_blob(vector / np.linalg.norm(vector))})
        with db.session() as s:
            s.execute(insert(Document), docs)
            s.execute(insert(DocumentAccess), access)
            s.execute(insert(Chunk), chunks)
            s.execute(insert(Embedding), embeddings)
    with db.session() as s:
        bump_generation(s, org_id)
    return db, time.perf_counter() - started


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def latency(db: Database, queries: list[str], pool_terms: list[str]) -> dict[str, dict[str, float]]:
    """p50/p95 in ms per mode; dense cold = first query after the index generation changed (matrix reload).

    The modes take turns query by query, so a burst of load from elsewhere on the machine hits them alike.
    """
    principal, admin = member(db), member(db, ADMIN)
    searcher = Searcher(db, default_embedder())
    runs = {f"Cristal {mode}": (principal, mode) for mode in MODES}
    runs["  dense as an org admin (no access filter)"] = (admin, "dense")
    for who, mode in runs.values():  # warm the embedder, SQLite's page cache and the dense matrix
        searcher.search(who, queries[0], limit=K, mode=mode)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for q in queries:
        for name, (who, mode) in runs.items():
            t = time.perf_counter()
            searcher.search(who, q, limit=K, mode=mode)
            times[name].append((time.perf_counter() - t) * 1000)
    out: dict[str, dict[str, float]] = {name: {"p50": pct(v, 50), "p95": pct(v, 95), "n": len(v)} for name, v in times.items()}
    with db.session() as s:
        org_id = s.scalar(select(Source.org_id))
    matchers = sorted(principal.acl_matchers())
    times = []
    for q in queries:
        t = time.perf_counter()
        with db.session() as s:
            keyword_search(s, org_id, cristal_tokens_query(q), matchers, 40)
            compound_search(s, org_id, q, matchers, 40)
        times.append((time.perf_counter() - t) * 1000)
    out["  keyword: the two FTS5 queries alone"] = {"p50": pct(times, 50), "p95": pct(times, 95), "n": len(times)}
    cold = []
    for q in queries[:3]:
        with db.session() as s:
            bump_generation(s, org_id)
        t = time.perf_counter()
        searcher.search(principal, q, limit=K, mode="dense")
        cold.append((time.perf_counter() - t) * 1000)
    out["Cristal dense, cold (matrix load)"] = {"p50": statistics.median(cold), "p95": max(cold), "n": len(cold)}

    t = time.perf_counter()
    engine = BM25Baseline([terms.split() for terms in pool_terms], cristal_tokens_query)
    index_seconds = time.perf_counter() - t
    engine.search(queries[0])
    times = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q)
        times.append((time.perf_counter() - t) * 1000)
    out["bm25s on Cristal tokens"] = {"p50": pct(times, 50), "p95": pct(times, 95), "n": len(times), "index_s": index_seconds}
    return out


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu or "unknown",
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "bm25s": bm25s.__version__,
        "platform": platform.platform(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 questions per set, latency at 10k chunks only (< 3 minutes)")
    parser.add_argument("--questions", type=int, help="questions per set (default: all; --quick: 200)")
    parser.add_argument("--sizes", help="chunk counts for the latency test (default 10000,100000; --quick: 10000)")
    parser.add_argument("--latency-queries", type=int, help="queries per mode and size (default 300; --quick: 100)")
    parser.add_argument("--json", action="store_true", help="also write benchmarks/results/knowledge.json")
    args = parser.parse_args()
    n_questions = args.questions if args.questions is not None else (200 if args.quick else None)
    sizes = [int(x) for x in (args.sizes or ("10000" if args.quick else "10000,100000")).split(",")]
    n_latency = args.latency_queries or (100 if args.quick else 300)
    started = time.perf_counter()
    info = machine()
    console.print(f"[bold]Cristal knowledge benchmark[/] — {'quick' if args.quick else 'full'} run, {info['date']}")
    console.print(f"{info['cpu']}, {info['cores']} cores · Python {info['python']} · SQLite {info['sqlite']} · bm25s {info['bm25s']} · "
                  f"load average {info['load average at start']}")
    results: dict = {"machine": info, "mode": "quick" if args.quick else "full"}

    work = Path(tempfile.mkdtemp(prefix="cristal-bench-knowledge-"))
    try:
        de, en, ja = load_xquad("de"), load_xquad("en"), load_jsquad()
        sets = [  # (name, corpus searched, questions asked)
            ("XQuAD-de", de, sample(de.questions, n_questions)),
            ("XQuAD-en", en, sample(en.questions, n_questions)),
            ("cross-lingual en→de", de, sample(en.questions, n_questions)),
            ("JSQuAD (ja)", ja, sample(ja.questions, n_questions)),
        ]
        console.print(f"indexing {len(de.paragraphs)} + {len(en.paragraphs)} + {len(ja.paragraphs)} paragraphs (dense on) …")
        built = {c.name: build(c, work) for c in (de, en, ja)}
        embedder = CachedEmbedder(default_embedder())
        embedder.prepare([q.text for _, _, qs in sets for q in qs])

        quality: dict[str, dict[str, dict[str, float]]] = {}
        for name, corpus, questions in sets:
            b = built[corpus.name]
            console.print(f"evaluating {name}: {len(questions)} questions over {len(corpus.paragraphs)} paragraphs …")
            res = evaluate(b, questions, Searcher(b.db, embedder), member(b.db))
            res.update(evaluate_bm25(corpus, questions))
            quality[name] = res
        results["quality"] = {"questions_per_set": {n: len(q) for n, _, q in sets}, "sets": quality}

        table = Table(title=f"Retrieval quality — nDCG@10 / recall@10 ({'200' if n_questions == 200 else 'all'} questions per set)")
        table.add_column("system")
        for name, _, questions in sets:
            table.add_column(f"{name}\n(n={len(questions)})", justify="right")
        for system in next(iter(quality.values())):
            table.add_row(system, *(f"{quality[n][system]['ndcg@10']:.3f} / {quality[n][system]['recall@10']:.3f}" for n, _, _ in sets))
        console.print(table)
        console.print(
            "Cristal: search(limit=10) as a member; the 10 chunks mapped to documents. bm25s: Lucene BM25 (k1=1.5, b=0.75) "
            "over title + paragraph; de/en with PyStemmer Snowball + bm25s stop words of the corpus language (the cross-lingual "
            "set uses the German index and tokenizer for the English questions); ja with NFKC character bigrams. "
            "'bm25s on Cristal tokens' indexes Cristal's own tokens (Snowball, Sudachi for ja) with Cristal's query tokenization.",
            style="dim",
        )

        pool = chunk_pool([built[c.name].db for c in (de, en, ja)])
        ing = ingestion(built[ja.name], work)
        results["ingestion"] = {"corpus": f"JSQuAD, {len(ja.paragraphs)} files, {built[ja.name].bytes / 1e6:.2f} MB",
                                "rows": [dict(zip(("run", "result", "seconds", "docs_per_s", "mb_per_s"), r)) for r in ing]}
        table = Table(title=f"Ingestion — JSQuAD as a files source ({len(ja.paragraphs)} files, {built[ja.name].bytes / 1e6:.2f} MB)")
        for col, just in (("sync", "left"), ("result", "left"), ("s", "right"), ("docs/s", "right"), ("MB/s", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for row in ing:
            table.add_row(*row)
        console.print(table)
        console.print("Embedding model: USE multilingual v3 on numpy (2 threads); 'reused' = embeddings found in the cache by content hash.", style="dim")

        for b in built.values():
            b.db.dispose()
        lat_questions = [q.text for c in (de, en, ja) for q in sample(c.questions, n_latency // 3 + 1, seed=99)][:n_latency]
        latency_results = {}
        for size in sizes:
            console.print(f"building a synthetic index of {size:,} chunks from {len(pool):,} unique chunks …")
            db, build_seconds = synthetic_db(work / f"latency-{size}.db", work / f"latency-{size}", pool, size)
            with db.session() as s:
                pool_terms = list(s.scalars(select(Chunk.terms).order_by(Chunk.id)))
            res = latency(db, lat_questions, pool_terms)
            res["build_seconds"] = build_seconds
            latency_results[size] = res
            db.dispose()
            (work / f"latency-{size}.db").unlink(missing_ok=True)
        results["latency"] = {str(k): v for k, v in latency_results.items()}

        table = Table(title=f"Query latency, ms p50 / p95 ({len(lat_questions)} de/en/ja questions per cell, one at a time)")
        table.add_column("system")
        for size in sizes:
            table.add_column(f"{size:,} chunks", justify="right")
        for system in [k for k in latency_results[sizes[0]] if k != "build_seconds"]:
            table.add_row(system, *(f"{latency_results[s][system]['p50']:.1f} / {latency_results[s][system]['p95']:.1f}" for s in sizes))
        console.print(table)
        console.print(
            "Synthetic corpus: the unique chunks of XQuAD-de/en and JSQuAD copied round-robin with ' \\[n]' appended, inserted as "
            "one-chunk documents (rule 'org') straight into the tables; the keyword indexes (FTS5 tokens + trigrams) hold every "
            "copy. Embeddings reuse each original chunk's vector plus N(0, 0.01) noise instead of running the model. Cristal "
            "times (modes interleaved query by query, as a member) include the access filter, query tokenization, query "
            "embedding (dense, hybrid) and the audit write; the admin row skips the access filter (no fetch of the readable "
            "document ids); 'cold' is the first dense query after the index changed (matrix reload, median of 3). The "
            "repeated vocabulary makes posting lists longer than in a natural corpus of the same size (pessimistic for "
            "keyword search). bm25s: index over the same chunks' Cristal "
            "tokens, time includes query tokenization. "
            + ", ".join(f"{s:,}: bm25s index {latency_results[s]['bm25s on Cristal tokens']['index_s']:.1f} s, "
                        f"synthetic insert {latency_results[s]['build_seconds']:.1f} s" for s in sizes),
            style="dim",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - started
    results["seconds"] = round(total, 1)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["load average at end"] = load
    console.print(f"total run time {total / 60:.1f} min · load average at start {info['load average at start']}, at end {load} "
                  f"(timings are only comparable on an otherwise idle machine)")
    if args.json:
        out = write_json(results_path("knowledge.json"), results)
        console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
