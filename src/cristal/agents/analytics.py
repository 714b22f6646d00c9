"""Usage of agents per version: one row per turn, by every way in, and ``cristal agent stats``.

Every turn that finishes — a ``cristal ask`` turn stored in a conversation, a
stateless ask over HTTP, a workflow's ``agent`` step — leaves one row in
``agent_turns`` with its counts (messages, tool calls, tool errors), tokens and
cost; a turn that fails (a budget spent, the model's error) leaves a row marked
failed. The rows hold no content, so they stay when a conversation is deleted or
purged: the statistics say how an agent is used, never what was said. A stored
conversation's turn carries its owner's thumbs up or down
(``conversations.rate``).

``stats`` sums the rows per version for those who may edit the agent (its
creator, its ``edit`` grants, organization admins): action ``agent.stats``,
decided in ``identity.authorize`` and audited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, distinct, func, select
from sqlalchemy.orm import Session

from cristal.agents import store
from cristal.agents.runtime import TurnResult
from cristal.db import Database
from cristal.db.schema import Agent, AgentTurn, utcnow
from cristal.errors import InvalidInput
from cristal.identity.directory import member
from cristal.identity.principal import Principal

__all__ = ["VIAS", "add_turn", "parse_since", "record", "stats"]

VIAS = ("conversation", "api", "workflow")
_AGO = re.compile(r"^(\d{1,5})([dh])$")


def add_turn(s: Session, org_id: int, agent: str, version: int, via: str, result: TurnResult | None, *,
             user_id: int | None, conversation_id: str | None = None, turn: int | None = None) -> None:
    """Add the row of one turn in ``s`` (``result`` ``None``: the turn failed); nothing for an unknown agent."""
    if via not in VIAS:
        raise ValueError(f"unknown way in {via!r}")
    agent_id = s.scalar(select(Agent.id).where(Agent.org_id == org_id, Agent.slug == agent))
    if agent_id is None:  # removed while the turn ran: nothing left to count it against
        return
    calls = result.tool_calls if result is not None else []
    s.add(AgentTurn(
        org_id=org_id, agent_id=agent_id, agent_version=version, via=via, conversation_id=conversation_id, turn=turn,
        user_id=user_id, messages=len(result.messages) if result is not None else 0, tool_calls=len(calls),
        tool_errors=sum(1 for c in calls if c.status == "error"), failed=result is None,
        tokens=result.tokens if result is not None else 0, cost_usd=result.cost_usd if result is not None else 0.0,
        created_at=utcnow()))


def record(db: Database, principal: Principal, agent: str, version: int, via: str, result: TurnResult | None,
           conversation_id: str | None = None) -> None:
    """``add_turn`` in a transaction of its own, for a turn that is stored nowhere else (or failed)."""
    if principal.org_id is None:
        return
    with db.session() as s:
        add_turn(s, principal.org_id, agent, version, via, result, user_id=principal.user_id,
                 conversation_id=conversation_id)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, a date (``2026-11-01``) or an ISO time, as a UTC instant."""
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        amount, unit = int(ago.group(1)), ago.group(2)
        return (now or utcnow()) - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid --since {text!r}: give 7d, 24h, a date (2026-11-01) or an ISO time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _n(value: Any) -> int:
    return int(value or 0)


def _totals(row: Any) -> dict[str, Any]:
    tool_errors, failed = _n(row.tool_errors), _n(row.failed)
    return {"conversations": _n(row.conversations), "turns": _n(row.turns), "messages": _n(row.messages),
            "tool_calls": _n(row.tool_calls), "errors": tool_errors + failed, "tool_errors": tool_errors,
            "failed_turns": failed, "tokens": _n(row.tokens), "cost_usd": round(float(row.cost_usd or 0.0), 6),
            "thumbs_up": _n(row.up), "thumbs_down": _n(row.down)}


def stats(db: Database, org_slug: str, email: str, slug: str, since: datetime | None = None) -> dict[str, Any]:
    """Per version of agent ``slug`` and in total: conversations, turns, messages, tool calls, errors, tokens,
    cost and thumbs, from the turns since ``since`` (``None``: all)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        agent, _ = store.authorized(s, org, principal, slug, "agent.stats",
                                    details={"since": since.isoformat() if since else None})
        where = [AgentTurn.agent_id == agent.id]
        if since is not None:
            where.append(AgentTurn.created_at >= since)
        columns = (
            func.count(distinct(AgentTurn.conversation_id)).label("conversations"),
            func.count().label("turns"),
            func.sum(AgentTurn.messages).label("messages"),
            func.sum(AgentTurn.tool_calls).label("tool_calls"),
            func.sum(AgentTurn.tool_errors).label("tool_errors"),
            func.sum(case((AgentTurn.failed, 1), else_=0).cast(Integer)).label("failed"),
            func.sum(AgentTurn.tokens).label("tokens"),
            func.sum(AgentTurn.cost_usd).label("cost_usd"),
            func.sum(case((AgentTurn.rating == 1, 1), else_=0)).label("up"),
            func.sum(case((AgentTurn.rating == -1, 1), else_=0)).label("down"),
        )
        versions = [{"version": row.agent_version, **_totals(row)} for row in s.execute(
            select(AgentTurn.agent_version, *columns).where(*where)
            .group_by(AgentTurn.agent_version).order_by(AgentTurn.agent_version))]
        by_via: dict[int, dict[str, int]] = {}
        for version, via, n in s.execute(select(AgentTurn.agent_version, AgentTurn.via, func.count()).where(*where)
                                         .group_by(AgentTurn.agent_version, AgentTurn.via)):
            by_via.setdefault(version, {})[via] = n
        for doc in versions:
            doc["turns_by_way_in"] = {via: by_via.get(doc["version"], {}).get(via, 0) for via in VIAS}
        total = _totals(s.execute(select(*columns).where(*where)).one())
        return {"agent": agent.slug, "org": org.slug, "since": since.isoformat() if since else None,
                "versions": versions, "total": total}
