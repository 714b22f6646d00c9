"""Markdown: headings and their paths, lists, tables, code, quotes, front matter."""

from __future__ import annotations

SOURCE = """---
title: ignored front matter
tags: [a, b]
---
# Employee Handbook

Welcome to **Acme**. Read the [policies](https://intra.example/policies) first.

## Travel

### Booking

Book trains and flights through the portal.

- economy class for trips under *six* hours
- hotels up to 150 EUR
  - Munich: 180 EUR
- taxis only at night

1. open the portal
2. submit receipts

| Item | Limit |
|------|------:|
| Hotel | 150 EUR |
| Meal | 30 EUR |

```python
def limit(city):
    return 150
```

> Exceptions need approval
> by your manager.

## Leave

Thirty days per year.
"""


def test_structure(parse) -> None:
    doc = parse(SOURCE.encode(), "handbook.md")
    assert doc.title == "Employee Handbook"
    assert doc.language == "en"
    assert "front matter" not in doc.text
    kinds = [(b.kind, b.heading_path) for b in doc.blocks]
    hb, travel, booking = "Employee Handbook", "Travel", "Booking"
    assert kinds == [
        ("heading", ()),
        ("paragraph", (hb,)),
        ("heading", (hb,)),
        ("heading", (hb, travel)),
        ("paragraph", (hb, travel, booking)),
        ("list", (hb, travel, booking)),
        ("list", (hb, travel, booking)),
        ("table", (hb, travel, booking)),
        ("code", (hb, travel, booking)),
        ("quote", (hb, travel, booking)),
        ("heading", (hb,)),
        ("paragraph", (hb, "Leave")),
    ]


def test_inline_markup_becomes_plain_text(parse) -> None:
    doc = parse(SOURCE.encode(), "handbook.md")
    assert doc.blocks[1].text == "Welcome to Acme. Read the policies first."
    assert doc.blocks[5].text == (
        "- economy class for trips under six hours\n- hotels up to 150 EUR\n  - Munich: 180 EUR\n- taxis only at night"
    )
    assert doc.blocks[6].text == "1. open the portal\n2. submit receipts"
    assert doc.blocks[7].text == "Item | Limit\nHotel | 150 EUR\nMeal | 30 EUR"
    assert doc.blocks[8].text == "def limit(city):\n    return 150"
    assert doc.blocks[9].text == "Exceptions need approval by your manager."


def test_title_falls_back_to_file_name(parse) -> None:
    doc = parse("Nur ein Absatz über die Urlaubsregelung und die Fristen.".encode(), "urlaub.markdown")
    assert doc.title == "urlaub"
    assert doc.language == "de"


def test_html_blocks_are_reduced_to_text(parse) -> None:
    doc = parse(b"# T\n\n<div class='x'><p>Inside <b>html</b></p></div>\n\n<!-- a comment -->\n", "h.md")
    assert [b.text for b in doc.blocks] == ["T", "Inside html"]


def test_japanese_markdown(parse) -> None:
    doc = parse("# 就業規則\n\n## 休暇\n\n年次有給休暇は二十日とする。\n".encode("shift_jis"), "kisoku.md")
    assert doc.title == "就業規則"
    assert doc.language == "ja"
    assert doc.blocks[-1].heading_path == ("就業規則", "休暇")
