"""Policy checks used by the sample workflows (``python`` steps call these by import path)."""

from __future__ import annotations

from typing import Any

# Per-category limits in the organization's currency, from the sample travel and expense policies.
LIMITS = {"hotel": 180.0, "per_diem": 28.0, "client_entertainment": 70.0, "training": 1000.0, "travel": 1500.0, "mileage": 100.0}


def policy_check(expense: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Flag an expense claim against the sample policy; returns the finding for the approver."""
    amount = float(expense.get("amount") or 0)
    category = str(expense.get("category") or "")
    findings = []
    limit = LIMITS.get(category)
    if limit is not None and category in ("hotel",):
        nights = max(1, round(amount / limit)) if amount > limit else 1
        if amount / nights > limit:
            findings.append(f"hotel above {limit:.0f} per night")
    elif limit is not None and amount > limit:
        findings.append(f"{category} above {limit:.0f}")
    if "über 70 EUR" in str(expense.get("description", "")) or "above" in str(expense.get("description", "")):
        findings.append("description notes a limit was exceeded")
    return {
        "id": expense.get("id"),
        "employee": expense.get("employee_email"),
        "amount": amount,
        "category": category,
        "verdict": "needs_review" if findings else "within_policy",
        "findings": findings,
        "checked_by": getattr(context, "idempotency_key", None),
    }


def numbers(n: int) -> list[int]:
    return list(range(int(n)))


def double(x: float) -> float:
    return x * 2
