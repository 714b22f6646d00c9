"""The parsing stage of the knowledge layer: file bytes -> :class:`ParsedDocument`.

Connectors hand over a file's bytes and name; :func:`parse_bytes` picks the
parser by extension and returns the document's canonical text with its
blocks (headings, paragraphs, lists, tables, code, quotes; PDF page numbers),
title, metadata and language. Every failure -- empty, too large, corrupt,
encrypted, binary content under a text extension, unsupported type, over a
per-document limit (:class:`DocumentLimits`) -- is a :class:`ParseError` with a
one-line reason; no other exception escapes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath

from cristal.knowledge.parse import docx, eml, html, markdown, pdf, text
from cristal.knowledge.parse.document import (
    DEFAULT_LIMITS,
    Block,
    BlockKind,
    DocumentLimits,
    DocumentTooLarge,
    ParsedDocument,
    ParseError,
    human_size,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_EXTENSIONS",
    "Block",
    "BlockKind",
    "DocumentLimits",
    "DocumentTooLarge",
    "ParseError",
    "ParsedDocument",
    "parse_bytes",
    "parse_file",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_PARSERS: dict[str, Callable[[bytes, str, DocumentLimits], ParsedDocument]] = {
    ".md": markdown.parse,
    ".markdown": markdown.parse,
    ".txt": text.parse,
    ".text": text.parse,
    ".html": html.parse,
    ".htm": html.parse,
    ".pdf": pdf.parse,
    ".docx": docx.parse,
    ".eml": eml.parse,
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_PARSERS)


def parse_bytes(
    data: bytes, filename: str, *, max_bytes: int = DEFAULT_MAX_BYTES, limits: DocumentLimits = DEFAULT_LIMITS
) -> ParsedDocument:
    """Parse a file's content; ``filename`` chooses the format (by extension) and the fallback title."""
    parser = _parser_for(filename)
    _check_size(len(data), max_bytes)
    try:
        return parser(data, filename, limits)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("document structure nested too deeply") from None
    except MemoryError:
        raise ParseError("document too large to parse in memory") from None
    except Exception as exc:  # noqa: BLE001 - the contract: nothing but ParseError escapes
        detail = " ".join(str(exc).split())[:200]
        raise ParseError(f"cannot parse {PurePath(filename).suffix.lower()} file: {type(exc).__name__}"
                         + (f": {detail}" if detail else "")) from None


def parse_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    """Parse a file on disk; its size is checked before it is read."""
    path = Path(path)
    _parser_for(path.name)
    try:
        size = path.stat().st_size
        _check_size(size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    return parse_bytes(data, path.name, max_bytes=max_bytes, limits=limits)


def _parser_for(filename: str) -> Callable[[bytes, str, DocumentLimits], ParsedDocument]:
    suffix = PurePath(filename).suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ParseError(f"unsupported file type: {suffix or '(no extension)'}")
    return parser


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ParseError("empty file")
    if size > max_bytes:
        raise ParseError(f"file too large: {human_size(size)} > {human_size(max_bytes)} limit")
