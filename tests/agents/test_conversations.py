"""Stored conversations: continued with their history and version, private to their owner (admins and other
organizations included), nothing stored for a failed turn, export, retention and purge."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from cristal.agents import conversations as conv
from cristal.agents import store
from cristal.agents.ask import ask
from cristal.agents.definition import load_agent_text
from cristal.agents.runtime import TurnStopped
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import AuditRecord, Conversation, ConversationMessage, utcnow
from cristal.errors import AccessDenied, CristalError, InvalidInput, NotFound
from cristal.testing.scripted_model import ScriptedModel, http_status, text

BACKENDS = ("sqlite", "postgres")

ADMIN, FIN, ENG = "admin@acme.example", "fin@acme.example", "eng@acme.example"
OUTSIDER = "fin@globex.example"


def settings_for(model: ScriptedModel, home: Any) -> Settings:
    return Settings(home=str(home), llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted",
                    llm_timeout_seconds=5.0, llm_max_retries=0)


def publish(db: Database, instructions: str = "Answer briefly.", extra: str = "") -> None:
    text_ = f"name: helper\ninstructions: {instructions}\ntools: [search_knowledge]\nsharing: [org]\n{extra}"
    store.create(db, load_agent_text(text_), "acme", ADMIN)
    store.publish(db, "acme", ADMIN, "helper")


def asked(db: Database, tmp_path: Any, *turns: tuple[str, str]) -> list[str]:
    """Each (employee, question) asked of a published ``helper`` in a new conversation: the conversations' ids."""
    publish(db)
    with ScriptedModel([text(f"Answer {i}.") for i in range(len(turns))]) as model:
        cfg = settings_for(model, tmp_path)
        return [ask(db, cfg, "acme", email, "helper", question)["conversation_id"] for email, question in turns]


def counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Conversation)) or 0,
                s.scalar(select(func.count()).select_from(ConversationMessage)) or 0)


