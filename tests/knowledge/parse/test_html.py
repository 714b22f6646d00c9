"""HTML: boilerplate removal, structure, title, declared charsets."""

from __future__ import annotations

import pytest

from cristal.knowledge.parse import ParseError, parse_bytes

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Expense Policy | Acme Intranet</title>
<style>body { color: red }</style><script>var tracking = "do not index";</script></head>
<body>
<header><a href="/">Acme</a> <nav><a href="/a">Home</a> <a href="/b">Teams</a></nav></header>
<nav class="side"><ul><li>Menu item</li></ul></nav>
<main>
  <article>
    <h1>Expense   Policy</h1>
    <p>All expenses need a <b>receipt</b>.<br>Submit them monthly.</p>
    <h2>Limits</h2>
    <table>
      <tr><th>Item</th><th>Limit</th></tr>
      <tr><td>Hotel</td><td>150 EUR</td></tr>
    </table>
    <ul><li>Meals<ul><li>Lunch</li></ul></li><li>Taxis</li></ul>
    <ol start="3"><li>third</li><li>fourth</li></ol>
    <pre>total = sum(items)
  print(total)</pre>
    <blockquote><p>Approval is needed above 500 EUR.</p></blockquote>
    <div>Loose text in a div <span>with a span</span></div>
    <div hidden>hidden text</div>
    <script>document.write("injected")</script>
  </article>
</main>
<aside>Related links</aside>
<footer>Copyright Acme</footer>
</body></html>"""


def test_structure_and_boilerplate(parse) -> None:
    doc = parse(PAGE.encode(), "expenses.html")
    assert doc.title == "Expense Policy | Acme Intranet"
    assert doc.language == "en"
    for noise in ("tracking", "Home", "Menu item", "Related links", "Copyright", "hidden text", "injected", "color"):
        assert noise not in doc.text
    got = [(b.kind, b.text, b.heading_path) for b in doc.blocks]
    ep = "Expense Policy"
    assert got == [
        ("heading", "Expense Policy", ()),
        ("paragraph", "All expenses need a receipt.\nSubmit them monthly.", (ep,)),
        ("heading", "Limits", (ep,)),
        ("table", "Item | Limit\nHotel | 150 EUR", (ep, "Limits")),
        ("list", "- Meals\n  - Lunch\n- Taxis", (ep, "Limits")),
        ("list", "3. third\n4. fourth", (ep, "Limits")),
        ("code", "total = sum(items)\n  print(total)", (ep, "Limits")),
        ("quote", "Approval is needed above 500 EUR.", (ep, "Limits")),
        ("paragraph", "Loose text in a div with a span", (ep, "Limits")),
    ]


def test_title_from_first_h1_without_title_tag(parse) -> None:
    doc = parse(b"<html><body><h2>Intro</h2><h1>Real Title</h1><p>Text here.</p></body></html>", "p.htm")
    assert doc.title == "Real Title"


def test_declared_shift_jis_charset(parse) -> None:
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>' \
           "<body><h1>お知らせ</h1><p>明日は全社会議があります。</p></body></html>"
    doc = parse(page.encode("shift_jis"), "oshirase.html")
    assert doc.title == "お知らせ"
    assert doc.language == "ja"
    assert doc.blocks[1].text == "明日は全社会議があります。"


def test_declared_latin1_is_read_as_windows_1252(parse) -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Kosten für Übernachtung: 120 € pro Nacht.</p></body></html>'
    doc = parse(page.encode("cp1252"), "kosten.html")
    assert doc.text == "Kosten für Übernachtung: 120 € pro Nacht."
    assert doc.language == "de"


def test_page_with_only_boilerplate_has_no_text() -> None:
    with pytest.raises(ParseError, match="no text content"):
        parse_bytes(b"<html><body><nav>Home</nav><script>x()</script></body></html>", "empty.html")
