"""The one place that assembles a :class:`ParsedDocument` from blocks.

Parsers only say "a heading of level 2", "a paragraph", "a table with these
rows"; :class:`DocumentBuilder` normalises the text, tracks the heading stack
and every block's character span, joins the blocks with a blank line into
``ParsedDocument.text`` and detects the language. Text helpers that more than
one format needs (paragraph splitting, line unwrapping, list and table
rendering) live here too, so the formats render the same structure the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import PurePath

from cristal.knowledge.language import detect_language
from cristal.knowledge.parse.document import DEFAULT_LIMITS, Block, BlockKind, DocumentLimits, ParsedDocument, ParseError

BLOCK_SEPARATOR = "\n\n"
_MAX_TITLE = 300
# Language detection looks at the beginning only: it is enough, and parsing
# is on the ingestion hot path.
_LANGUAGE_SAMPLE = 20_000

# C0 controls other than tab and newline are extraction artefacts (PDF text
# layers, Word field codes); they would only confuse chunking and display.
_CONTROLS: dict[int, str | None] = {c: None for c in range(32) if c not in (9, 10)}
_CONTROLS[0x7F] = None
_CONTROLS[0x0D] = "\n"  # a lone CR that reached us is still a line break
_BLANK_LINES = re.compile(r"\n[ \t\u3000]*\n\s*")
_TRAILING_SPACE = re.compile(r"[ \t\u3000]+\n")
_SPACES = re.compile(r"\s+")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u2023\u25cf\u25aa\u25e6\u30fb\u2013]|\d{1,3}[.)])\s+\S")
_CJK_END = re.compile("[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]$")
_CJK_START = re.compile("^[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")


class DocumentBuilder:
    """Collects blocks in reading order and produces the ParsedDocument."""

    def __init__(self, limits: DocumentLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._parts: list[str] = []
        self._blocks: list[Block] = []
        self._length = 0
        self._headings: list[tuple[int, str]] = []  # (level, text), outermost first
        self.first_heading: str | None = None

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._headings)

    @property
    def blocks(self) -> Sequence[Block]:
        return self._blocks

    def heading(self, text: str, level: int, *, page: int | None = None) -> None:
        """A heading of ``level`` (0 = document title, 1 = top section, ...).

        The heading's own block carries its *enclosing* headings; the blocks
        after it carry the path including it, until a heading of the same or a
        higher level closes it.
        """
        text = collapse_spaces(text.translate(_CONTROLS))
        if not text:
            return
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._append("heading", text, page)
        self._headings.append((level, text))
        if self.first_heading is None:
            self.first_heading = text

    def add(self, kind: BlockKind, text: str, *, page: int | None = None) -> None:
        """Append a block; empty text is dropped."""
        text = text.translate(_CONTROLS)
        if kind == "code":
            # Indentation matters in code; only blank edges go.
            text = text.strip("\n").rstrip()
        else:
            text = _TRAILING_SPACE.sub("\n", text).strip()
        if text.strip():
            self._append(kind, text, page)

    def table(self, rows: Iterable[Sequence[str]], *, page: int | None = None) -> None:
        """A table, one line per row, cells separated by `` | ``."""
        self.add("table", render_table(rows), page=page)

    def _append(self, kind: BlockKind, text: str, page: int | None) -> None:
        start = self._length + (len(BLOCK_SEPARATOR) if self._parts else 0)
        end = start + len(text)
        if end > self.limits.max_chars:  # stop here: the rest of the document is never collected
            raise self.limits.too_many_chars()
        self._parts.append(text)
        self._blocks.append(Block(kind, text, start, end, self.heading_path, page))
        self._length = end

    def build(self, *, filename: str, title: str | None = None, metadata: dict[str, str] | None = None) -> ParsedDocument:
        """The document; the title falls back to the first heading, then the file name.

        A document without any text is a :class:`ParseError` ("no text content"):
        indexing it would only produce an empty search result.
        """
        if not self._blocks:
            raise ParseError("no text content")
        text = BLOCK_SEPARATOR.join(self._parts)
        chosen = collapse_spaces(title or "") or self.first_heading or PurePath(filename).stem
        return ParsedDocument(
            title=chosen[:_MAX_TITLE],
            text=text,
            blocks=self._blocks,
            language=detect_language(self._language_sample()),
            metadata=dict(metadata or {}),
        )

    def _language_sample(self) -> str:
        # Mail headers ("From:", "Subject:") are English whatever the body
        # is written in, so they do not vote.
        sample: list[str] = []
        size = 0
        for block in self._blocks:
            if block.kind == "header":
                continue
            sample.append(block.text)
            size += len(block.text)
            if size >= _LANGUAGE_SAMPLE:
                break
        return "\n".join(sample)[:_LANGUAGE_SAMPLE]


def collapse_spaces(text: str) -> str:
    """All whitespace runs (newlines included) become one space."""
    return _SPACES.sub(" ", text).strip()


def render_table(rows: Iterable[Sequence[str]]) -> str:
    """Rows as lines, cells joined by `` | ``; cell text is kept on one line."""
    lines = []
    for row in rows:
        cells = [collapse_spaces(cell) for cell in row]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def list_item(marker: str, text: str, depth: int = 0) -> str:
    """One list item: ``marker text``, continuation lines aligned under the text."""
    indent = "  " * depth
    lines = text.strip().split("\n") or [""]
    hang = "\n" + indent + " " * (len(marker) + 1)
    return indent + marker + " " + hang.join(line.strip() for line in lines)


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines (whitespace-only lines count as blank)."""
    return [p for p in (part.strip("\n") for part in _BLANK_LINES.split(text)) if p.strip()]


def is_bullet_line(line: str) -> bool:
    return bool(_BULLET.match(line))


def paragraph_kind(paragraph: str) -> BlockKind:
    """``list`` when every line is a bullet, ``quote`` when every line starts with ``>``."""
    lines = [line for line in paragraph.split("\n") if line.strip()]
    if lines and all(line.lstrip().startswith(">") for line in lines):
        return "quote"
    if lines and all(is_bullet_line(line) for line in lines):
        return "list"
    return "paragraph"


def add_paragraphs(builder: DocumentBuilder, text: str, *, page: int | None = None) -> None:
    """Plain text into paragraph / list / quote blocks, split on blank lines."""
    for paragraph in split_paragraphs(text):
        builder.add(paragraph_kind(paragraph), paragraph, page=page)


def unwrap_lines(lines: Sequence[str]) -> str:
    """Join the visual lines of one paragraph into running text.

    Latin text gets a space between lines and loses end-of-line hyphenation
    ("infor-" + "mation"); Japanese lines are joined without a space.
    """
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
        elif out.endswith("-") and len(out) > 1 and out[-2].islower() and line[0].islower():
            out = out[:-1] + line
        elif _CJK_END.search(out) and _CJK_START.match(line):
            out += line
        else:
            out += " " + line
    return out
