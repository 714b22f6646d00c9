"""``/mcp`` on a real server, driven by the MCP SDK's streamable-HTTP client with each employee's API key.

One server for the module (acme and globex, a scripted model): finance and
engineering of acme see the agent shared with engineering, and each finds only
what they may read; globex's key sees neither acme's agents nor its documents;
a bad or missing key is the documented 401 body.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import select

from cristal.agents import store
from cristal.agents.definition import load_agent_text
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import AuditRecord
from cristal.testing.scripted_model import Reply, ScriptedModel, text, tool_call
from tests.server.conftest import IBAN, Company, LiveServer, build_company, error_of, person

FIN, ENG, ADMIN, OUTSIDER = person("fin", "acme"), person("eng", "acme"), person("admin", "acme"), person("fin", "globex")
AGENT = "finance-helper"
TIMEOUT = 30


class World:
    def __init__(self, company: Company, server: LiveServer, model: ScriptedModel) -> None:
        self.company, self.server, self.model = company, server, model

    @property
    def url(self) -> str:
        return self.server.url + "/mcp"


@pytest.fixture(scope="module")
def world(migrated_sqlite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mcp-http")
    shutil.copyfile(migrated_sqlite, root / "cristal.db")
    url = f"sqlite:///{root / 'cristal.db'}"
    db = Database(url)
    company = build_company(db, url, root)
    shared = load_agent_text(f"name: {AGENT}\ndescription: Answers supplier questions.\n"
                             "instructions: Answer from the documents only; cite every fact.\n"
                             "tools: [search_knowledge]\nsharing: [group:engineering]\n")
    store.create(db, shared, "acme", FIN)
    store.publish(db, "acme", FIN, AGENT)
    store.create(db, load_agent_text("name: private\ninstructions: hi\n"), "acme", ADMIN)
    store.publish(db, "acme", ADMIN, "private")
    store.create(db, load_agent_text("name: unpublished\ninstructions: hi\nsharing: [org]\n"), "acme", ADMIN)
    with ScriptedModel(models=("scripted",)) as model:
        settings = Settings(home=company.home, llm_base_url=model.base_url, llm_model="scripted", llm_api_key="k",
                            llm_timeout_seconds=5, llm_max_retries=0)
        with LiveServer(db, settings) as server:
            yield World(company, server, model)
    db.dispose()


def session(world: World, email: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[Any]]:
    """Tool names and each call's result (``("error", text)`` for a tool error) over one MCP client as ``email``."""

    async def main() -> tuple[list[str], list[Any]]:
        with anyio.fail_after(TIMEOUT):
            http = httpx.AsyncClient(headers={"Authorization": f"Bearer {world.company.key(email)}"}, timeout=TIMEOUT)
            async with http, Client(streamable_http_client(world.url, http_client=http), cache=None) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                results = []
                for tool, arguments in calls:
                    answer = await client.call_tool(tool, arguments)
                    body = " ".join(getattr(b, "text", "") for b in answer.content)
                    results.append(("error", body) if answer.is_error else answer.structured_content)
                return names, results

    return anyio.run(main)


def _uris(result: dict[str, Any]) -> set[str]:
    return {Path(hit["uri"]).name for hit in result["hits"]}


def _cited(request: dict[str, Any]) -> Reply:
    for message in request["messages"]:
        if message["role"] == "tool":
            for p in (json.loads(message["content"]).get("output") or {}).get("passages", []):
                if "IBAN" in p["text"]:
                    return text(f"The supplier is paid to IBAN {IBAN['acme']} [{p['n']}].")
    return text("I found nothing about that.")


SEARCH = ("search_knowledge", {"query": "supplier IBAN paid", "mode": "keyword"})


def test_each_key_gets_its_own_tools_and_documents(world: World) -> None:
    fin_tools, (fin,) = session(world, FIN, [SEARCH])
    eng_tools, (eng,) = session(world, ENG, [SEARCH])
    out_tools, (out,) = session(world, OUTSIDER, [SEARCH])
    assert fin_tools == eng_tools == ["search_knowledge", "research", f"agent_{AGENT}"]
    # The admin's private agent and the unpublished one are tools for nobody else; another org sees no agent.
    assert out_tools == ["search_knowledge", "research"]
    assert "bank.md" in _uris(fin) and "bank.md" not in _uris(eng)
    assert all(IBAN["acme"] not in h["snippet"] for h in eng["hits"])
    assert IBAN["acme"] not in json.dumps(out) and "bank.md" in _uris(out)  # globex's own finance document
    admin_tools, _ = session(world, ADMIN, [])
    assert {f"agent_{AGENT}", "agent_private", "agent_unpublished"} - set(admin_tools) == {"agent_unpublished"}
    with world.company.db.session() as s:
        actors = {r.actor for r in s.scalars(select(AuditRecord).where(AuditRecord.action == "knowledge.search"))}
    assert any(ENG in a for a in actors) and any(OUTSIDER in a for a in actors)


