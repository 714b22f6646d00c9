"""``cristal mcp serve`` as a real process, driven by the SDK's client over stdio: each caller sees only their documents."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from cristal.db import Database
from cristal.identity import users
from cristal.knowledge import sources
from cristal.knowledge.sync import sync_source
from tests.conftest import INSTALLATION
from tests.knowledge.conftest import write_tree


@pytest.fixture
def indexed(two_orgs: Database, tmp_path: Path) -> Database:
    """acme's wiki (folders with access rules) and globex's own document."""
    docs = write_tree(tmp_path / "docs")
    other = write_tree(tmp_path / "globex-docs", {"plan.md": "# Globex plan\n\nGlobex pays supplier invoices by IBAN.\n"})
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "wiki", "files", str(docs))
        sources.add_source(s, INSTALLATION, "globex", "wiki", "files", str(other), acl="org")
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    sync_source(two_orgs, INSTALLATION, "acme", "wiki")
    sync_source(two_orgs, INSTALLATION, "globex", "wiki")
    return two_orgs


def _params(db_url: str, *args: str, extra_env: dict[str, str] | None = None) -> StdioServerParameters:
    # The SDK gives a stdio server only a few harmless variables; the server process needs its workspace.
    env = {"CRISTAL_DATABASE_URL": db_url, "CRISTAL_HOME": os.environ["CRISTAL_HOME"], **(extra_env or {})}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return StdioServerParameters(command=sys.executable, args=["-m", "cristal", "mcp", "serve", *args], env=env)


def _session(db_url: str, email: str, calls: list[tuple[str, dict[str, Any]]],
             extra_env: dict[str, str] | None = None) -> tuple[list[str], list[Any]]:
    """Tool names and the result of each call, from one `cristal mcp serve --as EMAIL` process."""

    async def main() -> tuple[list[str], list[Any]]:
        with anyio.fail_after(120):
            async with Client(_params(db_url, "--org", "acme", "--as", email, extra_env=extra_env), cache=None) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                results = []
                for tool, arguments in calls:
                    answer = await client.call_tool(tool, arguments)
                    text = " ".join(getattr(b, "text", "") for b in answer.content)
                    results.append(("error", text) if answer.is_error else answer.structured_content)
                return names, results

    return anyio.run(main)


def _uris(result: dict[str, Any]) -> set[str]:
    return {Path(hit["uri"]).name for hit in result["hits"]}


def test_search_knowledge_and_agents_act_as_the_caller(indexed: Database, db_url: str) -> None:
    """Search finds what each caller may read; a published agent shared with finance is a tool for finance only,
    and answers as the caller (one process per caller: each costs seconds to start)."""
    from cristal.agents import store
    from cristal.agents.definition import load_agent_text
    from cristal.testing.scripted_model import ScriptedModel, text, tool_call

    definition = load_agent_text("name: finance-helper\ndescription: Supplier questions.\n"
                                 "instructions: Answer from the documents.\ntools: [search_knowledge]\n"
                                 "sharing: [group:finance]\n")
    store.create(indexed, definition, "acme", "admin@acme.example")
    store.publish(indexed, "acme", "admin@acme.example", "finance-helper")
    query = {"query": "supplier IBAN paid every quarter"}
    script = [tool_call("search_knowledge", query), text("See the bank document.")]
    with ScriptedModel(script) as model:
        env = {"CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "scripted",
               "CRISTAL_LLM_MAX_RETRIES": "0"}
        names, (fin, answer) = _session(db_url, "fin@acme.example", [
            ("search_knowledge", query), ("agent_finance-helper", {"question": "Who is paid?"})], extra_env=env)
        sent = [r.json for r in model.chat_requests]
    assert {"search_knowledge", "research", "agent_finance-helper"} <= set(names)
    assert "bank.txt" in _uris(fin)
    assert (answer["agent"], answer["version"], answer["conversation_id"]) == ("finance-helper", 1, None)
    assert answer["tool_calls"][0]["status"] == "ok" and "bank.txt" in str(sent)
    eng_names, (eng, refused) = _session(db_url, "eng@acme.example", [
        ("search_knowledge", query), ("agent_finance-helper", {"question": "Who is paid?"})])
    assert "bank.txt" not in _uris(eng)
    assert all("IBAN" not in hit["snippet"] for hit in eng["hits"])
    assert "agent_finance-helper" not in eng_names
    assert refused[0] == "error" and "unknown agent" in refused[1]
    # Nothing of the other organization, whoever asks.
    assert "plan.md" not in _uris(fin) | _uris(eng)


def test_research_acts_as_the_caller(indexed: Database, db_url: str) -> None:
    question = {"question": "What was the revenue in Q3?", "mode": "extractive", "max_seconds": 60}
    _, (fin,) = _session(db_url, "fin@acme.example", [("research", question)])
    assert any(Path(c["uri"]).name == "q3.md" for c in fin["citations"])
    assert "4.2 million" in fin["report"]
    _, (eng,) = _session(db_url, "eng@acme.example", [("research", question)])
    assert not any(Path(c["uri"]).name == "q3.md" for c in eng["citations"])
    assert "4.2 million" not in eng["report"]


def test_calls_are_audited_as_the_caller(indexed: Database, db_url: str) -> None:
    from sqlalchemy import select

    from cristal.db.schema import AuditRecord

    _session(db_url, "eng@acme.example", [("search_knowledge", {"query": "travel policy hotels"})])
    with indexed.session() as s:
        actors = {r.actor for r in s.scalars(select(AuditRecord).where(AuditRecord.action == "knowledge.search"))}
    assert any("eng@acme.example" in actor for actor in actors)


def test_bad_arguments_are_a_tool_error(indexed: Database, db_url: str) -> None:
    _, (bad,) = _session(db_url, "eng@acme.example", [("search_knowledge", {"query": "", "limit": 5})])
    assert bad[0] == "error"
    assert "query" in bad[1]


def test_an_unknown_employee_is_a_one_line_error(indexed: Database, cli) -> None:  # type: ignore[no-untyped-def]  # the cli fixture is untyped
    result = cli("mcp", "serve", "--org", "acme", "--as", "nobody@acme.example", input="")
    assert result.code == 3, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nobody@acme.example" in lines[0]


def test_each_call_sees_the_callers_access_of_that_moment(indexed: Database, db_url: str) -> None:
    """Leaving the finance group, then being removed, takes effect on the next call of a running server."""
    query = {"query": "supplier IBAN paid every quarter"}

    async def main() -> list[Any]:
        results: list[Any] = []
        with anyio.fail_after(120):
            async with Client(_params(db_url, "--org", "acme", "--as", "fin@acme.example"), cache=None) as client:
                for change in ("none", "leave", "remove"):
                    with indexed.session() as s:
                        if change == "leave":
                            users.leave_group(s, INSTALLATION, "acme", "fin@acme.example", "finance")
                        elif change == "remove":
                            users.remove_user(s, INSTALLATION, "acme", "fin@acme.example")
                    answer = await client.call_tool("search_knowledge", query)
                    text = " ".join(getattr(b, "text", "") for b in answer.content)
                    results.append(("error", text) if answer.is_error else answer.structured_content)
        return results

    before, after_leaving, after_removal = anyio.run(main)
    assert "bank.txt" in _uris(before)
    assert "bank.txt" not in _uris(after_leaving)
    assert after_removal[0] == "error" and "fin@acme.example" in after_removal[1]

