"""Searching as the asking user (in parallel), choosing passages, and reading them.

Every search goes through :class:`~cristal.knowledge.search.Searcher`, which
authorizes, filters by the user's access inside the query and audits. The
documents read afterwards are exactly those the user's searches returned.
Every passage read is screened for text addressed to an AI
(:mod:`cristal.knowledge.injection`): such sentences are never evidence, and
the run notes which documents held them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from cristal.db import Database
from cristal.identity.principal import Principal
from cristal.knowledge.injection import Finding, scan
from cristal.knowledge.language import detect_language
from cristal.knowledge.schema import Document
from cristal.knowledge.search import Hit, Searcher
from cristal.research.extract import NUMBER, Sentence, answer_types, has_answer_type, lexical_score, sentences, token_set
from cristal.research.notes import Evidence, Passage

MAX_WORKERS = 4
# Sentences embedded per read (the dense model costs ~20 ms a sentence on a CPU).
DENSE_BUDGET = 96
# Weight of the dense similarity against word overlap: higher when the sentence is in another language than the
# question, where shared words are rare and mostly names (an English question, a German answer).
DENSE_WEIGHT, DENSE_WEIGHT_CROSS = 0.55, 0.65
# A sentence holding the kind of value asked for (a date for "when", an amount for "how much", ...).
ANCHOR_BONUS, NUMBER_BONUS = 0.3, 0.15
# Choosing passages: a second chunk of an already chosen document counts as this much more redundant. Kept
# small: the best document's other chunks often hold the answer (the update e-mail's second paragraph).
SAME_DOC_PENALTY = 0.15
# Screening for text addressed to an AI looks this far around a passage for the rest of its paragraphs.
SCREEN_CONTEXT = 2000
# Questions that ask for a figure or a date: sentences with numbers are likelier answers.
_FACT_WORDS = ("how much", "how many", "how long", "how high", "when", "what date", "which date", "rate", "amount",
               "wie hoch", "wie viel", "wie lange", "wann", "bis wann", "betrag",
               "いつ", "いくら", "何日", "何円", "何台", "何%", "期限", "上限",
               "period", "deadline", "limit", "cap", "price", "cost", "date", "address", "frist", "höhe", "preis", "kosten",
               "datum", "dauer", "pauschale", "adresse", "期間", "価格", "発売日", "金額", "住所", "何")
_HEADER_LINE = re.compile(r"^(?:From|To|Cc|Bcc|Subject|Date|Message-ID|Content-[\w-]+|MIME-Version|Reply-To"
                          r"|Von|An|Betreff|Datum|件名|差出人|宛先)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class DocumentText:
    doc_id: int
    title: str
    uri: str
    lang: str
    text: str
    mtime: float | None


def search_all(
    searcher: Searcher, principal: Principal, queries: Sequence[str], *, limit: int = 8, workers: int = MAX_WORKERS,
    on_result: Callable[[str, list[Hit]], None] | None = None,
) -> dict[str, list[Hit]]:
    """Run independent searches in parallel, each as ``principal``; results keyed by query."""
    unique = list(dict.fromkeys(q for q in queries if q.strip()))
    results: dict[str, list[Hit]] = {}
    if not unique:
        return results
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique))), thread_name_prefix="research-search") as pool:
        futures = {q: pool.submit(searcher.search, principal, q, limit=limit) for q in unique}
        for q in unique:
            results[q] = futures[q].result()  # an authorization error surfaces here, as it should
            if on_result is not None:
                on_result(q, results[q])
    return results


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def select_passages(hits: Sequence[Hit], query: str, lang: str, *, k: int = 5, diversity: float = 0.35) -> list[Hit]:
    """Maximal marginal relevance over the hits: relevant, but not the same passage (or document) twice over."""
    if not hits:
        return []
    top = max(h.score for h in hits) or 1.0
    qt = token_set(query, lang)
    kinds = answer_types(query) - {"count"}  # any digit is a count: too weak a hint at the passage level
    cands = []
    for h in {h.chunk_id: h for h in hits}.values():
        toks = token_set(h.text, h.lang)
        relevance = 0.7 * (h.score / top) + 0.3 * lexical_score(qt, toks)
        if kinds and has_answer_type(h.text, kinds):
            relevance += 0.1
        cands.append((h, toks, relevance))
    chosen: list[tuple[Hit, set[str], float]] = []
    while cands and len(chosen) < k:
        def mmr(c: tuple[Hit, set[str], float]) -> float:
            if not chosen:
                return c[2]
            overlap = max(_jaccard(c[1], o[1]) + (SAME_DOC_PENALTY if c[0].doc_id == o[0].doc_id else 0.0) for o in chosen)
            return (1 - diversity) * c[2] - diversity * overlap
        best = max(cands, key=mmr)
        cands.remove(best)
        chosen.append(best)
    return [c[0] for c in chosen]


def load_documents(db: Database, doc_ids: set[int]) -> dict[int, DocumentText]:
    """The canonical text of documents the user's own searches returned (and no others)."""
    if not doc_ids:
        return {}
    with db.session() as s:
        rows = s.execute(
            select(Document.id, Document.title, Document.uri, Document.lang, Document.text, Document.mtime)
            .where(Document.id.in_(sorted(doc_ids)))
        ).all()
    return {r.id: DocumentText(r.id, r.title, r.uri, r.lang, r.text, r.mtime) for r in rows}


