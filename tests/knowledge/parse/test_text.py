"""Plain text: paragraphs, encodings, and refusal of binary content."""

from __future__ import annotations

import pytest

from cristal.knowledge.parse import ParseError, parse_bytes

GERMAN = ("Reisekosten\n\nDie Erstattung der Reisekosten für Mitarbeiter erfolgt über das Portal. "
          "Bitte beachten Sie die Frist von dreißig Tagen.\n")
JAPANESE = "出張旅費規程\n\n出張の旅費は、所定の申請書により精算する。領収書は三十日以内に提出してください。\n"


def test_paragraphs_title_and_language(parse) -> None:
    doc = parse(b"Travel policy\n\nEmployees may claim travel costs.\nReceipts are required.\n\n\n  \n"
                b"The policy is reviewed every year.\n", "policy.txt")
    assert doc.title == "Travel policy"
    assert doc.language == "en"
    assert [b.kind for b in doc.blocks] == ["paragraph", "paragraph", "paragraph"]
    assert doc.blocks[1].text == "Employees may claim travel costs.\nReceipts are required."
    assert all(b.page is None and b.heading_path == () for b in doc.blocks)


def test_title_falls_back_to_file_name(parse) -> None:
    doc = parse(b"Just one paragraph of notes about the quarterly planning meeting.", "notes-q3.txt")
    assert doc.title == "notes-q3"


def test_lists_and_quotes_are_recognised(parse) -> None:
    doc = parse(b"Agenda\n\n- budget\n- hiring\n\n> quoted reply\n> second line\n", "agenda.text")
    assert [b.kind for b in doc.blocks] == ["paragraph", "list", "quote"]


def test_crlf_and_cr_newlines_are_normalised(parse) -> None:
    doc = parse(b"First line\r\nsecond line\r\n\r\nThird\rfourth", "n.txt")
    assert doc.blocks[0].text == "First line\nsecond line"
    assert doc.blocks[1].text == "Third\nfourth"


@pytest.mark.parametrize(
    ("data", "language"),
    [
        (GERMAN.encode("utf-8"), "de"),
        (b"\xef\xbb\xbf" + GERMAN.encode("utf-8"), "de"),
        (GERMAN.encode("utf-16"), "de"),  # with BOM
        (GERMAN.encode("utf-16-be").join([b"\xfe\xff", b""]), "de"),
        (GERMAN.encode("cp1252"), "de"),
        (JAPANESE.encode("utf-8"), "ja"),
        (JAPANESE.encode("shift_jis"), "ja"),
        (JAPANESE.encode("cp932"), "ja"),
        (JAPANESE.encode("euc_jp"), "ja"),
        (JAPANESE.encode("utf-16"), "ja"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le-bom", "utf16-be-bom", "cp1252", "ja-utf8", "shift_jis", "cp932", "euc-jp", "ja-utf16"],
)
def test_encodings_decode_to_the_same_text(parse, data: bytes, language: str) -> None:
    doc = parse(data, "doc.txt")
    expected = GERMAN if language == "de" else JAPANESE
    assert doc.text == expected.strip()
    assert doc.language == language
    assert doc.title == expected.split("\n", 1)[0]


def test_cp1252_specials(parse) -> None:
    doc = parse("Preis: 12 € – „Angebot“ gültig".encode("cp1252"), "p.txt")
    assert doc.text == "Preis: 12 € – „Angebot“ gültig"


def test_binary_with_text_extension_is_refused() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
    with pytest.raises(ParseError, match="binary content in a text file"):
        parse_bytes(png, "image.txt")


def test_control_characters_without_nul_are_refused() -> None:
    data = bytes(b % 32 for b in range(1, 2000) if b % 32 not in (0, 9, 10, 13)) + b"some text"
    with pytest.raises(ParseError, match="binary content"):
        parse_bytes(data, "blob.txt")


def test_a_few_stray_control_characters_are_tolerated(parse) -> None:
    text = "A long enough line of ordinary text. " * 20 + "\x0c" + "More text after a form feed."
    doc = parse(text.encode(), "f.txt")
    assert "More text" in doc.text


def test_empty_whitespace_only_file_is_refused() -> None:
    with pytest.raises(ParseError, match="no text content"):
        parse_bytes(b"  \n\n\t \n", "blank.txt")


def test_first_line_of_a_header_block_is_the_title(parse) -> None:
    text = ("経費精算マニュアル（経理部内向け）\n青空ホールディングス株式会社　経理部\n\n"
            "1．目的\nこのマニュアルは経費の手順を定めるものです。\n")

    doc = parse(text.encode(), "keihi.txt")
    assert doc.title == "経費精算マニュアル（経理部内向け）"
    assert doc.language == "ja"
