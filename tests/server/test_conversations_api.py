"""Stored conversations over real HTTP (``/api/v1/conversations``), streamed turns, and live ``agent:`` chunks.

The agent of ``test_agents_api`` (finance-helper, built by finance, shared with
engineering) answers through a scripted model on loopback. Each conversation is
its starter's alone: a colleague the agent is shared with, an admin and another
organization's key all get the 404 of a conversation that does not exist, and
what they tried leaves it as it was.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
from sqlalchemy import func, select

from cristal.config import Settings
from cristal.db.schema import AuditRecord, Conversation, ConversationMessage
from cristal.testing.scripted_model import Reply, ScriptedModel, http_status, text
from tests.server.conftest import IBAN, Company, LiveServer, error_of, person
from tests.server.test_agents_api import AGENT, SEARCH, _cited_answer, agent, model, settings

__all__ = ["agent", "model", "settings"]  # fixtures shared with the agents API's tests

FIN, ENG, ADMIN, OUTSIDER = person("fin", "acme"), person("eng", "acme"), person("admin", "acme"), person("fin", "globex")
QUESTION = "Who is the supplier paid to?"
BASE = "/api/v1/conversations"


def _stored(company: Company) -> tuple[int, int]:
    """(conversations, messages) in the database."""
    with company.db.session() as s:
        return (s.scalar(select(func.count()).select_from(Conversation)) or 0,
                s.scalar(select(func.count()).select_from(ConversationMessage)) or 0)


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of a streamed response, as they arrive: (event, data)."""
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def _start(c: httpx.Client, message: str = QUESTION, **extra: Any) -> dict[str, Any]:
    response = c.post(BASE, json={"agent": AGENT, "message": message, **extra})
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_start_continue_search_export_rename_delete(client, agent: str, model: ScriptedModel) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    fin = client(FIN)
    model.push(SEARCH, _cited_answer)
    first = _start(fin)
    cid = first["conversation_id"]
    assert (first["agent"], first["version"]) == (agent, 1) and IBAN["acme"] in first["answer"]
    [citation] = first["citations"]
    assert citation["uri"].endswith("bank.md")
    usage = first["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] == first["tokens"]
    assert usage["cost_usd"] == first["cost_usd"]

    model.push(text("Grüße aus der Buchhaltung: the hotel cap is 150 EUR."))
    second = fin.post(f"{BASE}/{cid}/messages", json={"message": "And the hotel cap?"})
    assert second.status_code == 200, second.text
    assert second.json()["conversation_id"] == cid
    sent = model.chat_requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]

    listed = fin.get(BASE).json()["conversations"]
    assert [(c["conversation_id"], c["turns"], c["title"]) for c in listed] == [(cid, 2, QUESTION)]
    for q, found in (("supplier", True), (IBAN["acme"], True), ("HOTEL CAP", True), ("grüße", True),
                     ("nothing like this", False)):
        hits = fin.get(BASE, params={"q": q}).json()["conversations"]
        assert [c["conversation_id"] for c in hits] == ([cid] if found else []), q
    assert fin.get(BASE, params={"agent": "other"}).json() == {"conversations": []}

    shown = fin.get(f"{BASE}/{cid}").json()
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    exported = fin.get(f"{BASE}/{cid}/export").json()
    assert exported["format"] == "cristal.conversation/1" and exported["messages"] == shown["messages"]
    markdown = fin.get(f"{BASE}/{cid}/export", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    md = markdown.text
    assert md.startswith(f"# {QUESTION}\n") and "## 1. You" in md and "## 2. You" in md
    assert f"- [1] {citation['uri']}: “{citation['quote']}”" in md and "tool `search_knowledge` (ok)" in md
    assert "Grüße aus der Buchhaltung" in md

    renamed = fin.patch(f"{BASE}/{cid}", json={"title": "Supplier questions"}).json()
    assert renamed["title"] == "Supplier questions"
    assert fin.delete(f"{BASE}/{cid}").json() == {"conversation_id": cid, "deleted": True}
    assert error_of(fin.get(f"{BASE}/{cid}"))["type"] == "not_found"


def test_a_conversation_is_its_starters_alone(client, company: Company, agent: str, model: ScriptedModel) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    model.push(text("Hello, finance."))
    cid = _start(client(FIN), "Hello?")["conversation_id"]
    before = _stored(company)
    for who in (ENG, ADMIN, OUTSIDER):  # the agent is shared with engineering; admins read no one's conversations
        c = client(who)
        assert c.get(BASE).json() == {"conversations": []}
        assert c.get(BASE, params={"q": "Hello"}).json() == {"conversations": []}
        for response in (c.get(f"{BASE}/{cid}"), c.get(f"{BASE}/{cid}/export"),
                         c.get(f"{BASE}/{cid}/export", params={"format": "markdown"}),
                         c.patch(f"{BASE}/{cid}", json={"title": "mine now"}), c.delete(f"{BASE}/{cid}"),
                         c.post(f"{BASE}/{cid}/messages", json={"message": "Let me in"}),
                         c.post(f"{BASE}/{cid}/messages", json={"message": "Let me in", "stream": True})):
            assert response.status_code == 404, (who, response.request.url)
            error = error_of(response)
            assert error["type"] == "not_found" and "unknown conversation" in error["message"]
            assert "Hello" not in response.text
    # Another organization's key does not even find the agent.
    assert error_of(client(OUTSIDER).post(BASE, json={"agent": AGENT, "message": "hi"}))["type"] == "not_found"
    assert _stored(company) == before and len(model.chat_requests) == 1
    doc = client(FIN).get(f"{BASE}/{cid}").json()
    assert (doc["title"], doc["turns"]) == ("Hello?", 1)
    with company.db.session() as s:  # every refusal is in the audit trail, as the one who tried
        refused = {(r.actor, r.action) for r in s.scalars(select(AuditRecord).where(AuditRecord.decision == "deny"))}
    assert {(f"user:{ENG}@acme", "conversation.read"), (f"user:{ADMIN}@acme", "conversation.delete"),
            (f"user:{ENG}@acme", "conversation.write"), (f"user:{OUTSIDER}@globex", "http.not_found")} <= refused


def test_bad_input_is_the_error_body_and_writes_nothing(client, company: Company, agent: str, model: ScriptedModel,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                        live: LiveServer) -> None:
    fin = client(FIN)
    model.push(text("Hello."))
    cid = _start(fin, "Hello?")["conversation_id"]
    before = _stored(company)
    huge = "x" * 2001
    cases = [
        (fin.get(f"{BASE}/no-such-conversation"), 404, "not_found"),
        (fin.post(f"{BASE}/no-such-conversation/messages", json={"message": "hi"}), 404, "not_found"),
        (fin.post(f"{BASE}/{cid}/messages", json={"message": huge}), 400, "invalid_request"),
        (fin.post(BASE, json={"agent": AGENT, "message": huge, "stream": True}), 400, "invalid_request"),
        (fin.post(f"{BASE}/{cid}/messages", json={"message": "y" * 2 * 1024 * 1024}), 413, "body_too_large"),
        (fin.post(f"{BASE}/{cid}/messages", json={"message": ""}), 400, "invalid_request"),
        (fin.post(f"{BASE}/{cid}/messages", json={"message": "hi", "colour": "red"}), 400, "invalid_request"),
        (fin.post(BASE, json={"message": "hi"}), 400, "invalid_request"),
        (fin.post(BASE, json={"agent": "no-such-agent", "message": "hi"}), 404, "not_found"),
        (fin.patch(f"{BASE}/{cid}", json={"title": "   "}), 400, "invalid_request"),
        (fin.get(f"{BASE}/{cid}/export", params={"format": "pdf"}), 400, "invalid_request"),
        (client(None).get(BASE), 401, "unauthorized"),
    ]
    for response, status, type_ in cases:
        assert (response.status_code, error_of(response)["type"]) == (status, type_), response.request.url
    assert "2000" in error_of(cases[2][0])["message"]
    # A turn that fails — the model breaks, or the turn spends its budget — leaves the conversation as it was.
    model.push(http_status(500))
    failed = fin.post(f"{BASE}/{cid}/messages", json={"message": "hi"})
    assert failed.status_code == 502 and error_of(failed)["type"] == "model_error"
    model.push(http_status(500))
    with fin.stream("POST", f"{BASE}/{cid}/messages", json={"message": "hi", "stream": True}) as streamed:
        assert streamed.status_code == 200
        events = list(_events(streamed))
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "model_error"
    assert _stored(company) == before
    assert fin.get(f"{BASE}/{cid}").json()["turns"] == 1


def test_a_streamed_turn_shows_each_event_as_it_happens(client, company: Company, agent: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                        model: ScriptedModel) -> None:
    seen_tool = threading.Event()
    waited: list[bool] = []

    def answer_once_the_tool_was_seen(request: dict[str, Any]) -> Reply:
        # The model answers only after the client has received the tool's events: they were not held back.
        waited.append(seen_tool.wait(10))
        return _cited_answer(request)

    model.push(SEARCH, answer_once_the_tool_was_seen)
    fin = client(FIN)
    events: list[tuple[str, dict[str, Any]]] = []
    with fin.stream("POST", BASE, json={"agent": AGENT, "message": QUESTION},
                    headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for kind, data in _events(response):
            events.append((kind, data))
            if kind == "tool_call.finished":
                seen_tool.set()
    assert waited == [True]
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["tool_call.started", "tool_call.finished"] and kinds[-1] == "done"
    assert events[0][1] == {"id": events[1][1]["id"], "name": "search_knowledge", "arguments": {"query": "supplier IBAN"}}
    assert events[1][1]["status"] == "ok"
    done = events[-1][1]
    texts = [d["text"] for k, d in events if k == "text"]
    assert len(texts) > 1 and "".join(texts) == done["answer"] and IBAN["acme"] in done["answer"]
    assert [d for k, d in events if k == "citation"] == done["citations"] and len(done["citations"]) == 1
    assert done["usage"]["total_tokens"] > 0
    # Stored once finished, like a turn that was not streamed.
    stored = client(FIN).get(f"{BASE}/{done['conversation_id']}").json()
    assert stored["turns"] == 1 and stored["messages"][-1]["message"]["content"] == done["answer"]
    # Engineering, streaming the same question, never gets the finance document in any event.
    model.push(SEARCH, _cited_answer)
    with client(ENG).stream("POST", BASE, json={"agent": AGENT, "message": QUESTION, "stream": True}) as response:
        body = response.read().decode()
    assert "event: done" in body and IBAN["acme"] not in body and "Supplier payments" not in body


def test_agent_models_stream_while_the_turn_runs(company: Company, agent: str, model: ScriptedModel,
                                                 live: LiveServer) -> None:
    oai = openai.OpenAI(base_url=live.url + "/v1", api_key=company.key(FIN), max_retries=0, timeout=30)
    messages = [{"role": "user", "content": QUESTION}]
    model.push(SEARCH, _cited_answer)
    whole = oai.chat.completions.create(model=f"agent:{agent}", messages=messages)  # type: ignore[arg-type]  # plain dicts
    assert whole.usage is not None and whole.usage.total_tokens > 0
    assert whole.usage.cost_usd == whole.cristal["cost_usd"]  # type: ignore[attr-defined]  # Cristal's documented extra fields

    seen_tool = threading.Event()
    waited: list[bool] = []

    def answer_once_the_tool_was_seen(request: dict[str, Any]) -> Reply:
        waited.append(seen_tool.wait(10))
        return _cited_answer(request)

    model.push(SEARCH, answer_once_the_tool_was_seen)
    deltas, tool_events, finish, usage = [], [], None, None
    for chunk in oai.chat.completions.create(model=f"agent:{agent}", messages=messages, stream=True,  # type: ignore[call-overload]  # plain dicts
                                             stream_options={"include_usage": True}):
        event = (getattr(chunk, "cristal", None) or {}).get("event")
        if event:
            tool_events.append(event)
            if event == "tool_call.finished":
                seen_tool.set()
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
        assert chunk.model == f"agent:{agent}@1"
    assert waited == [True] and tool_events == ["tool_call.started", "tool_call.finished", "citation"]
    assert "".join(deltas) == whole.choices[0].message.content and len([d for d in deltas if d]) > 1
    assert finish == "stop" and usage is not None and usage.total_tokens == whole.usage.total_tokens


def test_an_endpoint_that_cannot_stream_still_shows_tool_calls_live(company: Company, agent: str, model: ScriptedModel,
                                                                    settings: Settings) -> None:
    with LiveServer(company.db, settings.model_copy(update={"agent_stream_tokens": False})) as server:
        model.push(SEARCH, _cited_answer)
        with httpx.stream("POST", server.url + BASE, json={"agent": AGENT, "message": QUESTION, "stream": True},
                          headers={"Authorization": f"Bearer {company.key(FIN)}"}, timeout=30) as response:
            events = list(_events(response))
    assert not any(r.json.get("stream") for r in model.chat_requests)
    kinds = [k for k, _ in events]
    assert kinds == ["tool_call.started", "tool_call.finished", "text", "citation", "done"]
    assert events[2][1] == {"text": events[-1][1]["answer"], "step": 2}


def test_a_write_waits_for_an_approval_and_the_next_message_takes_it_up(client, company: Company, agent: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                                        model: ScriptedModel) -> None:
    from cristal.agents import store
    from cristal.agents.definition import load_agent_text
    from cristal.testing.scripted_model import tool_call

    hook = "http://127.0.0.1:9/hook"
    store.create(company.db, load_agent_text(
        "name: poster\ninstructions: Post notes.\nsharing: [group:engineering]\npolicy: {approve: always}\n"
        f"tools:\n  - http: {{endpoints: [{{name: hook, url: '{hook}', method: POST}}]}}\n"), "acme", FIN)
    store.publish(company.db, "acme", FIN, "poster")
    eng = client(ENG)
    model.push(tool_call("http", {"url": hook, "method": "POST", "json": {"note": "Lunch at noon"}}))
    first = eng.post(BASE, json={"agent": "poster", "message": "Post 'Lunch at noon'."}).json()
    cid, [call] = first["conversation_id"], first["tool_calls"]
    assert first["status"] == "needs_approval" and call["status"] == "needs_approval"
    early = eng.post(f"{BASE}/{cid}/messages", json={"message": "Go on."})
    assert early.status_code == 400 and "waits for approval" in error_of(early)["message"]

    assert client(ADMIN).post(f"/api/v1/approvals/{call['approval_id']}/approve").status_code == 200
    model.push(text("Done."))
    after = eng.post(f"{BASE}/{cid}/messages", json={"message": "Go on."}).json()
    taken = after["tool_calls"][0]
    # The approved call ran through the http action (whose network policy refuses a loopback address here).
    assert (taken["name"], taken["approval_id"], after["answer"]) == ("http", call["approval_id"], "Done.")
    assert taken["status"] == "error" and after["status"] == "answered"
    model.push(text("Nothing more."))
    again = eng.post(f"{BASE}/{cid}/messages", json={"message": "Anything else?"}).json()
    assert again["tool_calls"] == []  # taken up once
