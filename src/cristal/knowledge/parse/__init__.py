"""The parsing stage of the knowledge layer: file bytes -> :class:`ParsedDocument`.

Connectors hand over a file's bytes and name; :func:`parse_bytes` picks the
parser by extension and returns the document's canonical text with its
blocks (headings, paragraphs, lists, tables, code, quotes; PDF page numbers),
title, metadata and language. Every failure -- empty, too large, corrupt,
encrypted, binary content under a text extension, unsupported type -- is a
:class:`ParseError` with a one-line reason; no other exception escapes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath

from cristal.knowledge.parse import docx, eml, html, markdown, pdf, text
from cristal.knowledge.parse.document import Block, BlockKind, ParsedDocument, ParseError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_EXTENSIONS",
    "Block",
    "BlockKind",
    "ParseError",
    "ParsedDocument",
    "parse_bytes",
    "parse_file",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_PARSERS: dict[str, Callable[[bytes, str], ParsedDocument]] = {
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


def parse_bytes(data: bytes, filename: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedDocument:
    """Parse a file's content; ``filename`` chooses the format (by extension) and the fallback title."""
    parser = _parser_for(filename)
    _check_size(len(data), max_bytes)
    try:
        return parser(data, filename)
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


def parse_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedDocument:
    """Parse a file on disk; its size is checked before it is read."""
    path = Path(path)
    _parser_for(path.name)
    try:
        size = path.stat().st_size
        _check_size(size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    return parse_bytes(data, path.name, max_bytes=max_bytes)


def _parser_for(filename: str) -> Callable[[bytes, str], ParsedDocument]:
    suffix = PurePath(filename).suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ParseError(f"unsupported file type: {suffix or '(no extension)'}")
    return parser


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ParseError("empty file")
    if size > max_bytes:
        raise ParseError(f"file too large: {_human_size(size)} > {_human_size(max_bytes)} limit")


def _human_size(size: int) -> str:
    """``52 MB``, ``1.5 MB``, ``300 KB``, ``120 B`` -- for one-line messages."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}".replace(".0 ", " ") if value < 10 else f"{value:.0f} {unit}"
    return f"{size} B"
