"""Chunking keeps structure and exact spans."""

from cristal.knowledge.chunk import chunk_document
from cristal.knowledge.parse.document import Block, ParsedDocument


def make(blocks: list[tuple[str, str, tuple[str, ...], int | None]], lang: str = "en") -> ParsedDocument:
    text, out = "", []
    for kind, body, path, page in blocks:
        if text:
            text += "\n\n"
        out.append(Block(kind, body, len(text), len(text) + len(body), path, page))  # type: ignore[arg-type]  # kinds come as plain strings
        text += body
    return ParsedDocument("Doc", text, out, lang)


def test_headings_open_chunks_and_spans_are_exact() -> None:
    doc = make([
        ("heading", "Travel", (), 1), ("paragraph", "Hotels up to 150 EUR.", ("Travel",), 1),
        ("heading", "Meals", (), 2), ("paragraph", "Per diem 28 EUR.", ("Meals",), 2),
    ])
    chunks = chunk_document(doc)
    assert [c.heading for c in chunks] == ["Travel", "Meals"]
    assert [c.page for c in chunks] == [1, 2]
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text


def test_long_paragraphs_split_at_sentences_and_stay_bounded() -> None:
    sentence = "This sentence is about travel policy rules. "
    doc = make([("paragraph", (sentence * 100).strip(), (), None)])
    chunks = chunk_document(doc, target_chars=300)
    assert len(chunks) > 5
    assert all(len(c.text) <= 600 for c in chunks)
    assert "".join(doc.text[c.start:c.end] for c in chunks).replace(" ", "") == doc.text.replace(" ", "")


def test_japanese_chunks_are_smaller() -> None:
    doc = make([("paragraph", "出張旅費は翌月五日までに精算してください。" * 60, (), None)], lang="ja")
    assert all(len(c.text) <= 800 for c in chunk_document(doc))
