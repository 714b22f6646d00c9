"""Agents over real HTTP: the REST routes and ``agent:SLUG`` on the OpenAI-compatible API, with a scripted model.

Two employees of acme ask the same agent: finance may read the supplier
document, engineering may not, and that document's text never reaches the
model in engineering's turn. Another organization's key finds no agent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from cristal.agents import analytics, store
from cristal.agents.definition import load_agent_text
from cristal.config import Settings
from cristal.testing.scripted_model import Reply, ScriptedModel, text, tool_call
from tests.server.conftest import IBAN, Company, LiveServer, error_of, person

FIN, ENG, OUTSIDER = person("fin", "acme"), person("eng", "acme"), person("fin", "globex")
AGENT = "finance-helper"
QUESTION = "Who is the supplier paid to?"
SEARCH = tool_call("search_knowledge", {"query": "supplier IBAN"})
ASK = f"/api/v1/agents/{AGENT}/ask"


def _cited_answer(request: dict[str, Any]) -> Reply:
    """Cite the IBAN passage if a tool returned it to this caller, else say nothing answers."""
    for message in request["messages"]:
        if message["role"] == "tool":
            for p in (json.loads(message["content"]).get("output") or {}).get("passages", []):
                if "IBAN" in p["text"]:
                    return text(f"The supplier is paid to IBAN {IBAN['acme']} [{p['n']}].")
    return text("I found nothing about that.")


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(models=("scripted",)) as m:
        yield m


@pytest.fixture
def settings(company: Company, model: ScriptedModel) -> Settings:
    return Settings(home=company.home, llm_base_url=model.base_url, llm_model="scripted", llm_api_key="k",
                    llm_timeout_seconds=5, llm_max_retries=0)


@pytest.fixture
def agent(company: Company) -> str:
    """acme's finance-helper: built by finance, shared with engineering, published as version 1."""
    definition = load_agent_text(f"name: {AGENT}\ninstructions: Answer from the documents only; cite every fact.\n"
                                 "tools: [search_knowledge]\nsharing: [group:engineering]\n")
    store.create(company.db, definition, "acme", FIN)
    store.publish(company.db, "acme", FIN, AGENT)
    return AGENT


def _sent_after(model: ScriptedModel, start: int) -> str:
    return json.dumps([r.json for r in model.chat_requests[start:]])


def _check_permitted(fin: dict[str, Any], eng: dict[str, Any], sent_for_eng: str) -> None:
    [citation] = fin["citations"]
    assert citation["uri"].endswith("bank.md") and IBAN["acme"] in citation["quote"]
    assert IBAN["acme"] in fin["answer"]
    # The same agent, asked by engineering: the finance document never reaches the model.
    assert eng["citations"] == [] and IBAN["acme"] not in eng["answer"]
    assert IBAN["acme"] not in sent_for_eng and "Supplier payments" not in sent_for_eng


def test_rest_ask_answers_each_employee_from_what_they_may_read(client, agent: str, model: ScriptedModel) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    fin, eng = client(FIN), client(ENG)
    assert [a["agent"] for a in fin.get("/api/v1/agents").json()["agents"]] == [agent]
    assert [a["agent"] for a in eng.get("/api/v1/agents").json()["agents"]] == [agent]
    shown = eng.get(f"/api/v1/agents/{agent}").json()
    assert (shown["agent"], shown["version"], shown["can_edit"]) == (agent, 1, False)
    assert eng.get(f"/api/v1/agents/{agent}@1").json()["version"] == 1
    assert error_of(eng.get(f"/api/v1/agents/{agent}@9"))["type"] == "not_found"

    model.push(SEARCH, _cited_answer)
    fin_doc = fin.post(ASK, json={"question": QUESTION})
    assert fin_doc.status_code == 200, fin_doc.text
    start = len(model.chat_requests)
    model.push(SEARCH, _cited_answer)
    eng_doc = eng.post(ASK, json={"question": QUESTION}).json()
    answered = fin_doc.json()
    assert set(answered) >= {"agent", "version", "conversation_id", "answer", "citations", "tool_calls"}
    assert (answered["agent"], answered["version"], answered["conversation_id"]) == (agent, 1, None)
    assert answered["tool_calls"] == [{"name": "search_knowledge", "arguments": {"query": "supplier IBAN"}, "status": "ok"}]
    _check_permitted(answered, eng_doc, _sent_after(model, start))


