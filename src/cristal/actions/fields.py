"""Values that several action specs (and workflow files) share: durations and approver rules."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"5m"``, ``"2h"``, ``"3d"``, ``"1w"``, ``"250ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"invalid duration {value!r}: use a number with s, m, h, d or w (e.g. 30s, 3d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return seconds


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