def passage_of(hit: Hit, subquestion: str) -> Passage:
    return Passage(subquestion, hit.doc_id, hit.chunk_id, hit.title, hit.uri, hit.lang, hit.start, hit.end, hit.score, hit.heading)


def chunk_span(passage: Passage, doc: DocumentText, chunk_text: str | None = None) -> tuple[int, int]:
    """The passage's span in the document (the index records it; re-found if the text moved)."""
    start, end = passage.start, passage.end
    if chunk_text is not None and doc.text[start:end] != chunk_text:
        found = doc.text.find(chunk_text)
        if found >= 0:
            return found, found + len(chunk_text)
    return max(0, start), min(len(doc.text), end)


def table_context(text: str, pos: int) -> tuple[str, bool]:
    """For a sentence in a Markdown table row: (the table's header row, whether this row is the header)."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    if line.count("|") < 1:
        return "", False
    header_start = line_start
    while header_start > 0:
        prev_start = text.rfind("\n", 0, header_start - 1) + 1
        prev = text[prev_start : header_start - 1]
        if prev.count("|") < 1:
            break
        header_start = prev_start
    header_end = text.find("\n", header_start)
    header = text[header_start : header_end if header_end >= 0 else len(text)]
    return (header, header_start == line_start)


class Screen:
    """The sentences addressed to an AI in the parts of documents a run reads; each region is scanned once.

    A region is a passage widened to the blank lines around it (at most
    ``SCREEN_CONTEXT`` characters each way), so an injected paragraph is
    judged as a whole even when a chunk boundary cuts it. The sentence spans
    are the reader's own (:func:`~cristal.research.extract.sentences`).
    """

    def __init__(self) -> None:
        self._covered: dict[int, list[tuple[int, int]]] = {}
        self._found: dict[int, dict[tuple[int, int], Finding]] = {}

    def _cover(self, doc: DocumentText, start: int, end: int) -> None:
        covered = self._covered.setdefault(doc.doc_id, [])
        if any(a <= start and end <= b for a, b in covered):
            return
        text = doc.text
        lo = max(0, start - SCREEN_CONTEXT)
        a = text.rfind("\n\n", lo, start)
        a = a + 2 if a >= 0 else lo
        hi = min(len(text), end + SCREEN_CONTEXT)
        b = text.find("\n\n", end, hi)
        b = b if b >= 0 else hi
        spans = [(x.start, x.end) for x in sentences(text, a, b, min_chars=1)]
        found = self._found.setdefault(doc.doc_id, {})
        for f in scan(text, spans):
            found.setdefault((f.start, f.end), f)
        covered.append((a, b))

    def findings(self, doc: DocumentText, start: int, end: int) -> list[Finding]:
        """Flagged sentences that overlap ``doc.text[start:end]``."""
        self._cover(doc, start, end)
        return [f for (a, b), f in sorted(self._found.get(doc.doc_id, {}).items()) if a < end and start < b]

    def flagged(self, doc: DocumentText, start: int, end: int) -> Finding | None:
        hits = self.findings(doc, start, end)
        return hits[0] if hits else None


def note_finding(suspicious: list[dict] | None, doc: DocumentText, finding: Finding) -> None:
    """Record a flagged sentence once in the run's notes (offsets and why, never its text)."""
    if suspicious is None or any(x["doc_id"] == doc.doc_id and x["start"] == finding.start for x in suspicious):
        return
    suspicious.append({"doc_id": doc.doc_id, "uri": doc.uri, "title": doc.title, "start": finding.start, "end": finding.end,
                       "rule": finding.rule, "signals": list(finding.signals)})


