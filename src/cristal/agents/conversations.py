"""Stored conversations with agents, per user: continue, list, show, rename, delete, export, retention and purge.

A conversation belongs to the employee who started it and to nobody else: every
read or change is decided through ``cristal.identity.authorize`` (audited) with
the ``SELF`` rule, so another user's conversation, or another organization's, is
``NotFound`` — for an organization admin too. Only the purge, an admin's act on
the organization's retention, deletes conversations of others (without reading them).

A turn is stored only once it has finished: ``record_turn`` writes the
conversation (new, or the next turn of an existing one) and all the turn's
messages in one transaction, so a turn that failed (the model, a budget) leaves
nothing behind. Each message is the OpenAI-format message the model saw; a
turn's answer also carries the turn's tool calls, citations, tokens and cost.

A turn that stopped at a call waiting for a person keeps the call on the
conversation (``pending_approval``, ``pending_call``). Going on takes it up once:
``take_up`` clears ``pending_approval`` by a compare-and-set (so two continuations
at once cannot both run it) and ``settle`` stores the call's result as the end of
the interrupted turn. Deleting a conversation cancels the approval it waits for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from cristal.agents import analytics, attachments
from cristal.agents.runtime import AttachedText, ToolCallRecord, TurnResult
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import AgentTurn, Conversation, ConversationAttachment, ConversationMessage, Organization, utcnow
from cristal.durable import approvals
from cristal.durable.store import rows_changed
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, member, org_by_slug
from cristal.identity.principal import Principal

__all__ = ["EXPORT_FORMAT", "History", "as_markdown", "attach", "attachments_of", "delete_conversation", "export", "history",
           "list_conversations",
           "purge", "purge_expired", "rate", "record_turn", "rename", "retention", "settle", "show", "take_up"]

EXPORT_FORMAT = "cristal.conversation/1"
TITLE_MAX = 200


@dataclass(frozen=True)
class History:
    """What continuing a conversation needs: its agent and version, the stored messages, the next turn's number."""

    conversation_id: str
    agent: str
    version: int
    messages: list[dict[str, Any]]
    turn: int
    pending_approval: str | None = None  # the approval the conversation waits for
    pending_call: dict[str, Any] | None = None  # the call it holds (set, without the above: taken up, unsettled)
    attachments: tuple[AttachedText, ...] = ()  # the files attached to it, as the model reads them


def owned(s: Session, org: Organization, principal: Principal, conversation_id: str, action: str,
           details: dict | None = None) -> Conversation:
    """The caller's own conversation (audited); ``NotFound`` for anyone else's, whatever their role."""
    unknown = NotFound(f"unknown conversation {conversation_id!r} in organization {org.slug!r}")
    conv = s.get(Conversation, str(conversation_id))
    if conv is None or conv.org_id != org.id:
        raise unknown
    try:
        require(s, principal, action, in_org(org, "conversation", conv.id, owner_user_id=conv.user_id), details=details)
    except AccessDenied:
        raise unknown from None
    return conv


def _summary(conv: Conversation) -> dict[str, Any]:
    return {"conversation_id": conv.id, "agent": conv.agent_slug, "version": conv.agent_version, "title": conv.title,
            "owner": conv.user_email, "turns": conv.turns, "tokens": conv.tokens, "cost_usd": round(conv.cost_usd, 6),
            "pending_approval": conv.pending_approval,
            "created_at": conv.created_at.isoformat(), "updated_at": conv.updated_at.isoformat()}


def _messages(s: Session, conv: Conversation) -> list[ConversationMessage]:
    return list(s.scalars(select(ConversationMessage).where(ConversationMessage.conversation_id == conv.id)
                          .order_by(ConversationMessage.seq)))


def history(db: Database, org_slug: str, email: str, conversation_id: str) -> History:
    """The caller's conversation, to continue it (``conversation.read``, audited)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.read", details={"for": "continue"})
        return History(conv.id, conv.agent_slug, conv.agent_version, [dict(m.content) for m in _messages(s, conv)],
                       conv.turns + 1, conv.pending_approval, dict(conv.pending_call) if conv.pending_call else None,
                       attachments.texts(s, conv.id))


def take_up(db: Database, org_slug: str, email: str, conversation_id: str, approval_id: str) -> bool:
    """Claim the decided call the caller's conversation holds; False when another continuation claimed it first."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.write",
                      details={"change": "take up approved call", "approval_id": approval_id})
        return rows_changed(s.execute(update(Conversation).where(Conversation.id == conv.id,
                                                                 Conversation.pending_approval == approval_id)
                                      .values(pending_approval=None))) == 1


