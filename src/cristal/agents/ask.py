"""Asking a stored agent one question: the version the caller gets, as a runtime config, one turn as the caller.

``ask`` is what ``cristal ask`` runs: the store decides whether the caller may
use the agent (an agent they may not use, or one of another organization, is
unknown to them), the published version is used unless one is pinned
(``SLUG@N``), and the turn runs with the caller's own rights. Conversations
are not stored yet, so every call starts a new one.
"""

from __future__ import annotations

import uuid
from typing import Any

from cristal.agents import store
from cristal.agents.runtime import AgentConfig, ToolConfig, TurnContext, run_turn
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.directory import member

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
    )


def ask(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str) -> dict[str, Any]:
    """One question to agent ``ref`` (``SLUG`` or ``SLUG@N``) as ``email``: the ``ask`` shape of DESIGN.md."""
    if not question.strip():
        raise InvalidInput("the question is empty")
    doc = store.show(db, org_slug, email, ref)  # authorizes agent.use (audited); NotFound when not usable
    if doc["version"] is None:
        raise InvalidInput(f"agent {doc['agent']!r} has no published version yet; publish it first")
    config = config_of(doc["agent"], int(doc["version"]), doc["spec"])
    with db.session() as s:
        _, principal = member(s, org_slug, email)
    ctx = TurnContext(db=db, settings=settings, principal=principal, conversation_id=uuid.uuid4().hex)
    return run_turn(ctx, config, [], question).as_dict()