def test_an_agent_tool_answers_as_the_caller(world: World) -> None:
    question = {"question": "Who is the supplier paid to?"}
    world.model.push(tool_call("search_knowledge", {"query": "supplier IBAN"}), _cited)
    _, (fin,) = session(world, FIN, [(f"agent_{AGENT}", question)])
    start = len(world.model.chat_requests)
    world.model.push(tool_call("search_knowledge", {"query": "supplier IBAN"}), _cited)
    _, (eng,) = session(world, ENG, [(f"agent_{AGENT}", question)])
    sent_for_eng = json.dumps([r.json for r in world.model.chat_requests[start:]])
    assert (fin["agent"], fin["version"], fin["conversation_id"]) == (AGENT, 1, None)
    assert IBAN["acme"] in fin["answer"] and fin["citations"][0]["uri"].endswith("bank.md")
    assert fin["tool_calls"] == [{"name": "search_knowledge", "arguments": {"query": "supplier IBAN"}, "status": "ok"}]
    assert IBAN["acme"] not in eng["answer"] and eng["citations"] == []
    assert IBAN["acme"] not in sent_for_eng


def test_agents_the_caller_may_not_use_and_bad_arguments_are_tool_errors(world: World) -> None:
    calls = [(f"agent_{AGENT}", {"question": "hi"}), ("agent_private", {"question": "hi"}),
             ("search_knowledge", {"query": "x", "colour": "red"}), (f"agent_{AGENT}", {"question": ""}),
             ("teleport", {})]
    _, results = session(world, OUTSIDER, calls)
    assert [r[0] for r in results] == ["error"] * len(calls), results
    assert "unknown agent" in results[0][1] and "unknown agent" in results[1][1]
    assert "colour" in results[2][1] and "empty" in results[3][1] and "unknown tool" in results[4][1]
    _, (private,) = session(world, ENG, [("agent_private", {"question": "hi"})])
    assert private[0] == "error" and "unknown agent" in private[1]


@pytest.mark.parametrize("authorization", [None, "Bearer cri_bogus_key", "Basic Zm9vOmJhcg=="])
def test_a_bad_or_missing_key_is_the_documented_401(world: World, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    response = httpx.post(world.url, json=initialize, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 401
    assert error_of(response)["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_sdk_client_with_a_bad_key_fails_fast(world: World) -> None:
    async def main() -> None:
        with anyio.fail_after(TIMEOUT):
            http = httpx.AsyncClient(headers={"Authorization": "Bearer cri_bogus_key"}, timeout=TIMEOUT)
            async with http, Client(streamable_http_client(world.url, http_client=http), cache=None) as client:
                await client.list_tools()

    # The SDK turns the 401 into an MCPError inside its task groups: the client stops, it never hangs.
    with pytest.raises(BaseExceptionGroup) as err:
        anyio.run(main)
    assert "Server returned an error response" in repr(err.value)


def test_research_and_busy_slots(world: World) -> None:
    question = {"question": "Who is the supplier paid to?", "mode": "extractive", "max_seconds": 30}
    _, (fin,) = session(world, FIN, [("research", question)])
    _, (eng,) = session(world, ENG, [("research", question)])
    assert any(Path(c["uri"]).name == "bank.md" for c in fin["citations"])
    assert IBAN["acme"] not in json.dumps(eng)
    # /mcp shares the server's agent-turn slots with the REST routes: when they are taken, a call is a tool error.
    slots = world.server.app.state.cristal.agent_turn_slots
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        _, (busy,) = session(world, FIN, [(f"agent_{AGENT}", {"question": "hi"})])
    finally:
        for _ in range(taken):
            slots.release()
    assert busy[0] == "error" and "try again shortly" in busy[1]


def test_only_post_is_served(world: World) -> None:
    """Stateless: no stream to GET (it would stay open, idle) and no session to DELETE; the documented 405."""
    headers = {"Authorization": f"Bearer {world.company.key(FIN)}", "Accept": "text/event-stream"}
    for method in ("GET", "DELETE"):
        response = httpx.request(method, world.url, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 405 and error_of(response)["type"] == "method_not_allowed"
        assert response.headers["Allow"] == "POST"
