"""Detecting and redacting personal data at ingestion (per source, ``--redact-pii``).

Found by pattern and checked where a checksum exists: e-mail addresses, phone
numbers (international ``+`` or national ``0`` prefix, 8–15 digits), payment
card numbers (Luhn) and IBANs (ISO 7064 mod 97). Redacted text replaces the
original everywhere (chunks, keyword index, embeddings, citations), so the
personal data never enters the index.

Person names become ``[NAME]`` in English and German text when the offline
name model is installed (see :mod:`cristal.knowledge.person_names`); it runs after the
patterns, once per document over all its blocks. It is never used for Japanese
documents: no offline name model for Japanese is good enough yet. When names
are not looked for, the document's metadata says so under ``names``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from cristal.knowledge import person_names
from cristal.knowledge.parse.document import Block, ParsedDocument

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}|0)[\d ().-]{6,20}\d(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(raw: str) -> bool:
    s = raw.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _sub_checked(pattern: re.Pattern[str], label: str, check: Callable[[str], bool], text: str, found: dict[str, int]) -> str:
    def repl(m: re.Match[str]) -> str:
        if not check(m.group()):
            return m.group()
        found[label] = found.get(label, 0) + 1
        return f"[{label}]"

    return pattern.sub(repl, text)


def _redact_patterns(text: str, found: dict[str, int]) -> str:
    text = _sub_checked(_EMAIL, "EMAIL", lambda s: True, text, found)
    text = _sub_checked(_IBAN, "IBAN", _iban_ok, text, found)
    text = _sub_checked(_CARD, "CARD", lambda s: _luhn(re.sub(r"\D", "", s)), text, found)
    text = _sub_checked(_PHONE, "PHONE", lambda s: 8 <= len(re.sub(r"\D", "", s)) <= 15, text, found)
    return text


def names_skipped(language: str) -> str | None:
    """Why person names are not looked for in text of ``language``, or ``None`` when they are."""
    if language == "ja":
        return "not detected (no name model for Japanese)"
    if not person_names.available():
        return "not detected (model not installed)"
    return None


def _redact_names(texts: list[str], language: str) -> tuple[list[str], list[int]]:
    """``texts`` (already pattern-redacted) with person names replaced by ``[NAME]`` in one model
    pass, and how many names each had."""
    model = person_names.name_model() if names_skipped(language) is None else None
    if model is None:
        return texts, [0] * len(texts)
    out: list[str] = []
    counts: list[int] = []
    for text, spans in zip(texts, model.find(texts), strict=True):
        for start, end in reversed(spans):
            text = f"{text[:start]}[NAME]{text[end:]}"
        out.append(text)
        counts.append(len(spans))
    return out, counts


def redact_text(text: str, found: dict[str, int] | None = None, *, language: str = "und") -> str:
    """``text`` with personal data replaced by ``[EMAIL]``, ``[IBAN]``, ``[CARD]``, ``[PHONE]`` and,
    unless ``language`` is Japanese and when the name model is installed, ``[NAME]``."""
    found = {} if found is None else found
    (out,), (count,) = _redact_names([_redact_patterns(text, found)], language)
    if count:
        found["NAME"] = found.get("NAME", 0) + count
    return out


def redact_document(doc: ParsedDocument) -> ParsedDocument:
    """The document with every block redacted and offsets recomputed (text between blocks is kept).

    Patterns run first on each text; names then run over all the block texts, headings, the
    title and metadata values together, so the model is loaded once and run in batches, and a
    name seen in full once ("Lukas Weber") is also found alone ("Lukas") elsewhere. Only what
    the blocks held is counted in ``redacted`` (headings, title and metadata repeat it).
    """
    found: dict[str, int] = {}
    ordered = sorted(doc.blocks, key=lambda b: b.start)
    headings = sorted({h for block in ordered for h in block.heading_path})
    keys = list(doc.metadata)
    n = len(ordered)
    texts = [_redact_patterns(b.text, found) for b in ordered]
    texts += [_redact_patterns(t, {}) for t in [*headings, doc.title, *(doc.metadata[k] for k in keys)]]
    texts, counts = _redact_names(texts, doc.language)
    if sum(counts[:n]):
        found["NAME"] = sum(counts[:n])
    heading_map = dict(zip(headings, texts[n : n + len(headings)], strict=True))
    title = texts[n + len(headings)]
    metadata = dict(zip(keys, texts[n + len(headings) + 1 :], strict=True))

    pieces: list[str] = []
    blocks: list[Block] = []
    cursor = 0
    length = 0
    for block, new in zip(ordered, texts[:n], strict=True):
        gap = doc.text[cursor : block.start]
        pieces.append(gap)
        length += len(gap)
        blocks.append(replace(block, text=new, start=length, end=length + len(new),
                              heading_path=tuple(heading_map[h] for h in block.heading_path)))
        pieces.append(new)
        length += len(new)
        cursor = block.end
    pieces.append(doc.text[cursor:])
    if found:
        metadata["redacted"] = ", ".join(f"{k.lower()}: {v}" for k, v in sorted(found.items()))
    skipped = names_skipped(doc.language)
    if skipped:
        metadata["names"] = skipped
    return ParsedDocument(title=title, text="".join(pieces), blocks=blocks, language=doc.language, metadata=metadata)