def settle(db: Database, org_slug: str, email: str, conversation_id: str, message: dict[str, Any],
           record: ToolCallRecord) -> None:
    """Store the taken-up call's result as the last message of the turn it interrupted, and forget the call."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.write",
                      details={"change": "settle call", "status": record.status, "approval_id": record.approval_id})
        s.execute(select(Conversation.id).where(Conversation.id == conv.id).with_for_update())
        seq = s.scalar(select(func.max(ConversationMessage.seq)).where(ConversationMessage.conversation_id == conv.id)) or 0
        s.add(ConversationMessage(conversation_id=conv.id, seq=seq + 1, turn=conv.turns, role="tool", content=message,
                                  created_at=utcnow(), tool_calls=[record.as_dict()], citations=None, tokens=0,
                                  cost_usd=0.0))
        conv.pending_call = None
        conv.updated_at = utcnow()


def _title(title: str) -> str:
    title = " ".join(str(title).split())
    if not title:
        raise InvalidInput("the title is empty")
    return title[:TITLE_MAX]


def record_turn(db: Database, org_slug: str, email: str, result: TurnResult, question: str, *,
                new: bool, attached: Sequence[attachments.NewAttachment] = (),
                settings: Settings | None = None) -> dict[str, Any]:
    """Store a finished turn in one transaction: a new conversation (``new``) or the next turn of the caller's own.

    ``attached``: files the turn was asked with (their text read by the model in it), stored with it
    (``settings`` then gives their limits).
    """
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        now = utcnow()
        if new:
            if principal.user_id is None:
                raise AccessDenied("the installation principal cannot talk to agents; use --as EMAIL")
            require(s, principal, "conversation.write",
                    in_org(org, "conversation", result.conversation_id, owner_user_id=principal.user_id),
                    details={"change": "create", "agent": result.agent, "version": result.version})
            conv = Conversation(id=result.conversation_id, org_id=org.id, user_id=principal.user_id, user_email=email,
                                agent_slug=result.agent, agent_version=result.version,
                                title=_title(question)[:80], turns=0, tokens=0, cost_usd=0.0,
                                created_at=now, updated_at=now)
            s.add(conv)
            s.flush()
            seq = 0
        else:
            conv = owned(s, org, principal, result.conversation_id, "conversation.write",
                          details={"change": "turn", "version": result.version})
            # Lock the row (PostgreSQL) so two turns sent at once get distinct sequence numbers.
            s.execute(select(Conversation.id).where(Conversation.id == conv.id).with_for_update())
            seq = s.scalar(select(func.max(ConversationMessage.seq))
                           .where(ConversationMessage.conversation_id == conv.id)) or 0
        if attached:
            attachments.store(s, settings or Settings(), conv, attached)
        turn = conv.turns + 1
        last = len(result.messages) - 1
        for i, message in enumerate(result.messages):
            answer = i == last
            s.add(ConversationMessage(
                conversation_id=conv.id, seq=seq + 1 + i, turn=turn, role=str(message.get("role", "")),
                content=message, created_at=now,
                tool_calls=[c.as_dict() for c in result.tool_calls] if answer else None,
                citations=[c.as_dict() for c in result.citations] if answer else None,
                tokens=result.tokens if answer else 0, cost_usd=result.cost_usd if answer else 0.0))
        # The turn's counts for `cristal agent stats`, in the same transaction: both or neither.
        analytics.add_turn(s, org.id, result.agent, result.version, "conversation", result, user_id=principal.user_id,
                           conversation_id=conv.id, turn=turn)
        conv.turns = turn
        conv.pending_approval = result.pending["approval_id"] if result.pending else None
        conv.pending_call = result.pending
        conv.tokens += result.tokens
        conv.cost_usd += result.cost_usd
        conv.updated_at = now
        return _summary(conv)


def _text(content: dict[str, Any]) -> str:
    """What a person wrote or read in a stored message: its text (tool results are not part of it)."""
    if content.get("role") not in ("user", "assistant"):
        return ""
    value = content.get("content")
    if isinstance(value, list):
        return " ".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return value if isinstance(value, str) else ""


def _matching(s: Session, convs: list[Conversation], query: str) -> list[Conversation]:
    """The conversations whose title or whose questions and answers contain ``query`` (case-insensitive)."""
    needle = query.casefold()
    found = {c.id for c in convs if needle in c.title.casefold()}
    rest = [c.id for c in convs if c.id not in found]
    if rest:
        # Matched here rather than in SQL: the JSON of a message is stored escaped (non-ASCII as \uXXXX).
        rows = s.execute(select(ConversationMessage.conversation_id, ConversationMessage.content)
                         .where(ConversationMessage.conversation_id.in_(rest),
                                ConversationMessage.role.in_(("user", "assistant"))))
        found |= {cid for cid, content in rows if needle in _text(dict(content)).casefold()}
    return [c for c in convs if c.id in found]


def list_conversations(db: Database, org_slug: str, email: str, agent: str | None = None,
                       query: str | None = None) -> list[dict[str, Any]]:
    """The caller's own conversations, the latest first (optionally with one agent, or containing ``query``)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        select_ = select(Conversation).where(Conversation.org_id == org.id, Conversation.user_id == principal.user_id)
        if agent:
            select_ = select_.where(Conversation.agent_slug == agent)
        convs = list(s.scalars(select_.order_by(Conversation.updated_at.desc(), Conversation.id)))
        details: dict[str, Any] = {}
        if query is not None and query.strip():
            convs = _matching(s, convs, query.strip())
            details["query"] = query.strip()[:200]
        docs = [_summary(c) for c in convs]
        require(s, principal, "conversation.list", in_org(org, "conversation"), details={"listed": len(docs), **details})
        return docs


