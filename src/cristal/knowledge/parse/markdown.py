"""Markdown (.md, .markdown) via markdown-it-py's token stream (CommonMark + tables).

Inline markup is rendered to plain text (emphasis markers and link targets
go, link and image text stays). Lists keep their markers and nesting, block
quotes and code keep their kind, tables become " | " rows. YAML/TOML front
matter is skipped. The title is the first heading, else the file name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from cristal.knowledge.parse.builder import DocumentBuilder, list_item, render_table
from cristal.knowledge.parse.decoding import decode_text
from cristal.knowledge.parse.document import DEFAULT_LIMITS, BlockKind, DocumentLimits, ParsedDocument
from cristal.knowledge.parse.html import html_fragment_text

_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n.*?\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)

# One parser instance: building it compiles the rule chains, which costs more
# than parsing a typical document. (Raw HTML is kept as tokens and reduced to
# text by our HTML code, never rendered.)
_MD = MarkdownIt("commonmark").enable("table")


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    source = _FRONT_MATTER.sub("", decode_text(data), count=1)
    tokens = _MD.parse(source)
    builder = DocumentBuilder(limits)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        end = _close_index(tokens, i)
        if token.type == "heading_open":
            builder.heading(_inline_text(tokens[i + 1]), int(token.tag[1:]))
        elif token.type == "blockquote_open":
            builder.add("quote", _render(tokens[i + 1 : end]))
        else:
            kind, text = _block(tokens[i : end + 1])
            if kind:
                builder.add(kind, text)
        i = end + 1
    return builder.build(filename=filename)


def _close_index(tokens: Sequence[Token], i: int) -> int:
    """Index of the token that closes ``tokens[i]`` (itself when it does not open)."""
    if tokens[i].nesting != 1:
        return i
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _block(tokens: Sequence[Token]) -> tuple[BlockKind | None, str]:
    """(kind, text) of one top-level block given as its tokens, open to close."""
    token = tokens[0]
    if token.type == "paragraph_open":
        return "paragraph", _inline_text(tokens[1])
    if token.type in ("bullet_list_open", "ordered_list_open"):
        return "list", _render_list(tokens, 0)
    if token.type in ("fence", "code_block"):
        return "code", token.content
    if token.type == "table_open":
        return "table", _render_table(tokens)
    if token.type == "html_block":
        return "paragraph", html_fragment_text(token.content)
    if token.type == "heading_open":
        return "paragraph", _inline_text(tokens[1])  # only reached inside containers
    return None, ""  # hr and anything unknown carry no text


def _render(tokens: Sequence[Token], depth: int = 0) -> str:
    """The blocks inside a list item or block quote as plain lines."""
    lines: list[str] = []
    i = 0
    while i < len(tokens):
        end = _close_index(tokens, i)
        token = tokens[i]
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lines.append(_render_list(tokens[i : end + 1], depth))
        elif token.type == "blockquote_open":
            lines.append(_render(tokens[i + 1 : end], depth))
        else:
            _, text = _block(tokens[i : end + 1])
            if text.strip():
                lines.append(text.rstrip("\n"))
        i = end + 1
    return "\n".join(lines)


def _render_list(tokens: Sequence[Token], depth: int) -> str:
    ordered = tokens[0].type == "ordered_list_open"
    number = int(tokens[0].attrGet("start") or 1) if ordered else 0
    items: list[str] = []
    i = 1
    while i < len(tokens) - 1:
        end = _close_index(tokens, i)
        if tokens[i].type == "list_item_open":
            marker = f"{number}." if ordered else "-"
            body, nested = _split_nested(tokens[i + 1 : end], depth)
            item = list_item(marker, body or "", depth)
            items.append(item + ("\n" + nested if nested else ""))
            number += 1
        i = end + 1
    return "\n".join(items)


def _split_nested(tokens: Sequence[Token], depth: int) -> tuple[str, str]:
    """An item's own text, and its nested lists rendered one level deeper."""
    own: list[Token] = []
    nested: list[str] = []
    i = 0
    while i < len(tokens):
        end = _close_index(tokens, i)
        if tokens[i].type in ("bullet_list_open", "ordered_list_open"):
            nested.append(_render_list(tokens[i : end + 1], depth + 1))
        else:
            own.extend(tokens[i : end + 1])
        i = end + 1
    return _render(own, depth), "\n".join(nested)


def _render_table(tokens: Sequence[Token]) -> str:
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_inline_text(token))
    return render_table(rows)


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child))  # alt text lives in the children
        elif child.type == "html_inline" and child.content.lower().startswith("<br"):
            parts.append("\n")
    return "".join(parts)
