"""What the model sees of a page.

::

    URL: http://apps.example/expenses/new
    Title: New expense
    Interactive elements:
    [1] link "Expenses" -> /expenses
    [4] textbox "Amount" value="" required
    [5] combobox "Category" value="Travel" options: "Travel", "Meals", "Office"
    [6] checkbox "Receipt attached" unchecked
    [7] button "Submit claim" submits
    [8] row "Taxi 2025-10-02 42.50 EUR draft"
    Visible text:
    [1] Expenses
    New expense
    Amount [4] Category [5] ...

Every string in an observation has passed through the run's secret redaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cristal.operator.safety import Secrets

MAX_VALUE = 80


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _short_href(href: str, page_url: str) -> str:
    if not href:
        return ""
    page = urlsplit(page_url)
    target = urlsplit(href)
    if target.netloc and target.netloc == page.netloc:
        href = target.path + (f"?{target.query}" if target.query else "")
    return href if len(href) <= 80 else href[:79] + "…"


def element_line(element: dict[str, Any], page_url: str = "") -> str:
    """``[ID] role "name"`` plus value and state."""
    parts = [f"[{element['id']}] {element['role']} {_quote(element.get('name') or '')}"]
    if element.get("type"):
        parts.append(f"({element['type']})")
    if "value" in element and (element["role"] not in ("button",) or element.get("file")):
        value = str(element["value"])
        if len(value) > MAX_VALUE:
            value = value[: MAX_VALUE - 1] + "…"
        parts.append(f"value={_quote(value)}")
    if element.get("hint"):
        parts.append(f"hint={_quote(element['hint'])}")
    if element.get("options"):
        parts.append("options: " + ", ".join(_quote(o) for o in element["options"]))
    parts.extend(element.get("states") or [])
    if element.get("moreOptions"):
        parts.append(f"(+{element['moreOptions']} options not listed: select_option takes any)")
    if element.get("submit"):
        parts.append("submits form")
    if element.get("role") == "link" and element.get("href"):
        parts.append("-> " + _short_href(element["href"], page_url))
    return " ".join(parts)


@dataclass
class Observation:
    url: str
    title: str
    elements: list[dict[str, Any]]
    text: str
    scroll: dict[str, int]
    distil_ms: float  # inside the page
    total_ms: float  # including the round trip
    text_truncated: bool = False
    truncated_elements: int = 0
    notes: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    listeners_ms: float = 0.0  # finding the elements with listeners (part of total_ms)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], secrets: Secrets, *, total_ms: float) -> Observation:
        """``raw`` is the distiller's result, already redacted (``Secrets.redact_json`` on its JSON text)."""
        return cls(
            url=raw["url"],
            title=raw["title"],
            elements=raw["elements"],
            text=raw["text"],
            scroll=raw.get("scroll") or {},
            distil_ms=round(float(raw.get("ms", 0.0)), 2),
            total_ms=round(total_ms, 2),
            text_truncated=bool(raw.get("textTruncated")),
            truncated_elements=int(raw.get("truncatedElements", 0)),
        )

    # -- lookups

    def element(self, element_id: int) -> dict[str, Any] | None:
        for e in self.elements:
            if e["id"] == element_id:
                return e
        return None

    def by_key(self, key: str) -> dict[str, Any] | None:
        for e in self.elements:
            if e["key"] == key:
                return e
        return None

    def text_lines(self) -> list[str]:
        return [line for line in self.text.split("\n") if line.strip()]

    # -- the model's view

    def scroll_note(self) -> str:
        height, viewport, y = self.scroll.get("height", 0), self.scroll.get("viewport", 0), self.scroll.get("y", 0)
        if not viewport or height <= viewport * 1.05:
            return ""
        screens = height / viewport
        at = min(100, round(100 * (y + viewport) / height))
        return f"Scroll: viewing down to {at}% of a page {screens:.1f} screens tall"

    def format(self) -> str:
        lines = [f"URL: {self.url}", f"Title: {self.title}"]
        note = self.scroll_note()
        if note:
            lines.append(note)
        lines += [f"Note: {n}" for n in self.notes]
        lines += [f"Note: a request to {u} was BLOCKED (outside the run's allow-list)" for u in self.blocked[:3]]
        lines.append("Interactive elements:")
        if self.elements:
            lines += [element_line(e, self.url) for e in self.elements]
        else:
            lines.append("(none)")
        if self.truncated_elements:
            lines.append(f"(… {self.truncated_elements} more elements not listed)")
        lines.append("Visible text:")
        lines.append(self.text or "(none)")
        if self.text_truncated:
            lines.append("(… text truncated)")
        return "\n".join(lines)
