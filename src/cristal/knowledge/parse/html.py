"""HTML (.html, .htm), also used for HTML mail bodies and HTML inside Markdown.

The page is walked in document order: headings, paragraphs (and loose text
in containers), lists with nesting, tables, ``<pre>`` code and block quotes
become blocks. Boilerplate is dropped -- script/style, navigation, sidebars,
site header and footer (a ``<header>``/``<footer>`` inside ``<article>`` or
``<main>`` is content and stays), hidden elements. Tables that hold headings
or other tables are layout, and are walked like containers. The title is
``<title>``, else the first ``<h1>``.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from cristal.knowledge.parse.builder import DocumentBuilder, collapse_spaces, list_item
from cristal.knowledge.parse.decoding import decode_text, html_declared_charset
from cristal.knowledge.parse.document import DEFAULT_LIMITS, DocumentLimits, ParsedDocument

try:  # lxml is several times faster; html.parser is the stdlib fallback
    import lxml  # noqa: F401

    _PARSER = "lxml"
except ImportError:  # pragma: no cover - depends on the installation
    _PARSER = "html.parser"

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_LISTS = {"ul", "ol", "menu"}
_SKIP = {
    "head", "title", "script", "style", "noscript", "template", "nav", "aside", "iframe", "svg", "math",
    "canvas", "button", "select", "textarea", "input", "object", "embed", "audio", "video", "map", "img",
}
_SKIP_ROLES = {"navigation", "search", "complementary", "menu", "menubar", "banner", "contentinfo"}
_BLOCKS = {
    "p", "div", "section", "article", "main", "body", "html", "figure", "figcaption", "address", "details",
    "summary", "center", "li", "dl", "dt", "dd", "header", "footer", "fieldset", "legend", "form", "caption",
    "table", "thead", "tbody", "tfoot", "tr", "td", "th", "hgroup", "search", "dialog",
}
_WHITESPACE = re.compile(r"\s+")


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    builder = DocumentBuilder(limits)
    title = render_html(builder, decode_text(data, html_declared_charset(data)))
    return builder.build(filename=filename, title=title)


def render_html(builder: DocumentBuilder, markup: str) -> str | None:
    """Add the blocks of an HTML page to ``builder``; returns its title, if any."""
    soup = BeautifulSoup(markup, _PARSER)
    title = soup.title.get_text() if soup.title else ""
    if not title.strip():
        h1 = soup.find("h1")
        title = h1.get_text(" ") if h1 else ""
    _Walker(builder).walk_block(soup.body or soup)
    return collapse_spaces(title) or None


def html_fragment_text(markup: str) -> str:
    """The visible text of an HTML fragment, one line per block."""
    return _text(BeautifulSoup(markup, _PARSER))


def _skipped(tag: Tag) -> bool:
    name = tag.name
    if name in _SKIP:
        return True
    if name in ("header", "footer"):
        return tag.find_parent(("article", "main")) is None
    attrs = tag.attrs
    if not attrs:
        return False
    return (
        "hidden" in attrs
        or attrs.get("aria-hidden") == "true"
        or attrs.get("role") in _SKIP_ROLES
        or "display:none" in str(attrs.get("style", "")).replace(" ", "")  # a single-valued attribute: a str
    )


def _is_layout_table(table: Tag) -> bool:
    return table.find(("table", "h1", "h2", "h3", "h4", "h5", "h6")) is not None


class _Walker:
    """Turns the element tree into blocks; loose inline text collects into a paragraph."""

    def __init__(self, builder: DocumentBuilder) -> None:
        self._builder = builder
        self._inline: list[str] = []

    def walk_block(self, node: Tag) -> None:
        self._flush()
        self._walk(node)
        self._flush()

    def _walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    self._inline.append(_WHITESPACE.sub(" ", child))
                continue
            if not isinstance(child, Tag) or _skipped(child):
                continue
            name = child.name
            if name in _HEADINGS:
                self._flush()
                self._builder.heading(_text(child), int(name[1]))
            elif name in _LISTS:
                self._flush()
                self._builder.add("list", _list_text(child, 0))
            elif name == "table" and not _is_layout_table(child):
                self._flush()
                self._builder.table(_table_rows(child))
            elif name == "pre":
                self._flush()
                self._builder.add("code", child.get_text())
            elif name == "blockquote":
                self._flush()
                self._builder.add("quote", _text(child))
            elif name == "br":
                self._inline.append("\n")
            elif name == "hr":
                self._flush()
            elif name in _BLOCKS:
                self.walk_block(child)
            else:
                self._walk(child)  # inline element: its text joins the current paragraph

    def _flush(self) -> None:
        if self._inline:
            self._builder.add("paragraph", _lines("".join(self._inline)))
            self._inline = []


def _collect(node: Tag, out: list[str], nested: list[Tag] | None) -> None:
    """Visible text under ``node``; block boundaries and ``<br>`` become newlines.

    With ``nested`` given, lists are not descended into but handed back there
    (a list item's own text, then its sub-lists).
    """
    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, PreformattedString):
                out.append(_WHITESPACE.sub(" ", child))
            continue
        if not isinstance(child, Tag) or _skipped(child):
            continue
        name = child.name
        if name == "br":
            out.append("\n")
        elif nested is not None and name in _LISTS:
            nested.append(child)
        elif name in _BLOCKS or name in _HEADINGS or name in _LISTS or name in ("pre", "blockquote", "hr"):
            out.append("\n")
            _collect(child, out, nested)
            out.append("\n")
        else:
            _collect(child, out, nested)


def _lines(raw: str) -> str:
    return "\n".join(line for line in (collapse_spaces(part) for part in raw.split("\n")) if line)


def _text(node: Tag) -> str:
    out: list[str] = []
    _collect(node, out, None)
    return _lines("".join(out))


def _list_text(list_tag: Tag, depth: int) -> str:
    ordered = list_tag.name == "ol"
    try:
        number = int(str(list_tag.get("start", "1")))
    except (TypeError, ValueError):
        number = 1
    items: list[str] = []
    for li in list_tag.find_all("li", recursive=False):
        if _skipped(li):
            continue
        out: list[str] = []
        nested: list[Tag] = []
        _collect(li, out, nested)
        own = _lines("".join(out))
        if own:
            items.append(list_item(f"{number}." if ordered else "-", own, depth))
            number += 1
        items.extend(text for text in (_list_text(sub, depth + 1) for sub in nested) if text)
    return "\n".join(items)


def _table_rows(table: Tag) -> list[list[str]]:
    rows = []
    for tr in table.find_all("tr"):
        cells = [_text(cell).replace("\n", " ") for cell in tr.find_all(("td", "th"), recursive=False)]
        rows.append(cells)
    return rows
