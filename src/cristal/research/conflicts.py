"""Disagreeing sources: the same thing stated with different amounts, dates or durations.

Mechanical and offline: every evidence sentence is scanned for typed values
(money with its currency, dates, durations with their unit, percentages).
Two sentences from *different* documents that answer the same sub-question,
share a topic word of it, and state a value of the same kind and unit that
differs, disagree. The report then names both values and cites both.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from cristal.research.extract import token_set
from cristal.research.notes import Evidence

_NUM = r"\d{1,3}(?:[.,' ]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_MONTHS_DE = "Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember"
_MONTHS_EN = "January|February|March|April|May|June|July|August|September|October|November|December"

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("date", re.compile(r"\d{4}年\d{1,2}月\d{1,2}日|\d{4}-\d{2}-\d{2}|\d{1,2}\.\s?\d{1,2}\.\s?\d{4}"
                        rf"|\d{{1,2}}\.\s(?:{_MONTHS_DE})\s\d{{4}}|(?:{_MONTHS_EN})\s\d{{1,2}},\s\d{{4}}|\d{{1,2}}\s(?:{_MONTHS_EN})\s\d{{4}}")),
    ("money", re.compile(rf"(?:€|\$|USD|EUR|¥|JPY)\s?(?:{_NUM})(?:\s?(?:Mio\.|million|Mrd\.))?"
                         rf"|(?:{_NUM})\s?(?:Mio\.\s?|Millionen\s|million\s|Mrd\.\s?|万|億)?"
                         r"(?:EUR|€|USD|US-Dollar|dollars|円|JPY|yen)", re.IGNORECASE)),
    ("percent", re.compile(rf"(?:{_NUM})\s?(?:%|％|Prozent|percent)", re.IGNORECASE)),
    ("duration", re.compile(rf"(?:{_NUM})\s?(?:Monate[n]?|Monats|months?|Jahre[n]?|years?|Wochen|weeks?|Tage[n]?|Arbeitstage[n]?"
                            r"|days?|Stunden|hours?|か月|ヶ月|カ月|年間|日間|営業日)", re.IGNORECASE)),
]
_UNIT_WORDS = frozenset({"eur", "usd", "jpy", "円", "prozent", "percent", "monat", "month", "jahr", "year", "tag", "day", "pro", "per"})


@dataclass(frozen=True)
class Fact:
    kind: str
    unit: str
    value: str  # normalised, for comparison
    surface: str  # as written, for the report
    evidence: Evidence


@dataclass
class Disagreement:
    subquestion: str
    kind: str
    facts: list[Fact] = field(default_factory=list)

    def as_dict(self, number_of: dict[tuple[int, int, int], int] | None = None) -> dict[str, Any]:
        return {
            "subquestion": self.subquestion,
            "kind": self.kind,
            "values": [
                {"value": f.surface, "doc_id": f.evidence.doc_id, "uri": f.evidence.uri, "title": f.evidence.title,
                 "quote": f.evidence.quote, **({"n": number_of.get(f.evidence.key)} if number_of else {})}
                for f in self.facts
            ],
        }


def _normalise(kind: str, surface: str) -> tuple[str, str]:
    s = unicodedata.normalize("NFKC", surface).strip()
    if kind == "date":
        return "", re.sub(r"\s", "", s)
    unit_match = re.search(r"[^\d\s.,']+", s)
    unit = unit_match.group().casefold() if unit_match else ""
    unit = {"€": "eur", "$": "usd", "us-dollar": "usd", "dollars": "usd", "¥": "jpy", "円": "jpy", "yen": "jpy",
            "monaten": "monate", "month": "months", "jahren": "jahre", "year": "years", "tagen": "tage", "day": "days",
            "arbeitstagen": "arbeitstage", "ヶ月": "か月", "カ月": "か月", "prozent": "%", "percent": "%", "％": "%"}.get(unit, unit)
    digits = re.sub(r"[.,']\d{2}$", "", re.sub(r"\s", "", re.sub(r"[^\d.,'\s]", "", s)))  # 180,00 -> 180
    return unit, re.sub(r"[^\d]", "", digits).lstrip("0") or "0"


def facts_of(evidence: Evidence) -> list[Fact]:
    found: list[Fact] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(evidence.quote):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            unit, value = _normalise(kind, m.group())
            found.append(Fact(kind, unit, value, m.group().strip(), evidence))
    return found


def find_disagreements(evidence: list[Evidence], subquestions: list[str], lang: str) -> list[Disagreement]:
    """Pairs of documents stating different values of one kind for one sub-question."""
    out: list[Disagreement] = []
    seen_pairs: set[frozenset] = set()
    for sub in subquestions:
        topic = token_set(sub, lang)
        items = sorted((e for e in evidence if e.subquestion == sub), key=lambda e: -e.score)
        facts = [f for e in items for f in facts_of(e)]
        groups: dict[tuple[str, str], list[Fact]] = {}
        for f in facts:
            groups.setdefault((f.kind, f.unit), []).append(f)
        for (kind, _unit), group in groups.items():
            values: dict[str, Fact] = {}
            for f in group:
                values.setdefault(f.value, f)
            if len(values) < 2:
                continue
            firsts = list(values.values())
            for i, a in enumerate(firsts):
                for b in firsts[i + 1 :]:
                    if a.evidence.doc_id == b.evidence.doc_id:
                        continue
                    ta = token_set(a.evidence.quote + " " + a.evidence.heading, a.evidence.lang)
                    tb = token_set(b.evidence.quote + " " + b.evidence.heading, b.evidence.lang)
                    common = {t for t in ta & tb if not any(ch.isdigit() for ch in t) and t not in _UNIT_WORDS}
                    # Same language as the question: the shared word must be a topic word of it;
                    # across languages the two sentences' own shared word has to do.
                    shared = common & topic if (ta & topic or tb & topic) else common
                    if not shared:
                        continue
                    pair = frozenset({(a.evidence.doc_id, a.value), (b.evidence.doc_id, b.value)})
                    if pair in seen_pairs:
                        continue
                    seen_pairs.add(pair)
                    out.append(Disagreement(sub, kind, [a, b]))
                    break
                else:
                    continue
                break
    return out
