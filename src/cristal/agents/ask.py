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

Turns prepared here are stored, so a write that needs a person waits for an
approval (``agents.approvals``) instead of being refused: the turn ends with
status ``needs_approval``. Going on with the conversation (with a question or,
from ``ask``, without one) first takes the decided call up — runs exactly the
approved call once, or tells the model it was refused — and then lets the
model continue. While the approval is pending, the conversation cannot go on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cristal.agents import analytics, attachments, conversations, store
from cristal.agents.approvals import DecidedCall, decided_call
from cristal.agents.runtime import (
    AgentConfig,
    OnEvent,
    ToolCallRecord,
    ToolConfig,
    TurnContext,
    TurnResult,
    run_decided,
    run_turn,
)
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError, InvalidInput
from cristal.identity.directory import member
from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.models.gateway import Gateway
from cristal.models.shapes import tool_message


def _tool(kind: str, options: dict[str, Any] | None) -> ToolConfig:
    options = options or {}
    if kind == "sql":
        return ToolConfig("sql", {"source": options["source"], **({"queries": options["queries"]} if options.get("queries") else {})})
    if kind == "http":
        return ToolConfig("http", {"endpoints": [e["url"] for e in options.get("endpoints") or []]})
    if kind == "run_workflow":
        return ToolConfig(kind, {"workflow": options["workflow"]})
    if kind == "operate":
        return ToolConfig(kind, {"allow_domains": list(options["allow_domains"]), "approvers": list(options.get("approvers") or [])})
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


