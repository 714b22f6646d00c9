"""Word: headings by style, lists, quotes, tables, core properties, corrupt files."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest

from cristal.knowledge.parse import ParseError, parse_bytes


def _save(document: docx.document.Document) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _handbook() -> bytes:
    d = docx.Document()
    d.core_properties.author = "HR"
    d.add_paragraph("Mitarbeiterhandbuch", style="Title")
    d.add_paragraph("Dieses Handbuch gilt für alle Mitarbeiter der Acme GmbH.")
    d.add_heading("Arbeitszeit", level=1)
    d.add_paragraph("Die Kernarbeitszeit ist von 10 bis 15 Uhr.")
    d.add_heading("Gleitzeit", level=2)
    d.add_paragraph("Gleitzeit wird über das Portal erfasst.", style="List Bullet")
    d.add_paragraph("Überstunden müssen genehmigt werden.", style="List Bullet")
    d.add_paragraph("Erster Schritt", style="List Number")
    d.add_paragraph("Zweiter Schritt", style="List Number")
    d.add_paragraph("Pünktlichkeit ist eine Tugend.", style="Quote")
    table = d.add_table(rows=3, cols=2)
    for row, cells in zip(table.rows, [("Tag", "Stunden"), ("Montag", "8"), ("Freitag", "6")], strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    d.add_heading("Urlaub", level=1)
    d.add_paragraph("")  # empty paragraphs are skipped
    d.add_paragraph("Der Urlaubsanspruch beträgt 30 Tage.")
    return _save(d)


def test_structure(parse) -> None:
    doc = parse(_handbook(), "handbuch.docx")
    assert doc.title == "Mitarbeiterhandbuch"
    assert doc.language == "de"
    assert doc.metadata["author"] == "HR"
    t, a, g = "Mitarbeiterhandbuch", "Arbeitszeit", "Gleitzeit"
    assert [(b.kind, b.heading_path) for b in doc.blocks] == [
        ("heading", ()),
        ("paragraph", (t,)),
        ("heading", (t,)),
        ("paragraph", (t, a)),
        ("heading", (t, a)),
        ("list", (t, a, g)),
        ("quote", (t, a, g)),
        ("table", (t, a, g)),
        ("heading", (t,)),
        ("paragraph", (t, "Urlaub")),
    ]
    by_kind = {b.kind: b.text for b in doc.blocks}
    assert by_kind["list"] == (
        "- Gleitzeit wird über das Portal erfasst.\n- Überstunden müssen genehmigt werden.\n"
        "1. Erster Schritt\n2. Zweiter Schritt"
    )
    assert by_kind["table"] == "Tag | Stunden\nMontag | 8\nFreitag | 6"


def test_title_from_core_properties_and_merged_cells(parse) -> None:
    d = docx.Document()
    d.core_properties.title = "Quarterly Report"
    d.add_paragraph("Revenue grew in all regions during the quarter.")
    table = d.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Summary"
    for cell, value in zip(table.rows[1].cells, ("EMEA", "APAC", "US"), strict=True):
        cell.text = value
    doc = parse(_save(d), "q3.docx")
    assert doc.title == "Quarterly Report"
    assert doc.blocks[-1].text == "Summary\nEMEA | APAC | US"


def test_title_falls_back_to_file_name(parse) -> None:
    d = docx.Document()
    d.add_paragraph("The meeting started at ten and covered the hiring plan.")
    assert parse(_save(d), "minutes-2024-03.docx").title == "minutes-2024-03"


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(ParseError, match=r"corrupt DOCX \(not a zip archive\)"):
        parse_bytes(b"This is not a zip file at all" * 10, "bad.docx")


def test_truncated_docx_is_refused() -> None:
    data = _handbook()
    with pytest.raises(ParseError, match="corrupt DOCX"):
        parse_bytes(data[: len(data) // 2], "truncated.docx")


def test_zip_without_word_document_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ParseError, match=r"no word/document\.xml"):
        parse_bytes(out.getvalue(), "other.docx")


def test_broken_xml_inside_is_refused() -> None:
    source = zipfile.ZipFile(io.BytesIO(_handbook()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            content = source.read(info)
            archive.writestr(info, b"<w:document><unclosed" if info.filename == "word/document.xml" else content)
    with pytest.raises(ParseError, match="corrupt DOCX"):
        parse_bytes(out.getvalue(), "broken.docx")


def test_legacy_doc_is_refused() -> None:
    with pytest.raises(ParseError, match="legacy Word"):
        parse_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "old.docx")
