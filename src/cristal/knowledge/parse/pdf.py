"""PDF via pypdf: the text layer, page by page, with the page number on every block.

pypdf rarely emits blank lines, so a page's lines are grouped into
paragraphs where a blank line occurs *or* a line ends a sentence well short of
the page's full line width (the usual last line of a paragraph); bullet
lines start list items. Wrapped lines are joined (de-hyphenated in Latin
text, without spaces in Japanese). Bare page numbers are dropped.

Encrypted PDFs open only when the user password is empty (permissions-only
protection; AES additionally needs the ``cryptography`` package). Scanned
PDFs have no text layer and are refused: OCR is not done here.
"""

from __future__ import annotations

import io
import logging
import re

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from cristal.knowledge.parse.builder import DocumentBuilder, collapse_spaces, is_bullet_line, unwrap_lines
from cristal.knowledge.parse.document import DEFAULT_LIMITS, BlockKind, DocumentLimits, ParsedDocument, ParseError

_SENTENCE_END = re.compile("[.!?:;\u3002\uff01\uff1f\u300d\u300f)\"\u201d]$")
_PAGE_NUMBER = re.compile(r"^(?:-\s*)?(?:page\s+|seite\s+)?\d{1,4}(?:\s*(?:/|of|von)\s*\d{1,4})?(?:\s*-)?$", re.I)
_RUNS_ON = re.compile("[,\\-\u3001]$")
_SHORT_LINE = 0.75  # share of the page's longest line under which a sentence end closes a paragraph
_UNHELPFUL_TITLES = re.compile(r"^(?:untitled|unbenannt|microsoft word - .*|document\d*|slide \d+)$", re.I)
_MAX_TITLE_LINE = 200

# pypdf reports recoverable damage (broken fonts, xref repairs) through its logger;
# on a bulk sync that is noise -- real failures still raise.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    if b"%PDF-" not in data[:1024]:
        raise ParseError("not a PDF (no %PDF header)")
    reader = _open(data)
    builder = DocumentBuilder(limits)
    first_line: str | None = None
    failed_pages = 0
    try:
        pages = list(reader.pages)
    except Exception as exc:  # noqa: BLE001 - any pypdf failure here means a broken page tree
        raise ParseError(f"corrupt PDF: {_reason(exc)}") from None
    for number, page in enumerate(pages, start=1):
        try:
            raw = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one damaged page should not lose the rest
            failed_pages += 1
            continue
        for kind, text in _page_blocks(raw):
            builder.add(kind, text, page=number)
            if first_line is None:
                first_line = text.split("\n", 1)[0]
    if not builder.blocks:
        if failed_pages:
            raise ParseError(f"corrupt PDF: text extraction failed on {failed_pages} page(s)")
        raise ParseError("no extractable text (scanned PDF?)")
    metadata = {"pages": str(len(pages))}
    if failed_pages:
        metadata["failed_pages"] = str(failed_pages)
    info_title = _info(reader, metadata)
    title = info_title or (first_line[:_MAX_TITLE_LINE] if first_line else None)
    return builder.build(filename=filename, title=title, metadata=metadata)


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to restrict printing/copying,
            # with an empty user password; those we can read.
            if not reader.decrypt(""):
                raise ParseError("encrypted PDF (password required)")
        return reader
    except ParseError:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise ParseError("encrypted PDF (unsupported encryption)") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises PdfReadError, ValueError, KeyError... on damage
        raise ParseError(f"corrupt PDF: {_reason(exc)}") from None


def _info(reader: PdfReader, metadata: dict[str, str]) -> str | None:
    """Fill author/subject into ``metadata``; return the document-info title when useful."""
    try:
        info = reader.metadata
    except Exception:  # noqa: BLE001 - a damaged info dictionary is not worth failing for
        return None
    if not info:
        return None
    for key, name in (("/Author", "author"), ("/Subject", "subject")):
        value = info.get(key)
        if isinstance(value, str) and value.strip():
            metadata[name] = collapse_spaces(value)
    title = info.get("/Title")
    if not isinstance(title, str):
        return None
    title = collapse_spaces(title)
    return None if not title or _UNHELPFUL_TITLES.match(title) else title


def _page_blocks(raw: str) -> list[tuple[BlockKind, str]]:
    """(kind, text) for one page's extracted text."""
    lines = [line.strip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    # Running page numbers sit on the first or last line of a page.
    while lines and (not lines[-1] or _PAGE_NUMBER.match(lines[-1])):
        lines.pop()
    while lines and (not lines[0] or _PAGE_NUMBER.match(lines[0])):
        lines.pop(0)
    if not lines:
        return []
    width = max(len(line) for line in lines)

    groups: list[tuple[bool, list[str]]] = []  # (is_bullet, lines)
    current: list[str] = []
    bullet = False
    for line in lines:
        if not line:
            _close(groups, bullet, current)
            current, bullet = [], False
            continue
        if is_bullet_line(line):
            _close(groups, bullet, current)
            current, bullet = [line], True
            continue
        current.append(line)
        short = len(line) < width * _SHORT_LINE
        # A sentence end on a short line closes a paragraph; a short line
        # that starts a group and does not run on is a heading or caption.
        if short and (_SENTENCE_END.search(line) or (len(current) == 1 and not bullet and not _RUNS_ON.search(line))):
            _close(groups, bullet, current)
            current, bullet = [], False
    _close(groups, bullet, current)

    blocks: list[tuple[BlockKind, str]] = []
    for is_bullet, group in groups:
        text = unwrap_lines(group)
        if is_bullet and blocks and blocks[-1][0] == "list":
            # consecutive bullet items form one list block
            blocks[-1] = ("list", blocks[-1][1] + "\n" + text)
        else:
            blocks.append(("list" if is_bullet else "paragraph", text))
    return blocks


def _close(groups: list[tuple[bool, list[str]]], bullet: bool, lines: list[str]) -> None:
    if lines:
        groups.append((bullet, lines))


def _reason(exc: BaseException) -> str:
    text = collapse_spaces(str(exc)) or type(exc).__name__
    return text[:200]
