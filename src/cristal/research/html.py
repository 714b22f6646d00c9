"""A standalone HTML page for a report: no scripts, no external resources.

Each [n] is a link to its source entry and shows the quoted passage on hover
or focus (pure CSS). Every piece of text is escaped: documents are untrusted.
"""

from __future__ import annotations

import html
import re
from typing import Any

_CITE = re.compile(r"\[(\d+)\]")

_CSS = """
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans JP",sans-serif;
  max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:1.8rem;border-bottom:1px solid #dde2ea}
blockquote{margin:.6rem 0;padding:.4rem .8rem;border-left:4px solid #e0a400;background:#fff8e6}
.meta{color:#5b6475;font-size:.9rem}
a.cite{position:relative;text-decoration:none;color:#0b57d0;font-size:.85em;vertical-align:super}
a.cite .q{display:none;position:absolute;left:0;top:1.4em;z-index:9;width:24rem;max-width:80vw;padding:.5rem .7rem;
  background:#fff;border:1px solid #c5ccd8;border-radius:6px;box-shadow:0 4px 14px rgba(0,0,0,.15);color:#1d2330;
  font-size:.85rem;line-height:1.4;vertical-align:baseline;white-space:normal}
a.cite:hover .q,a.cite:focus .q{display:block}
ol.sources li{margin:.5rem 0}ol.sources li:target{background:#eef4ff}
ol.sources q{display:block;margin-top:.2rem;color:#3b4454}
code{background:#f1f3f7;padding:0 .25rem;border-radius:3px}
"""


def _inline(text: str, quotes: dict[int, str]) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"(?<![\w*])_(.+?)_(?![\w*])", r"<em>\1</em>", escaped)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)

    def cite(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in quotes:
            return m.group()
        q = html.escape(" ".join(quotes[n].split()))
        return f'<a class="cite" href="#cite-{n}" title="{q}">[{n}]<span class="q">{q}</span></a>'

    return _CITE.sub(cite, escaped)


def render_html(result: dict[str, Any]) -> str:
    """The report of ``result`` (the JSON shape of a research run) as one HTML page."""
    quotes = {c["n"]: c["quote"] for c in result.get("citations", [])}
    lang = result.get("lang") or "en"
    body: list[str] = []
    in_list = False
    # The Markdown's own "Sources" section is replaced by a richer list below.
    markdown = result.get("report", "")
    sources_heading = re.search(r"^## [^\n]+\n\n(?:\[\d+\] [^\n]*\n?)+\Z", markdown, re.MULTILINE)
    sources_title = "Sources"
    if sources_heading:
        sources_title = sources_heading.group().splitlines()[0][3:]
        markdown = markdown[: sources_heading.start()]
    for line in markdown.splitlines():
        stripped = line.strip()
        if in_list and not stripped.startswith("- "):
            body.append("</ul>")
            in_list = False
        if not stripped:
            continue
        if stripped.startswith("#"):
            level = min(len(stripped) - len(stripped.lstrip("#")), 4)
            body.append(f"<h{level}>{_inline(stripped.lstrip('#').strip(), quotes)}</h{level}>")
        elif stripped.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(stripped[2:], quotes)}</li>")
        elif stripped.startswith(">"):
            body.append(f"<blockquote>{_inline(stripped.lstrip('>').strip(), quotes)}</blockquote>")
        else:
            body.append(f"<p>{_inline(stripped, quotes)}</p>")
    if in_list:
        body.append("</ul>")
    items = []
    for c in result.get("citations", []):
        items.append(
            f'<li id="cite-{int(c["n"])}" value="{int(c["n"])}"><strong>{html.escape(str(c.get("title") or c["uri"]))}</strong> '
            f'<span class="meta">{html.escape(str(c["uri"]))}</span><q>{html.escape(c["quote"])}</q></li>'
        )
    meta = (f'mode: {html.escape(str(result.get("mode")))} · status: {html.escape(str(result.get("status", "complete")))}'
            f' · run: {html.escape(str(result.get("run_id", "")))}')
    title = html.escape(str(result.get("question", "Research report"))[:200])
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f'\n<h2>{html.escape(sources_title)}</h2>\n<ol class="sources">\n' + "\n".join(items) + "\n</ol>\n"
        + f'<p class="meta">{meta}</p>\n</body>\n</html>\n'
    )
