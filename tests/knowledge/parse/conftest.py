"""Shared checks for the parser tests: every parsed document must be self-consistent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cristal.knowledge.parse import ParsedDocument, parse_bytes


def check_document(doc: ParsedDocument) -> ParsedDocument:
    """The invariants every parser must keep, whatever the input."""
    assert doc.blocks, "a parsed document has at least one block"
    previous_end = -2
    for block in doc.blocks:
        assert doc.text[block.start : block.end] == block.text
        assert block.text.strip() == block.text or block.kind == "code"
        assert block.text
        assert block.start == previous_end + 2  # blocks are joined by exactly one blank line
        previous_end = block.end
    assert previous_end == len(doc.text)
    assert "\r" not in doc.text and "\x00" not in doc.text
    assert doc.language in {"en", "de", "ja", "und"}
    assert doc.title and "\n" not in doc.title
    return doc


@pytest.fixture
def parse() -> Callable[..., ParsedDocument]:
    """``parse(data, filename)`` that also checks the document invariants."""

    def _parse(data: bytes, filename: str, **kwargs: int) -> ParsedDocument:
        return check_document(parse_bytes(data, filename, **kwargs))

    return _parse