def counted_turn(ctx: TurnContext, config: AgentConfig, history: Sequence[dict[str, Any]], question: str | None,
                 via: str, *, stored: bool = False, conversation_id: str | None = None, on_event: OnEvent | None = None,
                 carry_untrusted: bool = False, earlier: Sequence[ToolCallRecord] = ()) -> TurnResult:
    """``run_turn``, counted for ``cristal agent stats`` (``via``: ``conversation``, ``api``, ``workflow``).

    A finished turn is counted here unless the caller stores it (``stored``: ``conversations.record_turn`` counts
    it in the transaction that stores it). A turn that fails (a budget spent, the model's error) is counted as
    failed before its error goes on; bad input (``InvalidInput``) is no turn and is not counted.
    """
    try:
        result = run_turn(ctx, config, history, question, on_event=on_event, carry_untrusted=carry_untrusted,
                          earlier=earlier)
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
    ``new``); a turn that fails leaves the conversation as it was. ``held``: the conversation's decided call
    (``DecidedCall``), or the call an earlier continuation took up without storing its result (a dict), that
    ``run`` takes up first.
    """

    db: Database
    org_slug: str
    email: str
    ctx: TurnContext
    config: AgentConfig
    history: list[dict[str, Any]]
    question: str | None
    new: bool
    held: DecidedCall | dict[str, Any] | None = None
    attached: tuple[attachments.NewAttachment, ...] = ()  # files asked with, stored with the turn

    def run(self, on_event: OnEvent | None = None) -> dict[str, Any]:
        """Run and store the turn: the ``ask`` shape of DESIGN.md (``on_event`` as for ``run_turn``)."""
        history, earlier = self.history, []
        if self.held is not None:
            message, record = self._take_up(on_event)
            history, earlier = [*history, message], [record]
        # Nothing is stored before the turn has finished: a failed turn leaves the conversation as it was (with a
        # decided call taken up, that call's result stays stored: it ran, and it must not run again).
        result = counted_turn(self.ctx, self.config, history, self.question, "conversation", stored=True,
                              conversation_id=None if self.new else self.ctx.conversation_id, on_event=on_event,
                              carry_untrusted=bool(earlier), earlier=earlier)
        conversations.record_turn(self.db, self.org_slug, self.email, result, self.question or "", new=self.new,
                                  attached=self.attached, settings=self.ctx.settings)
        return result.as_dict()

    def _take_up(self, on_event: OnEvent | None) -> tuple[dict[str, Any], ToolCallRecord]:
        """The held call, run once (or refused), stored at once as the end of the turn it interrupted."""
        cid, held = self.ctx.conversation_id, self.held
        if isinstance(held, DecidedCall):
            if not conversations.take_up(self.db, self.org_slug, self.email, cid, held.approval_id):
                raise InvalidInput(f"conversation {cid!r} is being continued by another request")
            message, record = run_decided(self.ctx, self.config, held, on_event)
        else:
            held = held or {}
            # A continuation took the call up and stopped before storing what happened: it is not run a second time.
            error = "not run again: an earlier continuation took this approved call up and did not finish; it may have run"
            message = tool_message(str(held.get("id") or ""), {"status": "error", "error": error})
            record = ToolCallRecord(str(held.get("name") or ""), dict(held.get("arguments") or {}), "error", error,
                                    held.get("approval_id"))
        conversations.settle(self.db, self.org_slug, self.email, cid, message, record)
        return message, record


def check_question(question: str) -> None:
    """``InvalidInput`` for an empty question or one longer than a search query may be."""
    if not question.strip():
        raise InvalidInput("the question is empty")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the message has {len(question)} characters; at most {MAX_QUERY_CHARS} are accepted")


def _held(db: Database, past: conversations.History) -> DecidedCall | dict[str, Any] | None:
    """The call the conversation holds, once decided; ``InvalidInput`` while its approval is pending."""
    if past.pending_approval:
        decided = decided_call(db, past.pending_approval, past.conversation_id)
        if decided is None:
            name = (past.pending_call or {}).get("name", "tool")
            raise InvalidInput(f"conversation {past.conversation_id!r} waits for approval {past.pending_approval} of "
                               f"its {name} call; it goes on once an approver has decided "
                               f"(cristal approvals approve|reject {past.pending_approval})")
        return decided
    return past.pending_call


def prepare(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str | None,
            conversation_id: str | None = None, gateway: Gateway | None = None,
            attach: Sequence[tuple[str, bytes]] = ()) -> PreparedTurn:
    """Decide everything about a turn of agent ``ref`` as ``email`` before it runs (errors raise here).

    With ``conversation_id``, the caller's stored conversation goes on (``NotFound`` for anyone else's) with
    the version it started with, unless ``SLUG@N`` pins another; ``ref`` may then be empty (its agent). A call
    the conversation waits for must be decided (``InvalidInput`` otherwise); then ``question`` may be ``None``
    (the model just continues after the call). ``attach``: files (name, bytes) to attach to the conversation with
    this turn, parsed here (``InvalidInput`` for a bad one) and stored with the turn once it has finished.
    """
    if question is not None or conversation_id is None:
        check_question(question or "")
    past = None
    if conversation_id is not None:
        past = conversations.history(db, org_slug, email, conversation_id)
        slug, pinned = store.parse_ref(ref) if ref else (past.agent, None)
        if slug != past.agent:
            raise InvalidInput(f"conversation {past.conversation_id!r} is with agent {past.agent!r}, not {slug!r}")
        # The version it started with, so that a publication does not change an ongoing conversation.
        ref = f"{slug}@{pinned or past.version}"
    config = usable_config(db, org_slug, email, ref)
    held = _held(db, past) if past is not None else None
    if held is None and question is None:
        raise InvalidInput(f"conversation {conversation_id!r} waits for no approval: give a question to go on")
    if attach and question is None:
        raise InvalidInput("attach files with a question")
    attached = tuple(attachments.parse(settings, name, data) for name, data in attach)
    earlier = past.attachments if past else ()
    attachments.check_count(settings, len(earlier), len(attached))
    with db.session() as s:
        _, principal = member(s, org_slug, email)
    ctx = TurnContext(db=db, settings=settings, principal=principal, gateway=gateway, stored=True,
                      conversation_id=past.conversation_id if past else str(uuid.uuid4()), turn=past.turn if past else 1,
                      attachments=(*earlier, *map(attachments.as_text, attached)))
    return PreparedTurn(db, org_slug, email, ctx, config, past.messages if past else [], question, past is None, held,
                        attached)


def ask(db: Database, settings: Settings, org_slug: str, email: str, ref: str, question: str | None,
        conversation_id: str | None = None, *, gateway: Gateway | None = None,
        attach: Sequence[tuple[str, bytes]] = ()) -> dict[str, Any]:
    """One question to agent ``ref`` (``SLUG`` or ``SLUG@N``) as ``email``: the ``ask`` shape of DESIGN.md.

    With ``conversation_id``, the caller's stored conversation goes on (``NotFound`` for anyone else's); a call it
    waits for is taken up first, and then ``question`` may be ``None`` (the model just continues).
    ``gateway``: a long-lived one (a server's, pooling connections); by default one for this turn.
    """
    return prepare(db, settings, org_slug, email, ref, question, conversation_id, gateway, attach).run()