def _message_doc(m: ConversationMessage) -> dict[str, Any]:
    return {"seq": m.seq, "turn": m.turn, "role": m.role, "message": m.content, "tool_calls": m.tool_calls,
            "citations": m.citations, "tokens": m.tokens, "cost_usd": m.cost_usd, "created_at": m.created_at.isoformat()}


def show(db: Database, org_slug: str, email: str, conversation_id: str) -> dict[str, Any]:
    """The caller's conversation with every message (``conversation.read``, audited)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.read")
        return {**_summary(conv), "messages": [_message_doc(m) for m in _messages(s, conv)],
                "attachments": [attachments.describe(a) for a in attachments.of(s, conv.id)]}


def export(db: Database, org_slug: str, email: str, conversation_id: str) -> dict[str, Any]:
    """``show`` as a self-describing document: ``format``, ``org``, ``exported_at``, then the conversation."""
    doc = show(db, org_slug, email, conversation_id)
    return {"format": EXPORT_FORMAT, "org": org_slug, "exported_at": utcnow().isoformat(), **doc}


def as_markdown(doc: dict[str, Any]) -> str:
    """An exported conversation (``export``) as Markdown: a heading, then each question and answer with its sources."""
    lines = [f"# {doc['title']}", "",
             f"Conversation `{doc['conversation_id']}` with agent `{doc['agent']}` version {doc['version']}, "
             f"by {doc['owner']} in {doc['org']}; {doc['turns']} turns, {doc['tokens']} tokens, "
             f"{doc['cost_usd']} USD. Exported {doc['exported_at'][:19]} UTC.", ""]
    if doc.get("attachments"):
        lines += ["Attached: " + ", ".join(f"`{a['filename']}`" for a in doc["attachments"]) + ".", ""]
    for m in doc["messages"]:
        text = _text(m["message"])
        if m["role"] == "user":
            lines += [f"## {m['turn']}. You", "", text, ""]
        elif m["role"] == "assistant" and m["tool_calls"] is not None:  # the turn's answer
            lines += [f"### {doc['agent']}", ""]
            lines += [f"- tool `{c['name']}` ({c['status']}): `{json.dumps(c['arguments'], ensure_ascii=False)}`"
                      for c in m["tool_calls"]]
            lines += ([""] if m["tool_calls"] else []) + [text, ""]
            lines += [f"- [{c['n']}] {c['uri']}: “{c['quote']}”" for c in m["citations"] or []]
            lines += [""] if m["citations"] else []
    return "\n".join(lines).rstrip() + "\n"


def rename(db: Database, org_slug: str, email: str, conversation_id: str, title: str) -> dict[str, Any]:
    """Give the caller's conversation a new title (at most 200 characters)."""
    new_title = _title(title)
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.write",
                      details={"change": "rename", "title": new_title})
        conv.title = new_title
        conv.updated_at = utcnow()
        return _summary(conv)


