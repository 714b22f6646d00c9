"""PDF: page numbers, paragraphs, titles, and every way a PDF can fail."""

from __future__ import annotations

import io

import pytest
from fpdf import FPDF
from pypdf import PdfWriter

from cristal.knowledge.parse import ParseError, parse_bytes

INTRO = (
    "Employees may claim the costs of business trips that were approved in advance by their manager. "
    "Travel should be booked through the company portal, and the cheapest reasonable option is expected "
    "unless a client meeting requires otherwise."
)


def _two_page_pdf(title: str | None = None) -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_author("Finance Team")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Travel Expense Policy", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, INTRO)
    pdf.ln(4)
    pdf.multi_cell(0, 6, "Receipts must be submitted within thirty days of the trip. The information is reviewed by finance.")
    pdf.ln(4)
    for item in ("- Hotels up to 150 EUR per night", "- Meals up to 30 EUR per day"):
        pdf.cell(0, 6, item, new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.multi_cell(0, 6, "The second page explains per diem allowances for trips abroad, which depend on the country visited.")
    pdf.set_auto_page_break(False)
    pdf.set_y(-20)
    pdf.cell(0, 6, "2", align="C")
    return bytes(pdf.output())


def test_pages_paragraphs_and_title(parse) -> None:
    doc = parse(_two_page_pdf(), "policy.pdf")
    assert doc.title == "Travel Expense Policy"  # first line: fpdf2 writes no title
    assert doc.language == "en"
    assert doc.metadata["pages"] == "2"
    assert doc.metadata["author"] == "Finance Team"
    assert [(b.kind, b.page) for b in doc.blocks] == [
        ("paragraph", 1),
        ("paragraph", 1),
        ("paragraph", 1),
        ("list", 1),
        ("paragraph", 2),
    ]
    assert doc.blocks[0].text == "Travel Expense Policy"
    assert doc.blocks[1].text == INTRO
    assert doc.blocks[3].text == "- Hotels up to 150 EUR per night\n- Meals up to 30 EUR per day"
    assert not doc.text.endswith("2")  # the running page number is dropped


def test_title_from_document_info(parse) -> None:
    doc = parse(_two_page_pdf(title="Reiserichtlinie 2024"), "policy.pdf")
    assert doc.title == "Reiserichtlinie 2024"


def test_permissions_only_encryption_is_readable(parse) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(_two_page_pdf()))
    writer.encrypt(user_password="", owner_password="owner-secret")
    out = io.BytesIO()
    writer.write(out)
    doc = parse(out.getvalue(), "restricted.pdf")
    assert doc.blocks[-1].page == 2


def test_encrypted_pdf_is_refused() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(_two_page_pdf()))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ParseError, match=r"^encrypted PDF"):
        parse_bytes(out.getvalue(), "secret.pdf")


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.9])
def test_truncated_pdf_is_refused(cut: float) -> None:
    data = _two_page_pdf()
    with pytest.raises(ParseError, match=r"corrupt PDF|no extractable text"):
        parse_bytes(data[: int(len(data) * cut)], "truncated.pdf")


def test_garbage_with_pdf_header_is_refused() -> None:
    with pytest.raises(ParseError, match="corrupt PDF"):
        parse_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8, "garbage.pdf")


def test_not_a_pdf_is_refused() -> None:
    with pytest.raises(ParseError, match="not a PDF"):
        parse_bytes(b"hello, I am text", "fake.pdf")


def test_pdf_without_text_layer_is_refused() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(40, 40, 40)
    pdf.rect(20, 20, 100, 60, style="F")  # a "scan": graphics only
    pdf.add_page()
    with pytest.raises(ParseError, match=r"no extractable text \(scanned PDF\?\)"):
        parse_bytes(bytes(pdf.output()), "scan.pdf")


def test_german_pdf_with_latin1_core_font(parse) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "Die Mitarbeiter müssen die Belege für Übernachtungen innerhalb von dreißig Tagen einreichen.")
    doc = parse(bytes(pdf.output()), "belege.pdf")
    assert doc.language == "de"
    assert "dreißig" in doc.text and "Übernachtungen" in doc.text
