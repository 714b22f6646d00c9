"""Plain text (.txt, .text): paragraphs on blank lines.

Bullet-only paragraphs become lists and ``>``-quoted ones quotes. When the
file opens with a short line followed by more text, that line is the title
(the common "title line, then body" layout); otherwise the file name is.
"""

from __future__ import annotations

from cristal.knowledge.parse.builder import DocumentBuilder, add_paragraphs
from cristal.knowledge.parse.decoding import decode_text
from cristal.knowledge.parse.document import DEFAULT_LIMITS, DocumentLimits, ParsedDocument

_MAX_TITLE_LINE = 100


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    text = decode_text(data)
    builder = DocumentBuilder(limits)
    add_paragraphs(builder, text)
    return builder.build(filename=filename, title=_title_line(text))


def _title_line(text: str) -> str | None:
    head = text.lstrip()[:4096]
    first, _, rest = head.partition("\n")
    first = first.strip()
    if not first or not rest.strip() or len(first) > _MAX_TITLE_LINE:
        return None
    return first