def rate(db: Database, org_slug: str, email: str, conversation_id: str, up: bool,
         seq: int | None = None) -> dict[str, Any]:
    """Thumbs up (``up``) or down on an answer of the caller's own conversation: the answer with sequence number
    ``seq`` (``conversation show``), by default the latest. Rating again replaces the rating."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.rate",
                      details={"rating": "up" if up else "down", "seq": seq})
        if seq is None:
            turn = conv.turns
        else:
            message = s.get(ConversationMessage, (conv.id, seq))
            if message is None or message.role != "assistant" or message.tool_calls is None:
                raise InvalidInput(f"message {seq} of conversation {conv.id!r} is not an answer; "
                                   "give the seq of an answer (cristal conversation show --json)")
            turn = message.turn
        row = s.scalar(select(AgentTurn).where(AgentTurn.conversation_id == conv.id, AgentTurn.turn == turn))
        if row is None:
            raise InvalidInput(f"turn {turn} of conversation {conv.id!r} was stored before ratings existed; "
                               "rate a later answer")
        row.rating, row.rated_at = (1 if up else -1), utcnow()
        return {"conversation_id": conv.id, "agent": conv.agent_slug, "version": row.agent_version, "turn": turn,
                "rating": "up" if up else "down"}


def _delete(s: Session, ids: list[str]) -> None:
    # Messages and attachments first: SQLite enforces the cascade only with foreign keys on.
    s.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(ids)))
    s.execute(delete(ConversationAttachment).where(ConversationAttachment.conversation_id.in_(ids)))
    s.execute(delete(Conversation).where(Conversation.id.in_(ids)))


def delete_conversation(db: Database, org_slug: str, email: str, conversation_id: str) -> dict[str, Any]:
    """Delete the caller's conversation and its messages."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.delete")
        cid = conv.id
        _delete(s, [cid])
    approvals.cancel_for(db, "conversation", [cid], "the conversation was deleted")
    return {"conversation_id": cid, "deleted": True}


def _check_days(days: int) -> int:
    if days < 1:
        raise InvalidInput(f"invalid retention {days!r}: give a number of days, 1 or more")
    return days


def retention(db: Database, org_slug: str, email: str, *, days: int | None = None,
              keep_forever: bool = False) -> dict[str, Any]:
    """Show or set how many days conversations are kept after their last turn (admins only, audited)."""
    if days is not None and keep_forever:
        raise InvalidInput("give either a number of days or keep forever, not both")
    if days is not None:
        _check_days(days)
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        after = None if keep_forever else days if days is not None else org.conversation_retention_days
        require(s, principal, "conversation.retention", in_org(org, "conversation-retention"),
                details={"before": org.conversation_retention_days, "after": after})
        if days is not None or keep_forever:
            org.conversation_retention_days = after
        return {"org": org.slug, "retention_days": org.conversation_retention_days}


def purge(db: Database, org_slug: str, days: int | None = None, *, email: str | None = None,
          now: datetime | None = None) -> dict[str, Any]:
    """Delete the organization's conversations not updated for ``days`` (default: its retention), whoever owns them.

    As ``email`` (an admin) or, without, as the installation (a scheduled job); both are audited. With
    neither ``days`` nor a retention set, nothing is deleted.
    """
    with db.session() as s:
        if email is None:
            org, principal = org_by_slug(s, org_slug), Principal.installation()
        else:
            org, principal = member(s, org_slug, email)
        keep = _check_days(days) if days is not None else org.conversation_retention_days
        cutoff = (now or utcnow()) - timedelta(days=keep) if keep is not None else None
        ids = [] if cutoff is None else list(s.scalars(
            select(Conversation.id).where(Conversation.org_id == org.id, Conversation.updated_at < cutoff)))
        require(s, principal, "conversation.purge", in_org(org, "conversation"),
                details={"days": keep, "deleted": len(ids)})
        if ids:
            _delete(s, ids)
        slug = org.slug
    approvals.cancel_for(db, "conversation", ids, "the conversation was purged")
    return {"org": slug, "retention_days": keep, "deleted": len(ids)}


def purge_expired(db: Database, now: datetime | None = None) -> list[dict[str, Any]]:
    """``purge`` as the installation for every organization that set a retention: what ``cristal worker`` runs.

    Returns the purges that deleted something. Several workers may run it at once: a conversation deleted by
    one is simply not found by the other.
    """
    with db.session() as s:
        slugs = list(s.scalars(select(Organization.slug).where(Organization.conversation_retention_days.is_not(None))))
    done = [purge(db, slug, now=now) for slug in slugs]
    return [d for d in done if d["deleted"]]


def attach(db: Database, settings: Settings, org_slug: str, email: str, conversation_id: str, filename: str,
           data: bytes) -> dict[str, Any]:
    """Attach a file to the caller's conversation (``conversation.write``, audited); parsed before anything is stored."""
    item = attachments.parse(settings, filename, data)
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.write",
                     details={"change": "attach", "filename": item.filename, "size_bytes": item.size_bytes})
        doc = attachments.store(s, settings, conv, [item])[0]
        conv.updated_at = utcnow()
        return {"conversation_id": conv.id, **doc}


def attachments_of(db: Database, org_slug: str, email: str, conversation_id: str) -> list[dict[str, Any]]:
    """The caller's conversation's attachments, oldest first, without their text (``conversation.read``, audited)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        conv = owned(s, org, principal, conversation_id, "conversation.read", details={"for": "attachments"})
        return [attachments.describe(a) for a in attachments.of(s, conv.id)]
