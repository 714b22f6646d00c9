"""Word (.docx) via python-docx: body paragraphs and tables in document order.

Structure comes from paragraph styles: ``Title`` is a level-0 heading (and
the title), ``Heading n`` (or a style based on one) a level-n heading; list
styles and numbered paragraphs become list blocks (with their nesting level),
``Quote`` styles quotes, code-like styles code. Text boxes, headers/footers,
footnotes and comments are not read.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from cristal.knowledge.parse.builder import DocumentBuilder, collapse_spaces, list_item
from cristal.knowledge.parse.document import (
    DEFAULT_LIMITS,
    BlockKind,
    DocumentLimits,
    DocumentTooLarge,
    ParsedDocument,
    ParseError,
    human_size,
)

if TYPE_CHECKING:  # python-docx is imported in parse(), when a Word file comes
    from docx.document import Document as DocxDocument
    from docx.table import Table

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TEXT_TAG = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"
_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)
_CODE_STYLES = ("code", "html preformatted", "plain text", "macro text", "source")
_QUOTE_STYLES = ("quote", "intense quote")


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    _check_archive(data, limits)
    # Imported here: python-docx is the slowest import of the parsers and
    # most syncs contain no Word files.
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises KeyError, ValueError, lxml errors...
        raise ParseError(f"corrupt DOCX: {collapse_spaces(str(exc))[:200] or type(exc).__name__}") from None

    builder = DocumentBuilder(limits)
    title: str | None = None
    run: tuple[BlockKind, list[str]] | None = None  # consecutive list/quote/code paragraphs
    numbers: dict[int, int] = {}  # running number per list level, for numbered lists

    def flush() -> None:
        nonlocal run
        if run:
            builder.add(run[0], "\n".join(run[1]))
            run = None
        numbers.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush()
            builder.table(_table_rows(item))
            continue
        text = item.text
        if not text.strip():
            continue
        style = _style_name(item)
        level = _heading_level(item)
        if level is not None:
            flush()
            builder.heading(text, level)
            if level == 0 and title is None:
                title = collapse_spaces(text)
            continue
        kind, line = _classify(item, style, text, numbers)
        if kind == "paragraph":
            flush()
            builder.add("paragraph", text)
        else:
            if run and run[0] != kind:
                flush()
            if run is None:
                run = (kind, [])
            run[1].append(line)
    flush()

    metadata = _core_properties(document)
    return builder.build(filename=filename, title=metadata.get("title") or title, metadata=metadata)


def _check_archive(data: bytes, limits: DocumentLimits) -> None:
    """Refuse a DOCX that would cost more than ``limits`` before python-docx builds it in memory.

    python-docx holds every part and a tree of every XML part (about seven
    times the XML's size), so two checks come first: the declared inflated
    size of all parts (``zipfile`` never inflates a member past its declared
    size), then the body streamed through a pull parser that keeps no tree
    and stops at the text limit.
    """
    if data.startswith(_OLE_MAGIC):
        raise ParseError("legacy Word .doc format saved as .docx (not supported)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unzipped = sum(info.file_size for info in archive.infolist())
            if "word/document.xml" not in names:
                raise ParseError("corrupt DOCX (no word/document.xml)")
            if unzipped > limits.max_unzipped_bytes:
                raise DocumentTooLarge(
                    f"DOCX unpacks to {human_size(unzipped)}, over the limit of {human_size(limits.max_unzipped_bytes)}"
                    " (CRISTAL_KNOWLEDGE_MAX_UNZIPPED_BYTES)")
            with archive.open("word/document.xml") as body:
                _check_body_text(body, limits)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise ParseError("corrupt DOCX (not a zip archive)") from None


def _check_body_text(body: IO[bytes], limits: DocumentLimits) -> None:
    """Count the body's text (``w:t`` runs) while it inflates, freeing each element once read."""
    from lxml import etree

    chars = 0
    try:
        for _, element in etree.iterparse(body, events=("end",), resolve_entities=False, no_network=True):
            if element.tag == _TEXT_TAG and element.text:
                chars += len(element.text)
                if chars > limits.max_chars:
                    raise limits.too_many_chars()
            element.clear(keep_tail=False)
            while element.getprevious() is not None:  # what came before is done with
                del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"corrupt DOCX: {collapse_spaces(str(exc))[:200]}") from None


def _style_names(paragraph: object) -> Iterator[str]:
    """The paragraph's style name and those it is based on, nearest first."""
    style = getattr(paragraph, "style", None)
    for _ in range(4):  # custom styles rarely chain deeper than this
        if style is None:
            return
        yield (style.name or "").strip().lower()
        style = style.base_style


def _style_name(paragraph: object) -> str:
    return next(_style_names(paragraph), "")


def _heading_level(paragraph: object) -> int | None:
    for name in _style_names(paragraph):
        if name == "title":
            return 0
        match = _HEADING_STYLE.match(name)
        if match:
            return int(match.group(1))
    return None


def _classify(paragraph: object, style: str, text: str, numbers: dict[int, int]) -> tuple[BlockKind, str]:
    """(kind, line) for a body paragraph; list lines get their marker and indent."""
    if style in _QUOTE_STYLES:
        return "quote", text
    if any(name in style for name in _CODE_STYLES):
        return "code", text
    num_pr = _num_pr(paragraph)
    if num_pr is None and not style.startswith("list"):
        return "paragraph", text
    depth = _list_depth(num_pr, style)
    for deeper in [lvl for lvl in numbers if lvl > depth]:
        del numbers[deeper]  # a sub-list restarts its numbering
    if "number" in style:
        numbers[depth] = numbers.get(depth, 0) + 1
        marker = f"{numbers[depth]}."
    else:
        marker = "-"
    return "list", list_item(marker, text, depth)


def _num_pr(paragraph: object) -> object | None:
    p_pr = getattr(paragraph, "_p", None)
    p_pr = getattr(p_pr, "pPr", None)
    return getattr(p_pr, "numPr", None) if p_pr is not None else None


def _list_depth(num_pr: object | None, style: str) -> int:
    ilvl = getattr(num_pr, "ilvl", None) if num_pr is not None else None
    if ilvl is not None and getattr(ilvl, "val", None) is not None:
        return int(ilvl.val)
    match = re.search(r"(\d)$", style)  # "List Bullet 2"
    return int(match.group(1)) - 1 if match else 0


def _table_rows(table: Table) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A horizontally merged cell is reported once per grid column.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(cell.text)
        rows.append(cells)
    return rows


def _core_properties(document: DocxDocument) -> dict[str, str]:
    metadata: dict[str, str] = {}
    try:
        props = document.core_properties
        for name in ("title", "author", "subject", "keywords"):
            value = getattr(props, name, None)
            if isinstance(value, str) and value.strip():
                metadata[name] = collapse_spaces(value)
        if props.created is not None:
            metadata["created"] = props.created.isoformat()
    except Exception:  # noqa: BLE001 - damaged docProps must not lose the body
        pass
    return metadata
