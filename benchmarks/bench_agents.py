"""What Cristal's agent runtime costs, side by side with the same tool loop in the OpenAI Agents SDK.

One run, one scripted OpenAI-compatible model on loopback (``ScriptedModel``),
one temporary SQLite workspace (an organization, an indexed folder of generated
documents, a small ERP database as a ``sql`` source, a published agent with
``search_knowledge`` and an ``sql`` tool limited to one named query):

* **Cristal's runtime per turn and per tool call** (in-process ``run_turn``):
  a turn is model -> two tool calls (search_knowledge, sql) -> model -> answer.
  Model time is the time spent inside the ``openai`` client's
  ``chat.completions.create`` (HTTP to the scripted model and parsing), timed
  the same way for both loops and subtracted; what is left is the runtime's
  own work: authorization, metering and budget checks in the gateway, the
  tools (the search itself, the read-only query), audit records, provenance
  and citation checks.
* **The same loop with the OpenAI Agents SDK** (``openai-agents``): an
  ``Agent`` whose two function tools call the same ``Searcher.search`` and
  ``query_readonly`` as the same employee, on the same model server, model
  time subtracted the same way. It has no authorization of the tool calls, no
  audit, no metering, no provenance and no citation check.
* **Time to first token that Cristal adds**: streamed through ``cristal
  serve``'s ``/v1`` (key check, authorization, audit, budget, metering) as a
  plain chat, as an agent without tools (``agent:bench-plain``: the turn's
  set-up, then the model's stream) and as the agent with tools (two tool calls
  before the answer streams), each paired with the same client streaming from
  the model directly.
* **Concurrent conversations on one server**: N clients asking the agent at
  once over ``POST /api/v1/agents/SLUG/ask`` on one ``cristal serve``.

    .venv/bin/python benchmarks/bench_agents.py [--turns 100] [--concurrency 8] [--asks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import openai.resources.chat.completions as chat_completions

from cristal.agents import runtime, store
from cristal.agents.definition import load_agent_text
from cristal.agents.runtime import AgentConfig, ToolConfig, TurnContext, run_turn
from cristal.config import Settings
from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.apikeys import create_api_key
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.connectors.sql import query_readonly
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source
from cristal.models import Gateway
from cristal.testing import ScriptedModel, text, tool_calls

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import WARMUP, percentile
from bench_server import TOPICS, free_port, start_server, write_notes
from output import results_path, write_json

EMAIL = "alice@acme.example"
QUERY = "select id, amount, status from expenses where owner = :email order by id"
AGENT = f"""name: bench-helper
instructions: Answer from the documents and the ERP; cite every fact.
tools:
  - search_knowledge
  - sql: {{source: erp, queries: {{mine: "{QUERY}"}}}}
"""
PLAIN = "name: bench-plain\ninstructions: Answer briefly.\n"
INSTRUCTIONS = "Answer from the documents and the ERP; cite every fact."


# ---------------------------------------------------------------------------
# Model time: the time inside the openai client's create(), for both loops

class ModelClock:
    """Seconds spent inside ``chat.completions.create`` (sync and async) since the last ``take``."""

    def __init__(self) -> None:
        self.spent = 0.0
        sync, async_ = chat_completions.Completions.create, chat_completions.AsyncCompletions.create
        clock = self

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return sync(self, *args, **kwargs)
            finally:
                clock.spent += time.perf_counter() - started

        async def timed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await async_(self, *args, **kwargs)
            finally:
                clock.spent += time.perf_counter() - started

        chat_completions.Completions.create = timed  # type: ignore[method-assign]
        chat_completions.AsyncCompletions.create = timed_async  # type: ignore[method-assign]

    def take(self) -> float:
        spent, self.spent = self.spent, 0.0
        return spent


class ToolClock:
    """Seconds of each tool call of Cristal's runtime (``_Turn._call``: checks, the action, audit, provenance)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        original = runtime._Turn._call
        clock = self

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                clock.calls.append(time.perf_counter() - started)

        runtime._Turn._call = timed  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# The workspace and the scripted model


