"""Cutting a parsed document into chunks that keep structure and know where they came from.

A chunk is a span ``[start, end)`` of the document's canonical text made of
whole consecutive blocks (a paragraph is never cut unless it alone is too
long), so a quote taken from a chunk is always verbatim in the document. A
heading opens a new chunk; each chunk carries its heading path and page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cristal.knowledge.parse.document import DEFAULT_LIMITS, Block, DocumentLimits, ParsedDocument

# Japanese packs about twice the information per character.
TARGET_CHARS = {"ja": 400}
DEFAULT_TARGET = 900
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


@dataclass(frozen=True)
class ChunkSpan:
    ord: int
    start: int
    end: int
    text: str
    heading: str
    page: int | None


def _pieces(block: Block, limit: int) -> list[tuple[int, int]]:
    """Spans of one block, split at sentence ends when the block is longer than ``limit``."""
    if block.end - block.start <= limit:
        return [(block.start, block.end)]
    spans: list[tuple[int, int]] = []
    start = block.start
    cut = block.start
    for match in _SENTENCE_END.finditer(block.text):
        boundary = block.start + match.end()
        if boundary - start > limit and cut > start:
            spans.append((start, cut))
            start = cut
        cut = boundary
    # A single "sentence" longer than the limit is cut hard: chunks must stay bounded.
    tail = block.end
    while tail - start > limit * 2:
        spans.append((start, start + limit))
        start += limit
    spans.append((start, tail))
    return [(a, b) for a, b in spans if b > a]


def chunk_document(
    doc: ParsedDocument, target_chars: int | None = None, *, limits: DocumentLimits = DEFAULT_LIMITS
) -> list[ChunkSpan]:
    """The document's chunks, or ``DocumentTooLarge`` as soon as there would be more than ``limits.max_chunks``."""
    limit = target_chars or TARGET_CHARS.get(doc.language, DEFAULT_TARGET)
    groups: list[list[tuple[int, int, Block]]] = []
    current: list[tuple[int, int, Block]] = []
    for block in doc.blocks:
        if not block.text.strip():
            continue
        starts_section = block.kind == "heading" and any(b.kind != "heading" for _, _, b in current)
        for start, end in _pieces(block, limit):
            size = end - current[0][0] if current else 0
            if current and (starts_section or size > limit):
                groups.append(current)
                current = []
                if len(groups) >= limits.max_chunks:  # and ``current`` holds the next one
                    raise limits.too_many_chunks()
            starts_section = False
            current.append((start, end, block))
    if current:
        groups.append(current)

    chunks = []
    for ord_, group in enumerate(groups):
        start, end = group[0][0], group[-1][1]
        first_body = next((b for _, _, b in group if b.kind != "heading"), group[0][2])
        path = first_body.heading_path
        if first_body.kind == "heading":
            path = (*path, first_body.text)
        chunks.append(
            ChunkSpan(ord_, start, end, doc.text[start:end], " > ".join(path), next((b.page for _, _, b in group if b.page), None))
        )
    return chunks
