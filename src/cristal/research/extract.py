"""Sentences with their exact spans, relevance scoring, and verbatim quotes.

A quote is always a slice ``document.text[start:end]``: it is verbatim by
construction, and :func:`verify_quote` checks it again before anything is
emitted. Sentences are found inside a search hit's chunk, whose span in the
document's canonical text the index records.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from cristal.knowledge.language import detect_language
from cristal.knowledge.tokenize import tokens

_HARD_END = re.compile(r"[。！？!?]+[」』）)]*|\n+")
_SOFT_END = re.compile(r"(?<=[.:;])\s+(?=[\"„“'(\[A-ZÄÖÜ0-9])")
# Markup and list markers trimmed from the ends of a sentence (the quote stays a slice).
_LEAD = re.compile(r"^[\s|#>*\-•·+–—]+|^\d{1,2}[.)]\s+(?=\D)")
_TRAIL = re.compile(r"[\s|*#]+$")
_ABBREV = re.compile(r"(?:\b\w{1,2}|\d+|\b(?:bzw|ggf|inkl|ca|Nr|Dr|Mr|Mrs|Ms|St|vs|etc|z\.\s?B|u\.\s?a|d\.\s?h))\.$", re.IGNORECASE)

NUMBER = re.compile(r"\d[\d.,' ]*\d|\d")


@dataclass(frozen=True)
class Sentence:
    """A sentence of a document: ``text == document.text[start:end]``."""

    start: int
    end: int
    text: str


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    piece = text[start:end]
    lead = _LEAD.match(piece)
    if lead:
        start += lead.end()
    piece = text[start:end]
    trail = _TRAIL.search(piece)
    if trail:
        end -= len(trail.group())
    return start, end


def _soft_split(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split Latin text at '. X' unless the word before the period is an abbreviation or a number."""
    spans, cur = [], start
    for m in _SOFT_END.finditer(text, start, end):
        before = text[max(cur, m.start() - 12) : m.start()]
        if _ABBREV.search(before):
            continue
        spans.append((cur, m.start()))
        cur = m.end()
    spans.append((cur, end))
    return spans


def sentences(text: str, start: int = 0, end: int | None = None, *, min_chars: int = 12) -> list[Sentence]:
    """The sentences of ``text[start:end]`` as spans of ``text`` (tables: one row is one sentence)."""
    end = len(text) if end is None else end
    out: list[Sentence] = []
    cur = start
    pieces: list[tuple[int, int]] = []
    for m in _HARD_END.finditer(text, start, end):
        stop = m.end() if not m.group().startswith("\n") else m.start()
        pieces.append((cur, stop))
        cur = m.end()
    pieces.append((cur, end))
    for a, b in pieces:
        for s, e in _soft_split(text, a, b):
            s, e = _trimmed(text, s, e)
            body = text[s:e]
            if e - s < (4 if _is_cjk(body) else min_chars) or not any(ch.isalnum() for ch in body):
                continue
            if set(body) <= set("|-: "):
                continue
            out.append(Sentence(s, e, body))
    return out


def _is_cjk(value: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" for ch in value)


def token_set(value: str, lang: str | None = None) -> set[str]:
    lang = lang or detect_language(value)
    return set(tokens(value, lang if lang in ("en", "de", "ja") else "en"))


def numbers(value: str) -> set[str]:
    """Numbers in ``value``, normalised (NFKC, separators dropped): '1.500' and '1,500' meet."""
    value = unicodedata.normalize("NFKC", value)
    found = set()
    for m in NUMBER.finditer(value):
        digits = re.sub(r"[^\d]", "", m.group())
        if digits:
            found.add(digits.lstrip("0") or "0")
    return found


def lexical_score(query_tokens: set[str], sentence_tokens: set[str]) -> float:
    if not query_tokens:
        return 0.0
    return len(query_tokens & sentence_tokens) / len(query_tokens)


def verify_quote(document_text: str, quote: str, start: int | None = None) -> bool:
    """True when ``quote`` occurs verbatim in the document (at ``start`` if given)."""
    if not quote.strip():
        return False
    if start is not None and document_text[start : start + len(quote)] == quote:
        return True
    return quote in document_text


def best_sentence(document_text: str, span: tuple[int, int], claim: str, claim_lang: str | None = None) -> Sentence | None:
    """The sentence of ``document_text[span]`` that best supports ``claim`` (shared numbers, then tokens)."""
    candidates = sentences(document_text, *span)
    if not candidates:
        return None
    claim_tokens = token_set(claim, claim_lang)
    claim_numbers = numbers(claim)

    def score(s: Sentence) -> tuple[float, float]:
        return (len(claim_numbers & numbers(s.text)), lexical_score(claim_tokens, token_set(s.text)))

    return max(candidates, key=score)
