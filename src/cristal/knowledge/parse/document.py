"""What every parser produces: a document's plain text with its structure.

``ParsedDocument.text`` is the canonical text of the document. Every block
knows its character span in that text, so a chunk (and later a citation's
quote) can always be located verbatim in the document it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "table", "code", "quote", "header"]


class ParseError(Exception):
    """A file that cannot be parsed; the message is one line and says why."""


@dataclass(frozen=True)
class Block:
    """One structural unit: a heading, a paragraph, a table rendered as text, ..."""

    kind: BlockKind
    text: str
    start: int  # offset of ``text`` in ParsedDocument.text
    end: int
    heading_path: tuple[str, ...] = ()  # enclosing headings, outermost first
    page: int | None = None  # 1-based page number (PDF)


@dataclass
class ParsedDocument:
    title: str
    text: str
    blocks: list[Block]
    language: str  # "en", "de", "ja", ... or "und" when unknown
    metadata: dict[str, str] = field(default_factory=dict)
