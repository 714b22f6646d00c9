"""Detecting and redacting personal data at ingestion (per source, ``--redact-pii``).

Found by pattern and checked where a checksum exists: e-mail addresses, phone
numbers (international ``+`` or national ``0`` prefix, 8–15 digits), payment
card numbers (Luhn) and IBANs (ISO 7064 mod 97). Redacted text replaces the
original everywhere (chunks, keyword index, embeddings, citations), so the
personal data never enters the index. Person names are not detected: no
offline name model for Japanese is good enough yet.
"""

from __future__ import annotations

import re
from dataclasses import replace

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


def _sub_checked(pattern: re.Pattern[str], label: str, check, text: str, found: dict[str, int]) -> str:  # type: ignore[no-untyped-def]
    def repl(m: re.Match[str]) -> str:
        if not check(m.group()):
            return m.group()
        found[label] = found.get(label, 0) + 1
        return f"[{label}]"

    return pattern.sub(repl, text)


def redact_text(text: str, found: dict[str, int] | None = None) -> str:
    """``text`` with personal data replaced by ``[EMAIL]``, ``[IBAN]``, ``[CARD]``, ``[PHONE]``."""
    found = {} if found is None else found
    text = _sub_checked(_EMAIL, "EMAIL", lambda s: True, text, found)
    text = _sub_checked(_IBAN, "IBAN", _iban_ok, text, found)
    text = _sub_checked(_CARD, "CARD", lambda s: _luhn(re.sub(r"\D", "", s)), text, found)
    text = _sub_checked(_PHONE, "PHONE", lambda s: 8 <= len(re.sub(r"\D", "", s)) <= 15, text, found)
    return text


def redact_document(doc: ParsedDocument) -> ParsedDocument:
    """The document with every block redacted and offsets recomputed (text between blocks is kept)."""
    found: dict[str, int] = {}
    pieces: list[str] = []
    blocks: list[Block] = []
    cursor = 0
    length = 0
    for block in sorted(doc.blocks, key=lambda b: b.start):
        gap = doc.text[cursor : block.start]
        pieces.append(gap)
        length += len(gap)
        new = redact_text(block.text, found)
        blocks.append(replace(block, text=new, start=length, end=length + len(new),
                              heading_path=tuple(redact_text(h) for h in block.heading_path)))
        pieces.append(new)
        length += len(new)
        cursor = block.end
    pieces.append(doc.text[cursor:])
    metadata = {k: redact_text(v) for k, v in doc.metadata.items()}
    if found:
        metadata["redacted"] = ", ".join(f"{k.lower()}: {v}" for k, v in sorted(found.items()))
    return ParsedDocument(title=redact_text(doc.title), text="".join(pieces), blocks=blocks, language=doc.language, metadata=metadata)