def test_another_org_bad_bodies_and_unusable_agents_are_errors(client, company: Company, agent: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                               live: LiveServer) -> None:
    outsider = client(OUTSIDER)
    assert outsider.get("/api/v1/agents").json() == {"agents": []}
    for response in (outsider.get(f"/api/v1/agents/{agent}"), outsider.post(ASK, json={"question": QUESTION})):
        assert response.status_code == 404 and error_of(response)["type"] == "not_found"
    oai = openai.OpenAI(base_url=live.url + "/v1", api_key=company.key(OUTSIDER), max_retries=0, timeout=30)
    assert f"agent:{agent}" not in [m.id for m in oai.models.list().data]
    with pytest.raises(openai.NotFoundError, match="unknown agent"):
        oai.chat.completions.create(model=f"agent:{agent}", messages=[{"role": "user", "content": QUESTION}])
    # A private agent of finance's does not exist for engineering.
    store.create(company.db, load_agent_text("name: private\ninstructions: hi\n"), "acme", FIN)
    store.publish(company.db, "acme", FIN, "private")
    eng = client(ENG)
    assert error_of(eng.post("/api/v1/agents/private/ask", json={"question": "hi"}))["type"] == "not_found"
    # Not yet published: its editor is told to publish it; for everyone else it does not exist.
    store.create(company.db, load_agent_text("name: draft\ninstructions: hi\nsharing: [group:engineering]\n"), "acme", FIN)
    unpublished = client(FIN).post("/api/v1/agents/draft/ask", json={"question": "hi"})
    assert unpublished.status_code == 400 and "publish" in error_of(unpublished)["message"]
    assert error_of(eng.post("/api/v1/agents/draft/ask", json={"question": "hi"}))["type"] == "not_found"
    for body in ({}, {"question": ""}, {"question": "hi", "colour": "red"}, ["hi"]):
        response = eng.post(ASK, json=body)
        assert response.status_code == 400 and error_of(response)["type"] == "invalid_request", body
    assert error_of(eng.post(ASK, json={"question": "   "}))["type"] == "invalid_request"
    assert client(None).post(ASK, json={"question": "hi"}).status_code == 401


