"""Asking a stored agent one question: the version the caller gets, as a runtime config, one turn as the caller.

``ask`` is what ``cristal ask`` runs: the store decides whether the caller may
use the agent (an agent they may not use, or one of another organization, is
unknown to them), the published version is used unless one is pinned
(``SLUG@N``), and the turn runs with the caller's own rights. The turn is
stored in the caller's conversation (``agents.conversations``) once it has
finished: a new one, or the one named by ``conversation_id``, which goes on
with the version it started with (unless ``SLUG@N`` pins another) and its
stored messages as the model's history. ``prepare`` decides all of that
before anything runs (so a server can refuse with a proper error before it
starts streaming); ``PreparedTurn.run`` runs the turn and stores it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cristal.agents import analytics, conversations, store
from cristal.agents.runtime import AgentConfig, OnEvent, ToolConfig, TurnContext, TurnResult, run_turn
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError, InvalidInput
from cristal.identity.directory import member
from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.models.gateway import Gateway

# Tools an agent file may name that conversations cannot run yet: refused by name rather than left out, so an
# agent never answers as if it had used a tool it does not have.
NOT_IN_CONVERSATIONS = ("run_workflow", "operate")


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
    if kind == "mcp":
        return ToolConfig("mcp", {"server": options["server"], "tools": list(options["tools"])})
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


def usable_config(db: Database, org_slug: str, email: str, ref: str) -> AgentConfig:
    """The version of agent ``ref`` that ``email`` gets (published, or pinned ``SLUG@N``) as a runtime config.

    The store authorizes ``agent.use`` (audited): ``NotFound`` when the caller may not use it; an agent never
    published is ``InvalidInput``.
    """
    doc = store.show(db, org_slug, email, ref)
    if doc["version"] is None:
        raise InvalidInput(f"agent {doc['agent']!r} has no published version yet; publish it first")
    return config_of(doc["agent"], int(doc["version"]), doc["spec"])


def counted_turn(ctx: TurnContext, config: AgentConfig, history: Sequence[dict[str, Any]], question: str, via: str, *,
                 stored: bool = False, conversation_id: str | None = None, on_event: OnEvent | None = None) -> TurnResult:
    """``run_turn``, counted for ``cristal agent stats`` (``via``: ``conversation``, ``api``, ``workflow``).

    A finished turn is counted here unless the caller stores it (``stored``: ``conversations.record_turn`` counts
    it in the transaction that stores it). A turn that fails (a budget spent, the model's error) is counted as
    failed before its error goes on; bad input (``InvalidInput``) is no turn and is not counted.
    """
    try:
        result = run_turn(ctx, config, history, question, on_event=on_event)
    except InvalidInput:
        raise
    except CristalError:
        analytics.record(ctx.db, ctx.principal, config.slug, config.version, via, None, conversation_id)
        raise
    if not stored:
        analytics.record(ctx.db, ctx.principal, config.slug, config.version, via, result)
    return result


@dataclass(frozen=True)
class PreparedTurn:
    """A turn that may run: the agent's version decided, the caller's conversation (if any) read and checked.

    ``run`` runs it and stores it in the conversation once it has finished (a new conversation for
    ``new``); a turn that fails leaves the conversation as it was.
    """

    db: Database
    org_slug: str
    email: str
    ctx: TurnContext
    config: AgentConfig
    history: list[dict[str, Any]]
    question: str
    new: bool

    def run(self, on_event: OnEvent | None = None) -> dict[str, Any]:
        """Run and store the turn: the ``ask`` shape of DESIGN.md (``on_event`` as for ``run_turn``)."""
        # Nothing is stored before the turn has finished: a failed turn leaves the conversation as it was.
        result = counted_turn(self.ctx, self.config, self.history, self.question, "conversation", stored=True,
                              conversation_id=None if self.new else self.ctx.conversation_id, on_event=on_event)
        conversations.record_turn(self.db, self.org_slug, self.email, result, self.question, new=self.new)
        return result.as_dict()


def check_question(question: str) -> None:
    """``InvalidInput`` for an empty question or one longer than a search query may be."""
    if not question.strip():
        raise InvalidInput("the question is empty")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the message has {len(question)} characters; at most {MAX_QUERY_CHARS} are accepted")


def prepare(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str,
            conversation_id: str | None = None, gateway: Gateway | None = None) -> PreparedTurn:
    """Decide everything about a turn of agent ``ref`` as ``email`` before it runs (errors raise here).

    With ``conversation_id``, the caller's stored conversation goes on (``NotFound`` for anyone else's) with
    the version it started with, unless ``SLUG@N`` pins another; ``ref`` may then be empty (its agent).
    """
    check_question(question)
    past = None
    if conversation_id is not None:
        past = conversations.history(db, org_slug, email, conversation_id)
        slug, pinned = store.parse_ref(ref) if ref else (past.agent, None)
        if slug != past.agent:
            raise InvalidInput(f"conversation {past.conversation_id!r} is with agent {past.agent!r}, not {slug!r}")
        # The version it started with, so that a publication does not change an ongoing conversation.
        ref = f"{slug}@{pinned or past.version}"
    config = usable_config(db, org_slug, email, ref)
    with db.session() as s:
        _, principal = member(s, org_slug, email)
    ctx = TurnContext(db=db, settings=settings, principal=principal, gateway=gateway,
                      conversation_id=past.conversation_id if past else str(uuid.uuid4()), turn=past.turn if past else 1)
    return PreparedTurn(db, org_slug, email, ctx, config, past.messages if past else [], question, past is None)


def ask(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str,
        conversation_id: str | None = None) -> dict[str, Any]:
    """One question to agent ``ref`` (``SLUG`` or ``SLUG@N``) as ``email``: the ``ask`` shape of DESIGN.md.

    With ``conversation_id``, the caller's stored conversation goes on (``NotFound`` for anyone else's).
    """
    return prepare(db, settings, org_slug, email, ref, question, conversation_id).run()
