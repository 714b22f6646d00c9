"""Sentences with their exact spans, relevance scoring, and verbatim quotes.

A quote is always a slice ``document.text[start:end]``: it is verbatim by
construction, and :func:`verify_quote` checks it again before anything is
emitted. Sentences are found inside a search hit's chunk, whose span in the
document's canonical text the index records.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from cristal.knowledge.language import detect_language
from cristal.knowledge.tokenize import tokens

_HARD_END = re.compile(r"[。！？!?]+[」』）)]*|\n+")
# Not after ':' -- "Abwesenheit von 24 Stunden: 28 EUR pro Tag" is one statement, its value after the colon.
_SOFT_END = re.compile(r"(?<=[.;])\s+(?=[\"„“'(\[A-ZÄÖÜ0-9])")
# Markup and list markers trimmed from the ends of a sentence (the quote stays a slice).
_LEAD = re.compile(r"^[\s|#>*\-•·+–—]+|^\d{1,2}[.)]\s+(?=\D)")
_TRAIL = re.compile(r"[\s|*#]+$")
_ABBREV = re.compile(r"(?:\b\w{1,2}|\d+|\b(?:bzw|ggf|inkl|zzgl|evtl|vgl|usw|ca|Nr|Dr|Mr|Mrs|Ms|St|vs|etc|Mio|Mrd|Tsd|Abs"
                     r"|Jan|Feb|Aug|Sept?|Okt|Oct|Nov|Dez|Dec|approx|Inc|Corp|Ltd|No|z\.\s?B|u\.\s?a|d\.\s?h))\.$", re.IGNORECASE)

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


def best_sentence(document_text: str, span: tuple[int, int], claim: str, claim_lang: str | None = None,
                  exclude: Callable[[Sentence], bool] | None = None) -> Sentence | None:
    """The sentence of ``document_text[span]`` that best supports ``claim`` (shared numbers, then tokens).

    ``exclude`` drops sentences that may never be quoted (text addressed to an AI).
    """
    candidates = [s for s in sentences(document_text, *span) if exclude is None or not exclude(s)]
    if not candidates:
        return None
    claim_tokens = token_set(claim, claim_lang)
    claim_numbers = numbers(claim)

    def score(s: Sentence) -> tuple[float, float]:
        return (len(claim_numbers & numbers(s.text)), lexical_score(claim_tokens, token_set(s.text)))

    return max(candidates, key=score)


# What kind of value a question asks for, by its wording in English, German or Japanese. A sentence that
# contains a value of that kind is likelier the answer than one that merely shares words with the question --
# and the value is language-neutral, so it anchors an English question to a German or Japanese sentence.
_ASKS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"\bwhen\b|\bwhat (?:date|day|year|month)\b|\bwhich (?:date|day|year)\b|\bdeadline\b|\bby when\b|"
                       r"\bwann\b|\bdatum\b|\bstichtag\b|\bin welchem jahr\b|\ban welchem tag\b|いつ|何日(?!間)|何年(?!間)|何月|日付|"
                       r"発売日|期日|締め?切", re.IGNORECASE),
    "money": re.compile(r"\bhow much\b|\bprice\b|\bcosts?\b|\bamount\b|\bcap\b|\bbudget\b|\bfees?\b|\brate\b|\bsalary\b|"
                        r"\brevenue\b|\bebit\b|\binvest|\bwithhold|\bwie hoch\b|\bwie viel\b(?!e)|\bbetrag|\bkosten|\bpreis|"
                        r"\bobergrenze|\bpauschale|\bumsatz|\bgehalt|\bbudget|"
                        r"いくら|金額|価格|費用|投資額|予算|上限|手当|円", re.IGNORECASE),
    "duration": re.compile(r"\bhow long\b|\bperiod\b|\bduration\b|\bhow many (?:days|weeks|months|years|hours)\b|"
                           r"\bwie lange\b|\bdauer\b|\bzeitraum\b|\bwie viele (?:tage|wochen|monate|jahre|stunden)\b|"
                           r"期間|何日間|何か月|何ヶ月|何年間|何時間|何週間", re.IGNORECASE),
    "count": re.compile(r"\bhow many\b|\bnumber of\b|\bwie viele\b|\banzahl\b|何台|何人|何名|何個|何件|何本|いくつ|台数|人数|件数",
                        re.IGNORECASE),
    "percent": re.compile(r"\bpercent|\bpercentage\b|\bshare\b|\bprozent|\banteil\b|\bquote\b|割合|何%|何％|比率|シェア",
                          re.IGNORECASE),
}
_MONTHS = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
           r"Januar|Jänner|Februar|März|Mai|Juni|Juli|Oktober|Dezember|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Okt|Nov|Dec|Dez)")
_HAS: dict[str, re.Pattern[str]] = {
    "date": re.compile(rf"\b\d{{1,2}}\.\s?{_MONTHS}\b|\b{_MONTHS}\.?\s+\d{{1,2}}\b|\b{_MONTHS}\s+\d{{4}}\b|"
                       r"\b\d{1,2}\.\d{1,2}\.(?:\d{2,4})?|\b\d{4}-\d{2}-\d{2}\b|\d{1,4}\s?年\s?\d{1,2}\s?月|\d{1,2}\s?月\s?\d{1,2}\s?日|"
                       r"\b(?:1[5-9]|20)\d{2}\b", re.IGNORECASE),
    "money": re.compile(r"[$€£¥]\s?\d|\d\s?(?:EUR|USD|JPY|GBP|Euro|€|\$|円|万円|億円|yen|dollars?|(?:Mio|Mrd|Tsd)\.?\s?(?:EUR|€|USD))|"
                        r"\d\s?(?:万|億)", re.IGNORECASE),
    "duration": re.compile(r"\d\s?(?:Tage|Tagen|Tag|Wochen|Woche|Monate|Monaten|Monat|Jahre|Jahren|Jahr|Stunden|Stunde|"
                           r"days?|weeks?|months?|years?|hours?|日間|日|週間|か月|ヶ月|カ月|ケ月|年間|時間)\b|"
                           r"\d\s?(?:日間|週間|か月|ヶ月|カ月|ケ月|年間|時間)", re.IGNORECASE),
    "count": re.compile(r"\d"),
    "percent": re.compile(r"\d\s?(?:%|％|Prozent|percent)", re.IGNORECASE),
}


def answer_types(question: str) -> frozenset[str]:
    """The kinds of value ``question`` asks for (``date``, ``money``, ``duration``, ``count``, ``percent``)."""
    found = {kind for kind, cue in _ASKS.items() if cue.search(question)}
    if "duration" in found:
        found.discard("count")  # "how many months" asks for a duration, not a bare count
    return frozenset(found)


def has_answer_type(sentence: str, kinds: frozenset[str]) -> bool:
    """True when ``sentence`` contains a value of one of ``kinds``."""
    text = unicodedata.normalize("NFKC", sentence)
    return any(_HAS[kind].search(text) for kind in kinds)