def build(root: Path, docs: int) -> tuple[str, str, str]:
    """Workspace with ``docs`` documents, an ERP source and the published agent; (database URL, API key, ERP URI)."""
    url = f"sqlite:///{root / 'cristal.db'}"
    db = Database(url)
    db.upgrade()
    installation = Principal.installation("bench")
    folder = root / "docs"
    write_notes(folder, docs, tail=". The hotel cap is 180 EUR.")
    erp = root / "erp.db"
    with sqlite3.connect(erp) as c:
        c.execute("create table expenses (id integer primary key, owner text, amount real, status text)")
        c.executemany("insert into expenses (owner, amount, status) values (?, ?, ?)",
                      [(EMAIL if i % 3 else "bob@acme.example", 10.0 + i, "pending") for i in range(200)])
    erp_uri = f"sqlite:///{erp}"
    with db.session() as s:
        orgs.create_org(s, installation, "acme")
        users.add_user(s, installation, "acme", EMAIL, groups=["finance"])
        sources.add_source(s, installation, "acme", "docs", "files", str(folder))
        sources.add_source(s, installation, "acme", "erp", "sql", erp_uri, acl=["group:finance"])
    sync_source(db, installation, "acme", "docs")
    store.create(db, load_agent_text(AGENT), "acme", EMAIL)
    store.publish(db, "acme", EMAIL, "bench-helper")
    store.create(db, load_agent_text(PLAIN), "acme", EMAIL)  # no tools: what an agent turn adds to the model's first token
    store.publish(db, "acme", EMAIL, "bench-plain")
    with db.session() as s:
        alice = resolve_principal(s, "acme", EMAIL)
        key = create_api_key(s, alice, "acme", EMAIL)[1]
    db.dispose()
    return url, key, erp_uri


def reply(body: dict[str, Any]) -> Any:
    """The model of every loop: first both tools, then an answer citing the first passage; text for plain chat."""
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or []}
    if not tools:
        return text("Economy class, receipts within 30 days.")
    if body["messages"][-1]["role"] != "tool":
        sql_args = ({"query": "mine", "params": {"email": EMAIL}} if "params" in tools["sql"]["parameters"]["properties"]
                    else {"query": "mine", "email": EMAIL})
        return tool_calls(("search_knowledge", {"query": random.choice(TOPICS)}), ("sql", sql_args))
    return text("The hotel cap is 180 EUR [1].")


# ---------------------------------------------------------------------------
# The loops


def cristal_turns(db: Database, settings: Settings, n: int, clock: ModelClock, tools: ToolClock) -> dict[str, Any]:
    with db.session() as s:
        alice = resolve_principal(s, "acme", EMAIL)
    cfg = AgentConfig(slug="bench-helper", version=1, instructions=INSTRUCTIONS,
                      tools=(ToolConfig("search_knowledge", {"mode": "keyword"}),
                             ToolConfig("sql", {"source": "erp", "queries": {"mine": QUERY}})))
    gateway = Gateway(settings, db)
    own: list[float] = []
    model: list[float] = []
    try:
        for i in range(WARMUP + n):
            clock.take()
            started = time.perf_counter()
            result = run_turn(TurnContext(db=db, settings=settings, principal=alice, conversation_id=f"bench{i}", gateway=gateway),
                              cfg, [], "What is the hotel cap, and what are my expenses?")
            wall = time.perf_counter() - started
            assert [c.status for c in result.tool_calls] == ["ok", "ok"], result.tool_calls
            if i >= WARMUP:
                spent = clock.take()
                model.append(spent * 1000)
                own.append((wall - spent) * 1000)
            else:
                tools.calls.clear()
    finally:
        gateway.close()
    return {"turn_ms": sorted(own), "model_ms": sorted(model), "tool_call_ms": sorted(c * 1000 for c in tools.calls)}


