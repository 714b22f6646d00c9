"""What the HTTP layer costs: ``cristal serve`` measured over real HTTP on loopback.

Starts ``cristal serve`` as its own process on a temporary SQLite workspace
(one organization, an indexed folder of generated documents, an API key) with
a ``ScriptedModel`` server as its LLM endpoint, then measures from this
process, one client at a time (latency p50/p95) and with several client
threads (requests per second):

* ``GET /healthz`` (HTTP alone) and ``GET /api/v1/me`` (+ API-key check);
* ``GET /api/v1/search`` (keyword and hybrid) against ``Searcher.search`` called in-process (the
  query embedding, CPU-bound, dominates hybrid search);
* ``POST /v1/chat/completions`` with the ``openai`` client through Cristal
  (key check, authorization, audit, budget, metering) against the same client
  calling the scripted upstream directly.

    .venv/bin/python benchmarks/bench_server.py [--requests 300] [--threads 4] [--docs 300]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx2 as httpx
import openai

from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.apikeys import create_api_key
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source
from cristal.testing import ScriptedModel, text

# The same percentile as the gateway benchmark (run as a script, this folder is on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import WARMUP, percentile  # noqa: E402

MESSAGES = [{"role": "user", "content": "Summarise the travel expense policy in one sentence."}]
TOPICS = ["hotel cap", "per diem", "travel policy", "supplier invoice", "warranty", "expense claim", "laptop",
          "parental leave", "security training", "office hours", "Reisekosten", "Garantie"]


def throughput(make: Callable[[], Callable[[], object]], n: int, threads: int) -> float:
    """Requests per second with ``threads`` clients sharing ``n`` requests (each thread its own client)."""
    fns = [make() for _ in range(threads)]
    for fn in fns:
        fn()
    per = max(1, n // threads)
    barrier = threading.Barrier(threads + 1)

    def work(fn: Callable[[], object]) -> None:
        barrier.wait()
        for _ in range(per):
            fn()

    workers = [threading.Thread(target=work, args=(fn,)) for fn in fns]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - started)


def write_notes(folder: Path, docs: int, tail: str = ".") -> None:
    """``docs`` Markdown notes of random topic words (the same for a given count) in ``folder``, readable by the org."""
    folder.mkdir()
    (folder / ".cristal-acl").write_text("org\n")
    rng = random.Random(7)
    for i in range(docs):
        words = " ".join(rng.choice(TOPICS) for _ in range(60))
        (folder / f"doc{i:04d}.md").write_text(f"# Note {i} on {rng.choice(TOPICS)}\n\n{words}{tail}\n", encoding="utf-8")


def build(root: Path, docs: int) -> tuple[str, str]:
    """A workspace with ``docs`` indexed documents; returns the database URL and an employee's API key."""
    url = f"sqlite:///{root / 'cristal.db'}"
    db = Database(url)
    db.upgrade()
    operator = Principal.installation("bench")
    folder = root / "docs"
    write_notes(folder, docs)
    with db.session() as s:
        orgs.create_org(s, operator, "acme")
        orgs.configure_llm(s, operator, "acme", monthly_budget_usd=1000)  # the budget query runs on every call
        users.add_user(s, operator, "acme", "alice@acme.example", groups=["finance"])
        sources.add_source(s, operator, "acme", "docs", "files", str(folder))
    sync_source(db, operator, "acme", "docs")
    with db.session() as s:
        alice = resolve_principal(s, "acme", "alice@acme.example")
        key = create_api_key(s, alice, "acme", "alice@acme.example")[1]
    db.dispose()
    return url, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cristal", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise SystemExit(f"cristal serve exited: {proc.stderr.read() if proc.stderr else ''}")
    raise SystemExit("cristal serve did not start")


