"""E-mail: headers, body part choice, attachments, Japanese charsets."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from cristal.knowledge.parse import ParseError, parse_bytes


def _multipart() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@acme.example>"
    msg["To"] = "finance@acme.example"
    msg["Subject"] = "Q3 budget review"
    msg["Date"] = "Tue, 01 Oct 2024 09:30:00 +0000"
    msg.set_content("Hi team,\n\nThe budget review is on Friday.\nPlease bring the numbers.\n\n> Earlier: can we move it?\n")
    msg.add_alternative("<html><body><p>Hi team,</p><p>HTML version of the mail.</p></body></html>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="budget-q3.pdf")
    return msg.as_bytes()


def test_multipart_prefers_plain_text_and_lists_attachments(parse) -> None:
    doc = parse(_multipart(), "mail.eml")
    assert doc.title == "Q3 budget review"
    assert doc.language == "en"
    assert doc.metadata["from"] == "Alice Example <alice@acme.example>"
    assert doc.metadata["to"] == "finance@acme.example"
    assert doc.metadata["subject"] == "Q3 budget review"
    assert doc.metadata["date"].startswith("Tue, 01 Oct 2024")
    assert doc.metadata["attachments"] == "budget-q3.pdf"
    assert [b.kind for b in doc.blocks] == ["header", "paragraph", "paragraph", "quote"]
    assert doc.blocks[0].text.splitlines()[0] == "From: Alice Example <alice@acme.example>"
    assert "HTML version" not in doc.text and "PDF-1.4" not in doc.text


def test_html_only_mail_uses_the_html_parser(parse) -> None:
    msg = EmailMessage()
    msg["Subject"] = "Newsletter"
    msg["From"] = "news@acme.example"
    msg.set_content("<html><head><style>p{}</style></head><body><h1>News</h1><p>The new office opens in May.</p></body></html>",
                    subtype="html")
    doc = parse(msg.as_bytes(), "news.eml")
    assert [(b.kind, b.text) for b in doc.blocks][1:] == [("heading", "News"), ("paragraph", "The new office opens in May.")]
    assert doc.blocks[2].heading_path == ("News",)


@pytest.mark.parametrize("charset", ["shift_jis", "iso-2022-jp"])
def test_japanese_mail(parse, charset: str) -> None:
    body = "皆様\n\nお疲れ様です。明日の会議は十時から第一会議室で行います。\n"
    msg = EmailMessage()
    msg["Subject"] = "会議のお知らせ"
    msg["From"] = "田中 <tanaka@acme.example>"
    msg["To"] = "all@acme.example"
    msg.set_content(body, charset=charset)
    raw = msg.as_bytes()
    assert charset.encode() in raw.lower() and "会議".encode() not in raw
    doc = parse(raw, "kaigi.eml")
    assert doc.title == "会議のお知らせ"
    assert doc.language == "ja"  # the English header block does not vote
    assert doc.blocks[-1].text == "お疲れ様です。明日の会議は十時から第一会議室で行います。"
    assert doc.metadata["from"] == "田中 <tanaka@acme.example>"


def test_undeclared_shift_jis_8bit_body(parse) -> None:
    raw = b"Subject: =?shift_jis?B?" + base64.b64encode("報告".encode("shift_jis")) + b"?=\r\n" \
        b"From: a@acme.example\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" \
        + "今週の売上は予定どおりです。".encode("shift_jis")
    doc = parse(raw, "report.eml")
    assert doc.title == "報告"
    assert doc.blocks[-1].text == "今週の売上は予定どおりです。"


def test_mail_without_body_keeps_the_headers(parse) -> None:
    msg = EmailMessage()
    msg["Subject"] = "Scan"
    msg["From"] = "scanner@acme.example"
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="scan.png")
    doc = parse(msg.as_bytes(), "scan.eml")
    assert [b.kind for b in doc.blocks] == ["header"]
    assert doc.metadata["attachments"] == "scan.png"


def test_not_an_email_is_refused() -> None:
    with pytest.raises(ParseError, match="not an e-mail"):
        parse_bytes(b"just some words without any header lines\n", "x.eml")


def test_binary_body_is_refused() -> None:
    raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\n" + bytes(range(1, 32)) * 50
    with pytest.raises(ParseError, match="binary content"):
        parse_bytes(raw, "x.eml")