def test_continue_sends_the_history_and_keeps_the_version(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    publish(db)
    with ScriptedModel([text("Munich: 180 EUR."), text("Berlin: 150 EUR."), text("Pinned.")]) as model:
        cfg = settings_for(model, tmp_path)
        first = ask(db, cfg, "acme", FIN, "helper", "Hotel cap in Munich?")
        cid = first["conversation_id"]
        # A new version is published meanwhile: the conversation goes on with the one it started with.
        store.edit(db, "acme", ADMIN, "helper", load_agent_text(
            "name: helper\ninstructions: Version two speaking.\ntools: [search_knowledge]\n"))
        store.publish(db, "acme", ADMIN, "helper")
        second = ask(db, cfg, "acme", FIN, "helper", "And in Berlin?", conversation_id=cid)
        third = ask(db, cfg, "acme", FIN, "helper@2", "Pinned?", conversation_id=cid)
        requests = [r.json for r in model.chat_requests]
    assert second["conversation_id"] == cid and (first["version"], second["version"], third["version"]) == (1, 1, 2)
    sent = [(m["role"], m["content"]) for m in requests[1]["messages"]]
    assert sent[0][0] == "system" and "Version two" not in sent[0][1]
    assert sent[1:] == [("user", "Hotel cap in Munich?"), ("assistant", "Munich: 180 EUR."), ("user", "And in Berlin?")]
    assert "Version two" in requests[2]["messages"][0]["content"]  # an explicit @N wins
    assert len(requests[2]["messages"]) == 6

    doc = conv.show(db, "acme", FIN, cid)
    assert (doc["agent"], doc["version"], doc["turns"], doc["owner"]) == ("helper", 1, 3, FIN)
    assert doc["title"] == "Hotel cap in Munich?"
    assert [(m["seq"], m["turn"], m["role"]) for m in doc["messages"]] == [
        (1, 1, "user"), (2, 1, "assistant"), (3, 2, "user"), (4, 2, "assistant"), (5, 3, "user"), (6, 3, "assistant")]
    answer = doc["messages"][1]
    assert answer["message"] == {"role": "assistant", "content": "Munich: 180 EUR."}
    assert answer["tool_calls"] == [] and answer["citations"] == [] and answer["tokens"] == first["tokens"] > 0
    assert doc["tokens"] == first["tokens"] + second["tokens"] + third["tokens"]
    assert [c["conversation_id"] for c in conv.list_conversations(db, "acme", FIN)] == [cid]

    with pytest.raises(InvalidInput, match="is with agent 'helper'"):
        ask(db, cfg, "acme", FIN, "other", "hi", conversation_id=cid)


def test_another_users_or_orgs_conversation_is_not_found(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    publish(db)
    with ScriptedModel([text("Yes.")]) as model:
        cfg = settings_for(model, tmp_path)
        cid = ask(db, cfg, "acme", FIN, "helper", "Private question?")["conversation_id"]
        for org, email in (("acme", ENG), ("acme", ADMIN), ("globex", OUTSIDER), ("globex", "admin@globex.example")):
            calls: list[tuple[Any, ...]] = [(conv.show, cid), (conv.export, cid), (conv.history, cid),
                                            (conv.rename, cid, "mine"), (conv.delete_conversation, cid)]
            for fn, *args in calls:
                with pytest.raises(NotFound):
                    fn(db, org, email, *args)
            with pytest.raises(NotFound):
                ask(db, cfg, org, email, "helper", "Continue?", conversation_id=cid)
            assert conv.list_conversations(db, org, email) == []
        assert len(model.chat_requests) == 1  # none of the refused continuations reached the model
    assert conv.show(db, "acme", FIN, cid)["turns"] == 1  # nothing changed
    with pytest.raises(NotFound):
        conv.show(db, "acme", FIN, "no-such-id")
    with db.session() as s:
        denied = s.scalars(select(AuditRecord).where(AuditRecord.action.like("conversation.%"),
                                                     AuditRecord.decision == "deny")).all()
    assert {r.action for r in denied} >= {"conversation.read", "conversation.write", "conversation.delete"}
    assert any(ADMIN in r.actor for r in denied), "an admin is refused too"


def test_a_failed_turn_stores_nothing(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    publish(db, extra="budgets: {steps: 1}\n")
    from cristal.testing.scripted_model import tool_call

    with ScriptedModel([http_status(500), text("Fine."), tool_call("search_knowledge", {"query": "x"}),
                        http_status(500)]) as model:
        cfg = settings_for(model, tmp_path)
        with pytest.raises(CristalError):
            ask(db, cfg, "acme", FIN, "helper", "First?")
        assert counts(db) == (0, 0)
        cid = ask(db, cfg, "acme", FIN, "helper", "Second?")["conversation_id"]
        before = conv.show(db, "acme", FIN, cid)
        with pytest.raises(TurnStopped):  # one step allowed, the model calls a tool
            ask(db, cfg, "acme", FIN, "helper", "Third?", conversation_id=cid)
        with pytest.raises(CristalError):
            ask(db, cfg, "acme", FIN, "helper", "Fourth?", conversation_id=cid)
    assert conv.show(db, "acme", FIN, cid) == before
    assert counts(db) == (1, 2)


def test_rename_delete_export(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    a, b = asked(db, tmp_path, (FIN, "First?"), (FIN, "Second?"))
    assert conv.rename(db, "acme", FIN, a, "  Hotel   caps ")["title"] == "Hotel caps"
    with pytest.raises(InvalidInput):
        conv.rename(db, "acme", FIN, a, "   ")
    doc = conv.export(db, "acme", FIN, a)
    assert doc["format"] == conv.EXPORT_FORMAT and doc["org"] == "acme" and doc["exported_at"]
    assert set(doc) >= {"conversation_id", "agent", "version", "title", "owner", "turns", "tokens", "cost_usd",
                        "created_at", "updated_at", "messages"}
    assert [m["message"] for m in doc["messages"]] == [{"role": "user", "content": "First?"},
                                                       {"role": "assistant", "content": "Answer 0."}]
    assert set(doc["messages"][1]) == {"seq", "turn", "role", "message", "tool_calls", "citations", "tokens",
                                       "cost_usd", "created_at"}
    assert conv.delete_conversation(db, "acme", FIN, b) == {"conversation_id": b, "deleted": True}
    with pytest.raises(NotFound):
        conv.show(db, "acme", FIN, b)
    assert [c["conversation_id"] for c in conv.list_conversations(db, "acme", FIN)] == [a]
    assert counts(db) == (1, 2)


def test_retention_and_purge(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    old, new = asked(db, tmp_path, (FIN, "Old?"), (ENG, "New?"))
    with db.session() as s:
        s.execute(update(Conversation).where(Conversation.id == old).values(updated_at=utcnow() - timedelta(days=40)))
    # Only an admin sets the retention; members may not even read it.
    with pytest.raises(AccessDenied):
        conv.retention(db, "acme", FIN, days=30)
    with pytest.raises(InvalidInput):
        conv.retention(db, "acme", ADMIN, days=0)
    assert conv.retention(db, "acme", ADMIN) == {"org": "acme", "retention_days": None}
    assert conv.purge(db, "acme")["deleted"] == 0  # no retention set: everything is kept
    assert conv.retention(db, "acme", ADMIN, days=30) == {"org": "acme", "retention_days": 30}
    with pytest.raises(AccessDenied):
        conv.purge(db, "acme", email=FIN)
    assert conv.purge(db, "globex", email="admin@globex.example")["deleted"] == 0  # another org's are not touched
    assert conv.purge(db, "acme", email=ADMIN) == {"org": "acme", "retention_days": 30, "deleted": 1}
    with pytest.raises(NotFound):
        conv.show(db, "acme", FIN, old)
    assert conv.show(db, "acme", ENG, new)["turns"] == 1
    assert conv.purge(db, "acme", 1, now=utcnow() + timedelta(days=2))["deleted"] == 1  # as the installation
    assert counts(db) == (0, 0)
    assert conv.retention(db, "acme", ADMIN, keep_forever=True)["retention_days"] is None


def test_purge_expired_enforces_each_organizations_retention(two_orgs: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    old, new = asked(db, tmp_path, (FIN, "Old?"), (ENG, "New?"))
    with db.session() as s:
        s.execute(update(Conversation).where(Conversation.id == old).values(updated_at=utcnow() - timedelta(days=40)))
    assert conv.purge_expired(db) == []  # no organization set a retention: nothing goes
    conv.retention(db, "acme", ADMIN, days=30)
    conv.retention(db, "globex", "admin@globex.example", days=1)  # another org's retention never reaches acme's
    assert conv.purge_expired(db) == [{"org": "acme", "retention_days": 30, "deleted": 1}]
    assert counts(db)[0] == 1 and conv.show(db, "acme", ENG, new)["turns"] == 1
    with db.session() as s:  # the purge is the installation's, audited
        purges = s.scalars(select(AuditRecord.actor).where(AuditRecord.action == "conversation.purge")).all()
    # One record per organization with a retention (acme, globex), as the installation's operator, never a member.
    assert len(purges) == 2 and all(actor.startswith("operator:") for actor in purges), purges


def test_the_worker_purges_on_its_own(two_orgs: Database, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]  # fixtures
    db = two_orgs
    old, new = asked(db, tmp_path, (FIN, "Old?"), (ENG, "New?"))
    with db.session() as s:
        s.execute(update(Conversation).where(Conversation.id == old).values(updated_at=utcnow() - timedelta(days=40)))
    conv.retention(db, "acme", ADMIN, days=30)
    env = {**cli.env, "CRISTAL_CONVERSATION_PURGE_INTERVAL_SECONDS": "0.5"}
    worker = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while counts(db)[0] > 1 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "purged 1 conversation(s) of acme older than 30 days" in out + err
    assert counts(db)[0] == 1 and conv.show(db, "acme", ENG, new)["turns"] == 1
