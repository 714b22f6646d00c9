"""Personal data redaction."""

from cristal.knowledge.parse.document import Block, ParsedDocument
from cristal.knowledge.pii import redact_document, redact_text


def test_redacts_checked_patterns() -> None:
    text = ("Mail anna.schmidt@aozora-de.example or call +49 89 1234 5678 / 03-1234-5678. "
            "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.")
    found: dict[str, int] = {}
    out = redact_text(text, found)
    assert "anna.schmidt" not in out and "4111" not in out and "DE89" not in out and "5678" not in out
    assert found == {"EMAIL": 1, "PHONE": 2, "CARD": 1, "IBAN": 1}


def test_leaves_numbers_that_are_not_personal_data() -> None:
    text = "Budget 2025-10-01: 1.250.000 EUR, order 4111 1111 1111 1112, invoice 20251001."
    assert redact_text(text) == text


def test_document_offsets_stay_exact() -> None:
    a, b = "Contact: bob@example.com", "Second paragraph, no data."
    text = f"{a}\n\n{b}"
    doc = ParsedDocument("t", text, [Block("paragraph", a, 0, len(a)), Block("paragraph", b, len(a) + 2, len(text))], "en")
    red = redact_document(doc)
    assert red.text == "Contact: [EMAIL]\n\nSecond paragraph, no data."
    for block in red.blocks:
        assert red.text[block.start:block.end] == block.text
    assert red.metadata["redacted"] == "email: 1"