def paired(a: Callable[[str], object], b: Callable[[str], object], n: int) -> tuple[list[float], list[float], list[float]]:
    """Sorted ms of ``a`` and ``b`` called alternately with the same query, and the sorted per-pair differences.

    The machine is shared: alternating the two (in both orders) puts any
    background load on both sides, so the difference stays meaningful.
    """
    for _ in range(WARMUP):
        a("warm up"), b("warm up")
    ta, tb = [], []
    for i in range(n):
        query = random.choice(TOPICS)
        for fn, out in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            started = time.perf_counter()
            fn(query)
            out.append((time.perf_counter() - started) * 1000)
    return sorted(ta), sorted(tb), sorted(y - x for x, y in zip(ta, tb))


def row(name: str, ms: list[float], rps: float | None, added: list[float] | None = None) -> str:
    rate = f"{rps:,.0f}" if rps is not None else ""
    extra = f"{percentile(added, 0.5):+.2f} / {percentile(added, 0.95):+.2f}" if added else ""
    return f"| {name} | {percentile(ms, 0.5):.2f} | {percentile(ms, 0.95):.2f} | {rate} | {extra} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--docs", type=int, default=300)
    args = parser.parse_args()
    n, threads = args.requests, args.threads

    with tempfile.TemporaryDirectory() as tmp, ScriptedModel(default=text("Economy class, receipts within 30 days.")) as model:
        root = Path(tmp)
        url, key = build(root, args.docs)
        env = {**os.environ, "CRISTAL_HOME": str(root / "home"), "CRISTAL_DATABASE_URL": url,
               "CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_MODEL": "scripted", "CRISTAL_LLM_API_KEY": "upstream",
               "CRISTAL_LLM_MAX_RETRIES": "0"}
        port = free_port()
        proc = start_server(env, port)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        db = Database(url)
        try:
            searcher = Searcher(db)
            with db.session() as s:
                alice = resolve_principal(s, "acme", "alice@acme.example")

            def http_get(path: str, with_key: bool = True, mode: str = "hybrid") -> Callable[[str], object]:
                c = httpx.Client(base_url=base, headers=auth if with_key else {}, timeout=30)

                def call(query: str) -> object:
                    r = c.get(path, params={"q": query, "limit": 10, "mode": mode} if path.endswith("search") else None)
                    assert r.status_code == 200, r.text
                    return r
                return call

            def chat(base_url: str, api_key: str) -> Callable[[str], object]:
                c = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
                return lambda _query: c.chat.completions.create(model="scripted", messages=MESSAGES)

            def in_process(mode: str) -> Callable[[str], object]:
                return lambda query: searcher.search(alice, query, limit=10, mode=mode)  # type: ignore[arg-type]

            # (baseline, through the server): each pair is measured alternately; throughput per case.
            pairs: list[tuple[str, Callable[[], Callable[[str], object]], str, Callable[[], Callable[[str], object]]]] = [
                ("GET /healthz (HTTP alone)", lambda: http_get("/healthz", with_key=False),
                 "GET /api/v1/me (+ API key check)", lambda: http_get("/api/v1/me")),
                ("Searcher.search in-process (keyword, limit 10)", lambda: in_process("keyword"),
                 "GET /api/v1/search (keyword, limit 10)", lambda: http_get("/api/v1/search", mode="keyword")),
                ("Searcher.search in-process (hybrid, limit 10)", lambda: in_process("hybrid"),
                 "GET /api/v1/search (hybrid, limit 10)", lambda: http_get("/api/v1/search")),
                ("chat: openai client -> scripted upstream", lambda: chat(model.base_url, "upstream"),
                 "chat: openai client -> Cristal /v1 -> gateway -> upstream", lambda: chat(base + "/v1", key)),
            ]
            print(f"cristal serve on SQLite, {args.docs} documents; latency: {n} requests per case, alternating with its "
                  f"baseline; throughput: {n} requests from {threads} client threads")
            print()
            print("| case | p50 ms | p95 ms | req/s | added p50 / p95 ms |")
            print("|---|---:|---:|---:|---:|")
            for base_name, make_base, name, make in pairs:
                ta, tb, added = paired(make_base(), make(), n)
                print(row(base_name, ta, throughput(lambda: partial(make_base(), "hotel cap"), n, threads)), flush=True)
                print(row(name, tb, throughput(lambda: partial(make(), "hotel cap"), n, threads), added), flush=True)
        finally:
            db.dispose()
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
