"""What every parser produces: a document's plain text with its structure.

``ParsedDocument.text`` is the canonical text of the document. Every block
knows its character span in that text, so a chunk (and later a citation's
quote) can always be located verbatim in the document it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cristal.config import Settings

BlockKind = Literal["heading", "paragraph", "list", "table", "code", "quote", "header"]


class ParseError(Exception):
    """A file that cannot be parsed; the message is one line and says why."""


def _default(setting: str) -> int:
    default = Settings.model_fields[setting].default
    assert isinstance(default, int), setting
    return default


class DocumentTooLarge(ParseError):
    """A document over a per-document limit: skipped whole, never indexed in part."""


@dataclass(frozen=True)
class DocumentLimits:
    """What one document may cost; the installation sets them, and the defaults are its defaults."""

    max_chars: int = _default("knowledge_max_document_chars")  # extracted text, in characters
    max_chunks: int = _default("knowledge_max_document_chunks")
    max_unzipped_bytes: int = _default("knowledge_max_unzipped_bytes")  # all parts of a DOCX, inflated

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        return cls(settings.knowledge_max_document_chars, settings.knowledge_max_document_chunks,
                   settings.knowledge_max_unzipped_bytes)

    def too_many_chars(self) -> DocumentTooLarge:
        return DocumentTooLarge(
            f"text over the limit of {self.max_chars:,} characters per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHARS)")

    def too_many_chunks(self) -> DocumentTooLarge:
        return DocumentTooLarge(
            f"more than the limit of {self.max_chunks:,} chunks per document (CRISTAL_KNOWLEDGE_MAX_DOCUMENT_CHUNKS)")


DEFAULT_LIMITS = DocumentLimits()


def human_size(size: int) -> str:
    """``52 MB``, ``1.5 MB``, ``300 KB``, ``120 B`` -- for one-line messages."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}".replace(".0 ", " ") if value < 10 else f"{value:.0f} {unit}"
    return f"{size} B"


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
