"""Agent statistics: one row per turn by every way in, failed turns counted, thumbs by the conversation's owner
only, visible to the agent's editors and admins (audited), kept when a conversation goes, gone with the agent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cristal.agents import analytics, store
from cristal.agents import conversations as conv
from cristal.agents.ask import ask, counted_turn, usable_config
from cristal.agents.definition import load_agent_text
from cristal.agents.runtime import TurnContext, TurnStopped
from cristal.db import Database
from cristal.db.schema import AgentTurn, AuditRecord, utcnow
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.identity.directory import member
from cristal.testing.scripted_model import ScriptedModel, text, tool_call
from tests.agents.test_conversations import settings_for

BACKENDS = ("sqlite", "postgres")

ADMIN, FIN, ENG = "admin@acme.example", "fin@acme.example", "eng@acme.example"
OUTSIDER = "fin@globex.example"


def _agent(db: Database) -> None:
    # Created by finance; engineering may use it, nobody else may edit it.
    store.create(db, load_agent_text("name: helper\ninstructions: Answer.\ntools: [search_knowledge]\n"
                                     "budgets: {steps: 2}\nsharing: [group:engineering]\n"), "acme", FIN)
    store.publish(db, "acme", FIN, "helper")


def test_every_way_in_is_counted_and_only_editors_see_it(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    _agent(db)
    loop = tool_call("search_knowledge", {"query": "x"})
    with ScriptedModel([text("One."), text("Two."), loop, loop, text("Stateless.")]) as model:
        cfg = settings_for(model, tmp_path)
        cid = ask(db, cfg, "acme", FIN, "helper", "First?")["conversation_id"]
        ask(db, cfg, "acme", FIN, "helper", "Second?", conversation_id=cid)
        with pytest.raises(TurnStopped):  # two steps, both tool calls: a failed turn, nothing stored
            ask(db, cfg, "acme", ENG, "helper", "Loop?")
        with db.session() as s:
            _, principal = member(s, "acme", ENG)
        ctx = TurnContext(db=db, settings=cfg, principal=principal, conversation_id="stateless")
        counted_turn(ctx, usable_config(db, "acme", ENG, "helper"), [], "Stateless?", "api")
        with pytest.raises(InvalidInput):  # bad input is no turn
            counted_turn(ctx, usable_config(db, "acme", ENG, "helper"), [], "  ", "api")
    assert conv.rate(db, "acme", FIN, cid, up=True)["turn"] == 2
    assert conv.rate(db, "acme", FIN, cid, up=False, seq=2)["turn"] == 1
    assert conv.rate(db, "acme", FIN, cid, up=True, seq=2)["rating"] == "up"  # rating again replaces it
    for who in (ENG, ADMIN, OUTSIDER):  # only the owner rates: for anyone else it does not exist
        with pytest.raises(NotFound):
            conv.rate(db, "acme" if who != OUTSIDER else "globex", who, cid, up=False)

    doc = analytics.stats(db, "acme", FIN, "helper")
    [v1] = doc["versions"]
    assert {k: v1[k] for k in ("version", "conversations", "turns", "messages", "tool_calls", "tool_errors",
                               "failed_turns", "errors", "thumbs_up", "thumbs_down")} == {
        "version": 1, "conversations": 1, "turns": 4, "messages": 6, "tool_calls": 0, "tool_errors": 0,
        "failed_turns": 1, "errors": 1, "thumbs_up": 2, "thumbs_down": 0}
    assert v1["turns_by_way_in"] == {"conversation": 3, "api": 1, "workflow": 0}
    assert doc["total"]["turns"] == 4 and doc["total"]["tokens"] == v1["tokens"] > 0
    assert analytics.stats(db, "acme", ADMIN, "helper")["total"] == doc["total"]  # an admin sees them
    assert analytics.stats(db, "acme", FIN, "helper", since=utcnow() + timedelta(minutes=1))["versions"] == []
    with pytest.raises(AccessDenied):  # a use grant does not
        analytics.stats(db, "acme", ENG, "helper")
    with pytest.raises(NotFound):
        analytics.stats(db, "globex", OUTSIDER, "helper")
    with db.session() as s:
        decisions = [(r.actor, r.decision) for r in s.scalars(
            select(AuditRecord).where(AuditRecord.action == "agent.stats").order_by(AuditRecord.id))]
        rated = [r.decision for r in s.scalars(
            select(AuditRecord).where(AuditRecord.action == "conversation.rate").order_by(AuditRecord.id))]
    assert [d for _, d in decisions] == ["allow", "allow", "allow", "deny"]
    assert rated == ["allow", "allow", "allow", "deny", "deny"]  # the colleague's and the admin's tries are refused

    # The counts stay when the conversation goes; they go with the agent.
    conv.delete_conversation(db, "acme", FIN, cid)
    assert analytics.stats(db, "acme", FIN, "helper")["total"]["conversations"] == 1
    store.remove(db, "acme", FIN, "helper")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AgentTurn)) == 0


def test_since_and_bad_ratings() -> None:
    now = utcnow()
    assert analytics.parse_since("7d", now) == now - timedelta(days=7)
    assert analytics.parse_since("24h", now) == now - timedelta(hours=24)
    assert analytics.parse_since("2026-11-01").isoformat() == "2026-11-01T00:00:00+00:00"
    with pytest.raises(InvalidInput, match="invalid --since 'soon'"):
        analytics.parse_since("soon")


def test_only_answers_are_rated(two_orgs: Database, tmp_path: Path) -> None:
    db = two_orgs
    _agent(db)
    with ScriptedModel([text("One.")]) as model:
        cid = ask(db, settings_for(model, tmp_path), "acme", FIN, "helper", "First?")["conversation_id"]
    for seq in (1, 3):  # the question; no such message
        with pytest.raises(InvalidInput, match=f"message {seq} of conversation .* is not an answer"):
            conv.rate(db, "acme", FIN, cid, up=True, seq=seq)
