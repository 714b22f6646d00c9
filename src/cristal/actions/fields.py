"""Values that several action specs (and workflow files) share: durations and approver rules."""

from __future__ import annotations

from cristal.durable.durations import parse_duration

__all__ = ["approver_rules", "parse_duration"]

def approver_rules(v: list[str]) -> list[str]:
    """``group:NAME`` / ``user:EMAIL`` rules, normalised (e-mail addresses in lower case)."""
    out = []
    for rule in v:
        rule = rule.strip()
        kind, _, name = rule.partition(":")
        if kind not in ("group", "user") or not name:
            raise ValueError(f"invalid approver {rule!r}: use group:NAME or user:EMAIL")
        out.append(f"{kind}:{name.lower() if kind == 'user' else name}")
    return out
