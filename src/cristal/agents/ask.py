"""Asking a stored agent one question: the version the caller gets, as a runtime config, one turn as the caller.

``ask`` is what ``cristal ask`` runs: the store decides whether the caller may
use the agent (an agent they may not use, or one of another organization, is
unknown to them), the published version is used unless one is pinned
(``SLUG@N``), and the turn runs with the caller's own rights. The turn is
stored in the caller's conversation (``agents.conversations``) once it has
finished: a new one, or the one named by ``conversation_id``, which goes on
with the version it started with (unless ``SLUG@N`` pins another) and its
stored messages as the model's history.

Turns asked here are stored, so a write that needs a person waits for an
approval (``agents.approvals``) instead of being refused: the turn ends with
status ``needs_approval``. Going on with the conversation (with a question or
without one) first takes the decided call up — runs exactly the approved call
once, or tells the model it was refused — and then lets the model continue.
While the approval is pending, the conversation cannot go on.
"""

from __future__ import annotations

import uuid
from typing import Any

from cristal.agents import conversations, store
from cristal.agents.approvals import decided_call
from cristal.agents.runtime import AgentConfig, ToolCallRecord, ToolConfig, TurnContext, run_decided, run_turn
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.directory import member
from cristal.models.gateway import Gateway
from cristal.models.shapes import tool_message

# Tools an agent file may name that conversations cannot run yet: refused by name rather than left out, so an
# agent never answers as if it had used a tool it does not have.
NOT_IN_CONVERSATIONS = ("run_workflow", "operate", "mcp")


def _tool(kind: str, options: dict[str, Any] | None) -> ToolConfig:
    options = options or {}
    if kind in NOT_IN_CONVERSATIONS:
        raise InvalidInput(f"tool {kind!r} is not available in conversations yet; remove it from the agent to ask it")
    if kind == "sql":
        if options.get("queries"):
            raise InvalidInput("sql tools limited to named queries are not available in conversations yet")
        return ToolConfig("sql", {"source": options["source"]})
    if kind == "http":
        return ToolConfig("http", {"endpoints": [e["url"] for e in options.get("endpoints") or []]})
    return ToolConfig(kind, {})


def config_of(slug: str, version: int, spec: dict[str, Any]) -> AgentConfig:
    """A stored agent version (``AgentDefinition.spec()``) as what the runtime runs."""
    budgets = spec.get("budgets") or {}
    knowledge = spec.get("knowledge") or {}
    tools = tuple(_tool(kind, options) for entry in spec.get("tools") or [] for kind, options in entry.items())
    return AgentConfig(
        slug=slug, version=version, instructions=str(spec["instructions"]), language=spec.get("language"),
        model=spec.get("model"), max_steps=budgets.get("steps") or 10, max_tokens=budgets.get("tokens"),
        max_cost=budgets.get("cost"), sources=tuple(knowledge.get("sources") or ()),
        paths=tuple(knowledge.get("paths") or ()), tags=tuple(knowledge.get("tags") or ()), tools=tools,
        approve=(spec.get("policy") or {}).get("approve", "untrusted"),
        approvers=tuple((spec.get("policy") or {}).get("approvers") or ()),
    )


def usable_config(db: Database, org_slug: str, email: str, ref: str) -> AgentConfig:
    """The version of agent ``ref`` that ``email`` gets (published, or pinned ``SLUG@N``) as a runtime config.

    The store authorizes ``agent.use`` (audited): ``NotFound`` when the caller may not use it; an agent never
    published is ``InvalidInput``.
    """
    doc = store.show(db, org_slug, email, ref)
    if doc["version"] is None:
        raise InvalidInput(f"agent {doc['agent']!r} has no published version yet; publish it first")
    return config_of(doc["agent"], int(doc["version"]), doc["spec"])


def _take_up(ctx: TurnContext, config: AgentConfig, past: conversations.History, org_slug: str,
             email: str) -> tuple[dict[str, Any], ToolCallRecord]:
    """The decided call the conversation holds, run once (or refused), stored as the end of its turn."""
    db, held = ctx.db, past.pending_call or {}
    if past.pending_approval:
        decided = decided_call(db, past.pending_approval, past.conversation_id)
        if decided is None:
            raise InvalidInput(f"conversation {past.conversation_id!r} waits for approval {past.pending_approval} of "
                               f"its {held.get('name', 'tool')} call; it goes on once an approver has decided "
                               f"(cristal approvals approve|reject {past.pending_approval})")
        if not conversations.take_up(db, org_slug, email, past.conversation_id, past.pending_approval):
            raise InvalidInput(f"conversation {past.conversation_id!r} is being continued by another request")
        message, record = run_decided(ctx, config, decided)
    else:
        # A continuation took the call up and stopped before storing what happened: it is not run a second time.
        error = "not run again: an earlier continuation took this approved call up and did not finish; it may have run"
        message = tool_message(str(held.get("id") or ""), {"status": "error", "error": error})
        record = ToolCallRecord(str(held.get("name") or ""), dict(held.get("arguments") or {}), "error", error,
                                held.get("approval_id"))
    conversations.settle(db, org_slug, email, past.conversation_id, message, record)
    return message, record


def ask(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str | None,
        conversation_id: str | None = None, *, gateway: Gateway | None = None) -> dict[str, Any]:
    """One question to agent ``ref`` (``SLUG`` or ``SLUG@N``) as ``email``: the ``ask`` shape of DESIGN.md.

    With ``conversation_id``, the caller's stored conversation goes on (``NotFound`` for anyone else's); a call it
    waits for is taken up first, and then ``question`` may be ``None`` (the model just continues).
    ``gateway``: a long-lived one (a server's, pooling connections); by default one for this turn.
    """
    if question is not None and not question.strip():
        raise InvalidInput("the question is empty")
    if question is None and conversation_id is None:
        raise InvalidInput("the question is empty")
    past = None
    if conversation_id is not None:
        past = conversations.history(db, org_slug, email, conversation_id)
        slug, pinned = store.parse_ref(ref)
        if slug != past.agent:
            raise InvalidInput(f"conversation {past.conversation_id!r} is with agent {past.agent!r}, not {slug!r}")
        # The version it started with, so that a publication does not change an ongoing conversation.
        ref = f"{slug}@{pinned or past.version}"
    config = usable_config(db, org_slug, email, ref)
    with db.session() as s:
        _, principal = member(s, org_slug, email)
    ctx = TurnContext(db=db, settings=settings, principal=principal, stored=True, gateway=gateway,
                      conversation_id=past.conversation_id if past else str(uuid.uuid4()), turn=past.turn if past else 1)
    history, earlier = (past.messages if past else []), []
    if past is not None and (past.pending_approval or past.pending_call):
        message, record = _take_up(ctx, config, past, org_slug, email)
        history, earlier = [*history, message], [record]
    elif question is None:
        raise InvalidInput(f"conversation {conversation_id!r} waits for no approval: give a question to go on")
    # Nothing is stored before the turn has finished: a failed turn leaves the conversation as it was (with a
    # decided call taken up, that call's result stays stored: it ran, and it must not run again).
    result = run_turn(ctx, config, history, question, carry_untrusted=bool(earlier), earlier=earlier)
    conversations.record_turn(db, org_slug, email, result, question or "", new=past is None)
    return result.as_dict()