def test_a_spent_turn_budget_is_the_error_body(client, company: Company, model: ScriptedModel, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    store.create(company.db, load_agent_text("name: looper\ninstructions: hi\ntools: [search_knowledge]\n"
                                             "budgets: {steps: 2}\n"), "acme", FIN)
    store.publish(company.db, "acme", FIN, "looper")
    model.push(SEARCH, SEARCH, SEARCH, SEARCH)  # a model that calls tools forever
    response = client(FIN).post("/api/v1/agents/looper/ask", json={"question": "hi"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "turn_stopped" and "max_steps" in error["message"]
    oai = openai.OpenAI(base_url=live.url + "/v1", api_key=company.key(FIN), max_retries=0, timeout=30)
    with pytest.raises(openai.UnprocessableEntityError, match="max_steps"):
        oai.chat.completions.create(model="agent:looper", messages=[{"role": "user", "content": "hi"}])
    # Both failed turns count in the agent's statistics, as stateless ones (`api`).
    total = analytics.stats(company.db, "acme", FIN, "looper")["versions"][0]
    assert (total["failed_turns"], total["turns_by_way_in"]["api"], total["conversations"]) == (2, 2, 0)


def test_the_openai_client_talks_to_an_agent_as_each_employee(company: Company, agent: str, model: ScriptedModel,
                                                              live: LiveServer) -> None:
    def oai(email: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=live.url + "/v1", api_key=company.key(email), max_retries=0, timeout=30)

    assert [m.id for m in oai(ENG).models.list().data] == ["scripted", f"agent:{agent}"]
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello, how can I help?"}]
    messages = [*history, {"role": "user", "content": QUESTION}]
    model.push(SEARCH, _cited_answer)
    fin = oai(FIN).chat.completions.create(model=f"agent:{agent}", messages=messages)  # type: ignore[arg-type]  # plain dicts
    sent = model.chat_requests[-2].json["messages"]
    assert sent[1:] == messages  # after the agent's own instructions: the history, then the question
    start = len(model.chat_requests)
    model.push(SEARCH, _cited_answer)
    eng = oai(ENG).chat.completions.create(model=f"agent:{agent}@1", messages=messages)  # type: ignore[arg-type]  # plain dicts
    assert fin.model == eng.model == f"agent:{agent}@1"
    assert fin.choices[0].finish_reason == "stop"
    as_ask = [{"answer": r.choices[0].message.content, "citations": r.choices[0].message.citations}  # type: ignore[attr-defined]  # Cristal's documented extra field
              for r in (fin, eng)]
    _check_permitted(as_ask[0], as_ask[1], _sent_after(model, start))
    extra = fin.cristal  # type: ignore[attr-defined]  # Cristal's documented extra field
    assert extra["tool_calls"] == [{"name": "search_knowledge", "arguments": {"query": "supplier IBAN"}, "status": "ok"}]
    assert (extra["agent"], extra["version"]) == (agent, 1)

    # Streamed: the finished answer in OpenAI's chunks, the citations on the last one.
    model.push(SEARCH, _cited_answer)
    deltas, last = [], None
    for chunk in oai(FIN).chat.completions.create(model=f"agent:{agent}", messages=messages, stream=True):  # type: ignore[call-overload]  # plain dicts
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content or "")
            last = chunk
    assert "".join(deltas) == fin.choices[0].message.content and len([d for d in deltas if d]) > 1
    assert last is not None and last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.citations == fin.choices[0].message.citations  # type: ignore[attr-defined]  # the extra field
    assert last.cristal["tool_calls"] == extra["tool_calls"]  # type: ignore[attr-defined]  # the extra field


def test_agent_models_refuse_client_tools_and_a_last_message_not_the_users(client, agent: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    eng: httpx.Client = client(ENG)
    tools = [{"type": "function", "function": {"name": "x", "parameters": {"type": "object"}}}]
    for body in ({"model": f"agent:{agent}", "messages": [{"role": "user", "content": "hi"}], "tools": tools},
                 {"model": f"agent:{agent}", "messages": [{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": "yes"}]},
                 {"model": f"agent:{agent}", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}):
        response = eng.post("/v1/chat/completions", json=body)
        assert response.status_code == 400 and error_of(response)["type"] == "invalid_request", body


def test_turns_beyond_the_servers_concurrency_are_429(company: Company, settings: Settings, agent: str) -> None:
    from cristal.server import Limits

    with LiveServer(company.db, settings, Limits(agent_turn_concurrency=0)) as server:
        r = httpx.post(server.url + ASK, json={"question": QUESTION}, headers={"Authorization": f"Bearer {company.key(FIN)}"})
        assert r.status_code == 429 and r.headers["retry-after"] == "10"
        assert "agent turns are in progress" in error_of(r)["message"]
        oai = openai.OpenAI(base_url=server.url + "/v1", api_key=company.key(FIN), max_retries=0, timeout=30)
        with pytest.raises(openai.RateLimitError, match="agent turns"):
            oai.chat.completions.create(model=f"agent:{agent}", messages=[{"role": "user", "content": QUESTION}])


def test_stateless_ask_refuses_a_write_and_approvals_show_a_conversations_exact_call(  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
        client, company: Company, model: ScriptedModel, settings: Settings) -> None:
    from cristal.agents.ask import ask

    hook = "http://127.0.0.1:9/hook"
    definition = load_agent_text("name: poster\ninstructions: Post notes.\nsharing: [group:engineering]\n"
                                 f"tools:\n  - http: {{endpoints: [{{name: hook, url: '{hook}', method: POST}}]}}\n"
                                 "policy: {approve: always}\n")
    store.create(company.db, definition, "acme", FIN)
    store.publish(company.db, "acme", FIN, "poster")
    post = tool_call("http", {"url": hook, "method": "POST", "json": {"note": "Lunch at noon"}})

    model.push(post, text("Not posted."))
    doc = client(ENG).post("/api/v1/agents/poster/ask", json={"question": "Post 'Lunch at noon'."}).json()
    [call] = doc["tool_calls"]
    assert doc["status"] == "answered" and call["status"] == "refused" and "not stored" in call["message"]

    # A stored conversation (cristal ask) waits instead; the admins see the exact call over HTTP.
    model.push(post)
    waiting = ask(company.db, settings, "acme", ENG, "poster", "Post 'Lunch at noon'.")
    [approval] = client(person("admin", "acme")).get("/api/v1/approvals").json()["approvals"]
    assert (approval["id"], approval["subject"], approval["run_id"]) == (
        waiting["tool_calls"][0]["approval_id"], "conversation", waiting["conversation_id"])
    assert approval["details"]["arguments"] == {"url": hook, "method": "POST", "json": {"note": "Lunch at noon"}}
    assert approval["details"]["tool"] == "http" and approval["can_decide"] is True
    assert [a["can_decide"] for a in client(ENG).get("/api/v1/approvals").json()["approvals"]] == [False]  # the asker's
    assert client(FIN).get("/api/v1/approvals").json()["approvals"] == []