class Reader:
    """Chooses the sentences that answer a sub-question, with diversity, from the chosen passages."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray] | None, screen: Screen | None = None) -> None:
        self.embed = embed
        self.screen = screen or Screen()

    def read(
        self, subquestion: str, lang: str, passages: Sequence[Passage], docs: dict[int, DocumentText], *, k: int = 4,
        suspicious: list[dict] | None = None,
    ) -> list[Evidence]:
        qt = token_set(subquestion, lang)
        question_lang = detect_language(subquestion)
        kinds = answer_types(subquestion)
        specific = kinds - {"count"}
        wants_fact = bool(kinds) or any(w in subquestion.casefold() for w in _FACT_WORDS)
        candidates: list[tuple[Passage, Sentence, float, float, float, bool]] = []
        seen: set[tuple[int, int]] = set()
        for rank, p in enumerate(passages):
            doc = docs.get(p.doc_id)
            if doc is None:
                continue
            context = token_set(f"{p.title} {p.heading}", doc.lang)
            for s in sentences(doc.text, *chunk_span(p, doc)):
                if (p.doc_id, s.start) in seen:
                    continue
                seen.add((p.doc_id, s.start))
                line_start = doc.text.rfind("\n", 0, s.start) + 1
                line = doc.text[line_start : s.start]
                if _HEADER_LINE.match(s.text) or (line.strip() == "" and _HEADER_LINE.match(doc.text[line_start:s.end])):
                    continue  # e-mail headers are metadata, not statements
                finding = self.screen.flagged(doc, s.start, s.end)
                if finding is not None:  # addressed to an AI: data, never an answer
                    note_finding(suspicious, doc, finding)
                    continue
                sentence_lang = detect_language(s.text) if len(s.text) > 40 else doc.lang
                st = token_set(s.text, sentence_lang)
                row_context, is_header = table_context(doc.text, s.start)
                if row_context:  # a table row is read with its header row: "München | 150 EUR" under "Ort | Obergrenze pro Nacht"
                    st = st | token_set(row_context, doc.lang)
                lex = lexical_score(qt, st) + 0.3 * lexical_score(qt, context)
                anchor = 0.0
                if specific and has_answer_type(s.text, specific):
                    anchor = ANCHOR_BONUS
                elif wants_fact and NUMBER.search(s.text):
                    anchor = NUMBER_BONUS  # a count, or a figure of some kind: any number is only a weak hint
                heading_like = (line.lstrip().startswith("#") or s.text.strip() == doc.title.strip()
                                or (len(s.text) < 60 and s.text.rstrip()[-1:] not in ".!?。！？:" and not NUMBER.search(s.text)
                                    and not row_context))
                mult = 0.5 if heading_like else 1.0
                if is_header:
                    mult *= 0.5
                lex += 0.1 / (1 + rank)  # the search's own ranking
                candidates.append((p, s, lex, anchor, mult, sentence_lang != question_lang))
        if not candidates:
            return []
        # Dense similarity (cross-lingual: an English question meets German sentences) for the best candidates.
        candidates.sort(key=lambda c: -(c[2] + c[3]))
        candidates = candidates[:DENSE_BUDGET]
        dense = np.zeros(len(candidates), dtype=np.float32)
        vectors = None
        if self.embed is not None:
            vectors = self.embed([subquestion] + [c[1].text for c in candidates])
            dense = vectors[1:] @ vectors[0]
        scored = []
        for i, (p, s, lex, anchor, mult, cross) in enumerate(candidates):
            weight = DENSE_WEIGHT_CROSS if cross else DENSE_WEIGHT
            scored.append(((p, s), float((weight * dense[i] + (1 - weight) * min(lex, 1.5) + anchor) * mult)))
        return self._diverse(subquestion, scored, vectors, k)

    @staticmethod
    def _diverse(subquestion: str, scored: list, vectors: np.ndarray | None, k: int) -> list[Evidence]:
        best = max(s for _, s in scored)
        floor = best * 0.4  # weak sentences are not worth quoting
        pool = [(i, c, s) for i, (c, s) in enumerate(scored) if s >= floor and s > 0.05]
        chosen: list[tuple[int, tuple, float]] = []
        while pool and len(chosen) < k:
            def mmr(item: tuple[int, tuple, float]) -> float:
                if not chosen:
                    return item[2]
                sims = []
                for j, other, _ in chosen:
                    sim = float(vectors[1 + item[0]] @ vectors[1 + j]) if vectors is not None else 0.0
                    if other[0].doc_id == item[1][0].doc_id:
                        sim += 0.15
                    sims.append(sim)
                return 0.7 * item[2] - 0.3 * max(sims)
            pick = max(pool, key=mmr)
            pool.remove(pick)
            chosen.append(pick)
        out = []
        for _, (p, s, *_rest), score in chosen:
            out.append(Evidence(subquestion, p.doc_id, p.title, p.uri, p.lang, s.start, s.end, s.text, round(score, 4),
                                p.heading, p.chunk_id))
        return out