def sdk_turns(db: Database, base_url: str, erp_uri: str, n: int, clock: ModelClock) -> dict[str, Any]:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # no traces sent anywhere
    searcher = Searcher(db)
    with db.session() as s:
        alice = resolve_principal(s, "acme", EMAIL)
    tool_ms: list[float] = []

    def timed(fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            tool_ms.append((time.perf_counter() - started) * 1000)

    @function_tool
    def search_knowledge(query: str) -> str:
        """Search the documents; returns numbered passages."""
        hits = timed(lambda: searcher.search(alice, query, limit=10, mode="keyword"))
        return json.dumps({"passages": [{"n": i, "title": h.title, "uri": h.uri, "text": h.text}
                                        for i, h in enumerate(hits, 1)]}, ensure_ascii=False)

    @function_tool
    def sql(query: str, email: str) -> str:
        """Run the named read-only query 'mine' with its parameter email."""
        found = timed(lambda: query_readonly(erp_uri, {"mine": QUERY}[query], {"email": email}, max_rows=10_000))
        return json.dumps(found.rows, default=str)

    client = openai.AsyncOpenAI(base_url=base_url, api_key="scripted", max_retries=0)
    agent = Agent(name="bench-helper", instructions=INSTRUCTIONS, tools=[search_knowledge, sql],
                  model=OpenAIChatCompletionsModel(model="scripted", openai_client=client))
    own: list[float] = []
    for i in range(WARMUP + n):
        clock.take()
        started = time.perf_counter()
        result = Runner.run_sync(agent, "What is the hotel cap, and what are my expenses?")
        wall = time.perf_counter() - started
        assert "180 EUR" in str(result.final_output)
        if i >= WARMUP:
            own.append((wall - clock.take()) * 1000)
        else:
            tool_ms.clear()
    return {"turn_ms": sorted(own), "tool_call_ms": sorted(tool_ms)}


def first_token_ms(client: openai.OpenAI, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Summarise the policy."}],
                                            stream=True)
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000


def concurrent_asks(base: str, key: str, clients: int, asks: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def work(k: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            barrier.wait()
            for j in range(asks):
                started = time.perf_counter()
                r = c.post("/api/v1/agents/bench-helper/ask", json={"question": f"hotel cap? ({k}.{j})"})
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        latencies.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    return {"clients": clients, "asks": clients * asks, "statuses": statuses, "turns_per_second": len(latencies) / seconds,
            "latency_ms": sorted(latencies)}


def p(ms: list[float]) -> str:
    return f"{percentile(ms, 0.5):.1f} | {percentile(ms, 0.95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--asks", type=int, default=10, help="asks per concurrent client")
    parser.add_argument("--docs", type=int, default=200)
    args = parser.parse_args()

    clock = ModelClock()
    tool_clock = ToolClock()
    with tempfile.TemporaryDirectory() as tmp, ScriptedModel(default=reply) as model:
        root = Path(tmp)
        url, key, erp_uri = build(root, args.docs)
        settings = Settings(home=root / "home", database_url=url, llm_base_url=model.base_url, llm_api_key="scripted",
                            llm_model="scripted", llm_max_retries=0)
        db = Database(url)
        try:
            cristal = cristal_turns(db, settings, args.turns, clock, tool_clock)
            sdk = sdk_turns(db, model.base_url, erp_uri, args.turns, clock)
        finally:
            db.dispose()

        env = {**os.environ, "CRISTAL_HOME": str(root / "home"), "CRISTAL_DATABASE_URL": url,
               "CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_MODEL": "scripted", "CRISTAL_LLM_API_KEY": "scripted",
               "CRISTAL_LLM_MAX_RETRIES": "0"}
        port = free_port()
        proc = start_server(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            direct = openai.OpenAI(base_url=model.base_url, api_key="scripted", max_retries=0)
            through = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
            ttft: dict[str, list[float]] = {"direct": [], "chat": [], "plain": [], "helper": []}
            for i in range(WARMUP + args.turns):
                cases = [(direct, "scripted", "direct"), (through, "scripted", "chat"), (through, "agent:bench-plain", "plain"),
                         (through, "agent:bench-helper", "helper")]
                for client, name, label in cases if i % 2 == 0 else cases[::-1]:  # alternate: shared machine
                    ms = first_token_ms(client, name)
                    if i >= WARMUP:
                        ttft[label].append(ms)
            added = {label: sorted(c - d for c, d in zip(ttft[label], ttft["direct"], strict=True))
                     for label in ("chat", "plain", "helper")}
            load = concurrent_asks(base, key, args.concurrency, args.asks)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    doc = {"turns": args.turns, "cristal": cristal, "openai_agents_sdk": sdk,
           "ttft_ms": {k: sorted(v) for k, v in ttft.items()}, "ttft_added_ms": added, "concurrent": load}
    write_json(results_path("bench_agents.json"), doc)
    print(f"agent loop: model -> search_knowledge + sql -> model -> answer; {args.turns} turns each, "
          "model time excluded (ms, p50 | p95)\n")
    print("| | turn p50 | turn p95 | tool call p50 | tool call p95 |\n|---|---|---|---|---|")
    print(f"| Cristal runtime (`run_turn`) | {p(cristal['turn_ms'])} | {p(cristal['tool_call_ms'])} |")
    print(f"| OpenAI Agents SDK 0.24 (`Runner.run_sync`), same tools | {p(sdk['turn_ms'])} | {p(sdk['tool_call_ms'])} |")
    print(f"\nmodel time per Cristal turn (two calls to the scripted model): {p(cristal['model_ms'])}\n")
    print("| time to first token, streamed (ms) | p50 | p95 | added p50 | added p95 |\n|---|---|---|---|---|")
    print(f"| openai client -> model | {p(sorted(ttft['direct']))} | | |")
    for label, name in (("chat", "-> cristal serve /v1 -> gateway -> model"), ("plain", "-> /v1 agent:bench-plain (no tools)"),
                        ("helper", "-> /v1 agent:bench-helper (two tool calls first)")):
        print(f"| openai client {name} | {p(sorted(ttft[label]))} | {percentile(added[label], 0.5):+.1f} | "
              f"{percentile(added[label], 0.95):+.1f} |")
    print(f"\n{load['clients']} concurrent conversations on one `cristal serve`, {load['asks']} asks: "
          f"{load['turns_per_second']:.1f} turns/s, latency p50 | p95 {p(load['latency_ms'])} ms, statuses {load['statuses']}")


if __name__ == "__main__":
    main()
