"""The entry points: dispatch by extension, size limits, and "only ParseError escapes"."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cristal.knowledge.parse import SUPPORTED_EXTENSIONS, ParseError, parse_bytes, parse_file


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == frozenset(
        {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf", ".docx", ".eml"}
    )


def test_extension_is_case_insensitive(parse) -> None:
    assert parse(b"<p>Hello there, this is the page.</p>", "PAGE.HTM").text == "Hello there, this is the page."


@pytest.mark.parametrize("name", ["archive.zip", "picture.png", "README", "sheet.xlsx"])
def test_unsupported_extension(name: str) -> None:
    with pytest.raises(ParseError, match=r"^unsupported file type"):
        parse_bytes(b"data", name)


@pytest.mark.parametrize("ext", sorted(SUPPORTED_EXTENSIONS))
def test_empty_file(ext: str) -> None:
    with pytest.raises(ParseError, match=r"^empty file$"):
        parse_bytes(b"", "empty" + ext)


def test_oversize_file() -> None:
    with pytest.raises(ParseError, match=r"^file too large: 2\.9 KB > 1000 B limit$"):
        parse_bytes(b"x" * 3000, "big.txt", max_bytes=1000)


def test_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nSome text.\n", encoding="utf-8")
    doc = parse_file(path)
    assert doc.title == "Notes"
    with pytest.raises(ParseError, match=r"^file too large"):
        parse_file(path, max_bytes=5)
    with pytest.raises(ParseError, match=r"^cannot read file"):
        parse_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match=r"^empty file$"):
        parse_file(empty)


def test_error_messages_are_one_line() -> None:
    for data, name in [(b"%PDF-1.4\n" + b"\xff" * 100, "a.pdf"), (b"PK\x03\x04broken", "a.docx"), (b"\x00\x01", "a.md")]:
        with pytest.raises(ParseError) as info:
            parse_bytes(data, name)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("ext", sorted(SUPPORTED_EXTENSIONS))
def test_random_bytes_raise_only_parse_error(ext: str) -> None:
    rng = random.Random(ext)
    prefixes = {".pdf": b"%PDF-1.5\n", ".docx": b"PK\x03\x04", ".eml": b"Subject: x\r\n\r\n"}
    for size in (1, 7, 100, 5000):
        data = prefixes.get(ext, b"") + bytes(rng.randrange(256) for _ in range(size))
        try:
            parse_bytes(data, "fuzz" + ext)
        except ParseError:
            pass
