"""Metering of model calls: usage rows, the monthly budget, and the usage summary.

Every call the gateway makes (or refuses) is one ``LLMUsage`` row. The budget
is a per-organization ceiling on this calendar month's (UTC) estimated spend;
it is checked before a call, so one call can overshoot it, never two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cristal.db.schema import LLMUsage, Organization, utcnow
from cristal.errors import InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.models.prices import PriceTable

Status = Literal["ok", "error", "refused"]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for servers that report none."""
    return math.ceil(len(text) / 4) if text else 0


def month_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _month_bounds(month: str | None) -> tuple[datetime, datetime | None, str]:
    """``(start, end, "YYYY-MM")`` of ``month`` (default: the current month, open-ended)."""
    if month is None:
        start = month_start()
        return start, None, start.strftime("%Y-%m")
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"invalid month {month!r}: use YYYY-MM") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end, month


def record_usage(
    session: Session,
    principal: Principal,
    *,
    org_id: int,
    kind: str,
    model: str,
    status: Status,
    tokens_in: int = 0,
    tokens_out: int = 0,
    latency_ms: float = 0.0,
    cost_usd: float = 0.0,
    error: str | None = None,
    request_id: str | None = None,
) -> None:
    """Append one usage row (committed with ``session``)."""
    session.execute(
        insert(LLMUsage),
        [
            {
                "at": utcnow(),
                "org_id": org_id,
                "user_id": principal.user_id,
                "actor": principal.label,
                "kind": kind,
                "model": model,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "latency_ms": latency_ms,
                "cost_usd": cost_usd,
                "status": status,
                "error": error,
                "request_id": request_id,
            }
        ],
    )


def month_spend(session: Session, org_id: int) -> float:
    """Estimated US dollars spent by ``org_id`` since the start of this month (UTC)."""
    stmt = select(func.coalesce(func.sum(LLMUsage.cost_usd), 0.0)).where(
        LLMUsage.org_id == org_id, LLMUsage.at >= month_start()
    )
    return float(session.scalar(stmt) or 0.0)


def budget_refusal(session: Session, org: Organization) -> str | None:
    """Why a call must be refused for the budget, or ``None`` when it may go ahead."""
    budget = org.llm_monthly_budget_usd
    if budget is None:
        return None
    spent = month_spend(session, org.id)
    if spent < budget:
        return None
    return (
        f"organization {org.slug!r} has used its monthly LLM budget (${spent:.4f} of ${budget:.2f} this month); "
        f"an admin can raise it with `cristal org llm {org.slug} --budget USD`"
    )


# ---------------------------------------------------------------------------
# The summary behind ``cristal usage``


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class UsageLine:
    """Totals for one model or one user."""

    key: str
    calls: int = 0  # calls made (ok + error); refusals are counted apart
    errors: int = 0
    refused: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    _latencies: list[float] = field(default_factory=list, repr=False)

    def add(self, row: Any) -> None:
        if row.status == "refused":
            self.refused += 1
            return
        self.calls += 1
        self.errors += row.status == "error"
        self.tokens_in += row.tokens_in
        self.tokens_out += row.tokens_out
        self.cost_usd += row.cost_usd
        self._latencies.append(row.latency_ms)

    def finish(self) -> UsageLine:
        values = sorted(self._latencies)
        self.p50_ms, self.p95_ms = _percentile(values, 0.50), _percentile(values, 0.95)
        return self

    def as_dict(self, key_name: str) -> dict[str, Any]:
        return {
            key_name: self.key,
            "calls": self.calls,
            "errors": self.errors,
            "refused": self.refused,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 6),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
        }


@dataclass(frozen=True)
class UsageSummary:
    org: str
    month: str
    spend_usd: float
    budget_usd: float | None
    total: UsageLine
    by_model: list[UsageLine]
    by_user: list[UsageLine]
    unpriced_models: list[str]  # models that appear with no known price: their cost shows as 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "month": self.month,
            "spend_usd": round(self.spend_usd, 6),
            "budget_usd": self.budget_usd,
            "total": self.total.as_dict("scope"),
            "by_model": [line.as_dict("model") for line in self.by_model],
            "by_user": [line.as_dict("user") for line in self.by_user],
            "unpriced_models": self.unpriced_models,
        }


def _group(rows: Iterable[Any], key: str) -> list[UsageLine]:
    lines: dict[str, UsageLine] = {}
    for row in rows:
        name = getattr(row, key)
        lines.setdefault(name, UsageLine(name)).add(row)
    return sorted((line.finish() for line in lines.values()), key=lambda line: (-line.cost_usd, -line.calls, line.key))


def usage_summary(
    session: Session,
    principal: Principal,
    org_slug: str,
    *,
    month: str | None = None,
    prices: PriceTable | None = None,
) -> UsageSummary:
    """Usage of one organization in one calendar month (default: this one), per model and per user.

    ``prices`` (default: the built-in table) tells which models have no known
    price, so the summary can say their cost is missing rather than zero.
    """
    prices = prices or PriceTable()
    org = org_by_slug(session, org_slug)
    require(session, principal, "usage.read", in_org(org, "usage", month or ""))
    start, end, label = _month_bounds(month)
    # One pass over the month's rows feeds every grouping; percentiles need the
    # individual latencies anyway, which SQL cannot give portably.
    stmt = select(
        LLMUsage.model, LLMUsage.actor, LLMUsage.status, LLMUsage.tokens_in,
        LLMUsage.tokens_out, LLMUsage.cost_usd, LLMUsage.latency_ms,
    ).where(LLMUsage.org_id == org.id, LLMUsage.at >= start)
    if end is not None:
        stmt = stmt.where(LLMUsage.at < end)
    rows = session.execute(stmt).all()
    total = UsageLine("all")
    for row in rows:
        total.add(row)
    by_model = _group(rows, "model")
    unpriced = sorted(line.key for line in by_model if line.calls and prices.lookup(line.key) is None)
    return UsageSummary(
        org=org.slug,
        month=label,
        spend_usd=total.cost_usd,
        budget_usd=org.llm_monthly_budget_usd,
        total=total.finish(),
        by_model=by_model,
        by_user=_group(rows, "actor"),
        unpriced_models=unpriced,
    )
