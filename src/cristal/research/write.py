"""Writing the report: Markdown in the question's language, every claim cited as [n].

Extractive mode assembles the report from verbatim quotes under templates in
English, German and Japanese. LLM mode takes the model's draft and keeps only
sentences whose citations hold: the cited passage exists, a quote is taken
from it verbatim, and every number the sentence states occurs in a quote it
cites. Everything else is dropped and counted. A document that held text
addressed to an AI (which is never quoted) is named in a note at the top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cristal.knowledge.injection import check
from cristal.knowledge.language import detect_language
from cristal.research.conflicts import Disagreement
from cristal.research.extract import Sentence, best_sentence, lexical_score, numbers, sentences, token_set, verify_quote
from cristal.research.gather import DocumentText, chunk_span
from cristal.research.notes import Evidence, Notes, Passage

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "extractive_note": "Extractive report (no language model): every statement is quoted verbatim from documents you may read.",
        "llm_note": "Written by a language model from documents you may read; every sentence cites its source.",
        "summary": "Summary", "findings": "Findings", "disagreements": "Disagreements between sources", "sources": "Sources",
        "disagree": "The sources disagree: {a} in “{ta}” [{na}] versus {b} in “{tb}” [{nb}]. Check which source is newer or authoritative.",
        "disagree_short": "Note: the sources disagree ({a} [{na}] vs {b} [{nb}]).",
        "partial": "Partial report: {reason}",
        "nothing": "No passage in the documents you may read answers this.",
        "no_results": "No documents you may read match this question.",
        "flagged": "Document {doc} contains text addressed to an AI (possible prompt injection); it was ignored: not quoted, not followed.",
        "refused": "The model asked for actions that are not available ({names}); nothing was executed.",
        "dropped": "{n} sentence(s) of the model's draft were removed because their citations did not hold.",
        "quotes_lang": "Quotes are given in the language of their source.",
    },
    "de": {
        "extractive_note": "Extraktiver Bericht (ohne Sprachmodell): "
                           "Jede Aussage ist wörtlich aus Dokumenten zitiert, die Sie lesen dürfen.",
        "llm_note": "Von einem Sprachmodell aus Dokumenten verfasst, die Sie lesen dürfen; jeder Satz nennt seine Quelle.",
        "summary": "Zusammenfassung", "findings": "Ergebnisse", "disagreements": "Widersprüche zwischen Quellen", "sources": "Quellen",
        "disagree": "Die Quellen widersprechen sich: {a} in „{ta}“ [{na}] gegenüber {b} in „{tb}“ [{nb}]. "
                    "Bitte prüfen, welche Quelle neuer bzw. maßgeblich ist.",
        "disagree_short": "Hinweis: Die Quellen widersprechen sich ({a} [{na}] gegenüber {b} [{nb}]).",
        "partial": "Unvollständiger Bericht: {reason}",
        "nothing": "Keine Passage in den Dokumenten, die Sie lesen dürfen, beantwortet dies.",
        "no_results": "Keine Dokumente, die Sie lesen dürfen, passen zu dieser Frage.",
        "flagged": "Dokument {doc} enthält Text, der sich an eine KI richtet (mögliche Prompt-Injection); "
                   "er wurde ignoriert: weder zitiert noch befolgt.",
        "refused": "Das Modell verlangte Aktionen, die nicht verfügbar sind ({names}); nichts davon wurde ausgeführt.",
        "dropped": "{n} Satz/Sätze des Modellentwurfs wurden entfernt, weil ihre Belege nicht hielten.",
        "quotes_lang": "Zitate stehen in der Sprache ihrer Quelle.",
    },
    "ja": {
        "extractive_note": "抽出型レポート（言語モデル不使用）：すべての記述は、あなたが閲覧できる文書からの原文どおりの引用です。",
        "llm_note": "あなたが閲覧できる文書をもとに言語モデルが作成しました。各文に出典を示しています。",
        "summary": "要約", "findings": "調査結果", "disagreements": "情報源間の食い違い", "sources": "出典",
        "disagree": "情報源の記載が食い違っています：「{ta}」では{a} [{na}]、「{tb}」では{b} [{nb}]。"
                    "どちらが新しいか、正式なものかを確認してください。",
        "disagree_short": "注意：情報源の記載が食い違っています（{a} [{na}] と {b} [{nb}]）。",
        "partial": "不完全なレポート：{reason}",
        "nothing": "閲覧可能な文書に、これに答える箇所は見つかりませんでした。",
        "no_results": "閲覧可能な文書の中に、この質問に該当するものはありません。",
        "flagged": "文書{doc}にAI宛ての文（プロンプトインジェクションの可能性）が含まれていました。"
                   "無視しました（引用も実行もしていません）。",
        "refused": "モデルが利用できない操作（{names}）を要求しましたが、何も実行していません。",
        "dropped": "出典が確認できなかったため、モデルの下書きから{n}文を削除しました。",
        "quotes_lang": "引用は出典の言語のまま記載しています。",
    },
}


def texts(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS["en"])


@dataclass
class Citation:
    n: int
    doc_id: int
    uri: str
    title: str
    quote: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "doc_id": self.doc_id, "uri": self.uri, "title": self.title, "quote": self.quote,
                "start": self.start, "end": self.end}


@dataclass
class Citations:
    """Numbers handed out in order of first use; one number per quoted span."""

    items: list[Citation] = field(default_factory=list)
    _by_key: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def cite(self, doc_id: int, uri: str, title: str, quote: str, start: int, end: int) -> int:
        key = (doc_id, start, end)
        if key not in self._by_key:
            self._by_key[key] = len(self.items) + 1
            self.items.append(Citation(len(self.items) + 1, doc_id, uri, title, quote, start, end))
        return self._by_key[key]

    def cite_evidence(self, e: Evidence) -> int:
        return self.cite(e.doc_id, e.uri, e.title, e.quote, e.start, e.end)

    @property
    def numbers(self) -> dict[tuple[int, int, int], int]:
        return dict(self._by_key)


def _inline(quote: str) -> str:
    """A quote on one Markdown line (the citation keeps the exact text)."""
    return " ".join(quote.split())


def _quoted(quote: str, lang: str) -> str:
    q = _inline(quote)
    return f"„{q}“" if lang == "de" else (f"「{q}」" if lang == "ja" else f"“{q}”")


def _notices(lines: list[str], lang: str, notes: Notes, status: str, reason: str | None, dropped: int = 0) -> None:
    t = texts(lang)
    if status == "partial" and reason:
        lines += [f"> **{t['partial'].format(reason=reason)}**", ""]
    for flagged in flagged_documents(notes.suspicious):
        lines += [f"> {t['flagged'].format(doc=_document_label(flagged, lang))}", ""]
    if notes.refused_tool_calls:
        names = ", ".join(sorted({c['name'] for c in notes.refused_tool_calls}))
        lines += [f"> {t['refused'].format(names=names)}", ""]
    if dropped:
        lines += [f"> {t['dropped'].format(n=dropped)}", ""]


def flagged_documents(suspicious: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents holding text addressed to an AI, one entry each, in order of first finding (the JSON shape)."""
    out: dict[int, dict[str, Any]] = {}
    for x in suspicious:
        doc = out.setdefault(int(x["doc_id"]), {"doc_id": int(x["doc_id"]), "uri": x.get("uri", ""), "title": x.get("title", ""),
                                                "sentences": 0, "spans": []})
        doc["sentences"] += 1
        doc["spans"].append({"start": x["start"], "end": x["end"], "rule": x.get("rule", ""), "signals": x.get("signals", [])})
    for doc in out.values():
        if doc["title"] and check(doc["title"]) is not None:
            doc["title"] = ""  # a title that itself speaks to an AI is not repeated
    return list(out.values())


def _document_label(flagged: dict[str, Any], lang: str) -> str:
    uri = "`" + str(flagged["uri"]).replace("`", "'") + "`"
    title = " ".join(str(flagged["title"]).split())
    if not title:
        return uri
    return f"{_quoted(title, lang)}（{uri}）" if lang == "ja" else f"{_quoted(title, lang)} ({uri})"


def _disagreement_lines(disagreements: list[Disagreement], cites: Citations, t: dict[str, str]) -> list[str]:
    out = []
    for d in disagreements:
        a, b = d.facts[0], d.facts[1]
        na, nb = cites.cite_evidence(a.evidence), cites.cite_evidence(b.evidence)
        out.append("- " + t["disagree"].format(a=a.surface, ta=a.evidence.title, na=na, b=b.surface, tb=b.evidence.title, nb=nb))
    return out


def sources_section(cites: Citations, t: dict[str, str]) -> list[str]:
    lines = [f"## {t['sources']}", ""]
    for c in cites.items:
        lines.append(f"[{c.n}] {c.title} — `{c.uri}` — “{_inline(c.quote)}”")
    return lines


def extractive_report(
    notes: Notes, lang: str, disagreements: list[Disagreement], *, status: str, reason: str | None = None
) -> tuple[str, Citations]:
    t = texts(lang)
    cites = Citations()
    lines = [f"# {notes.question.strip()}", "", f"_{t['extractive_note']}_", ""]
    _notices(lines, lang, notes, status, reason)
    if not notes.evidence:
        lines += [t["no_results"] if not notes.passages else t["nothing"]]
        return "\n".join(lines).rstrip() + "\n", cites
    # Summary: the best sentence of each sub-question (and the disagreements, briefly).
    summary: list[str] = []
    used: set[tuple[int, int, int]] = set()
    for sub in notes.subquestions:
        best = sorted(notes.evidence_for(sub), key=lambda e: -e.score)
        for e in best:
            if e.key not in used:
                used.add(e.key)
                summary.append(f"{_quoted(e.quote, lang)} [{cites.cite_evidence(e)}]")
                break
        if len(summary) >= 3:
            break
    for d in disagreements[:2]:
        a, b = d.facts[0], d.facts[1]
        summary.append(t["disagree_short"].format(a=a.surface, na=cites.cite_evidence(a.evidence),
                                                  b=b.surface, nb=cites.cite_evidence(b.evidence)))
    lines += [f"## {t['summary']}", "", " ".join(summary), ""]
    if disagreements:
        lines += [f"## {t['disagreements']}", "", *_disagreement_lines(disagreements, cites, t), ""]
    single = len(notes.subquestions) == 1
    for sub in notes.subquestions:
        found = sorted(notes.evidence_for(sub), key=lambda e: -e.score)
        lines += [f"## {t['findings'] if single else sub}", ""]
        if not found:
            lines += [t["nothing"], ""]
            continue
        for e in found:
            lines.append(f"- {_quoted(e.quote, lang)} [{cites.cite_evidence(e)}] — {e.title}")
        lines.append("")
    if any(e.lang != lang for e in notes.evidence):
        lines += [f"_{t['quotes_lang']}_", ""]
    lines += sources_section(cites, t)
    return "\n".join(lines).rstrip() + "\n", cites


# ---------------------------------------------------------------------------
# LLM mode: verify the model's draft

_MARKERS = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SENTENCE = re.compile(r".+?(?:[.!?。！？](?=\s|$|\[|[」』）)])(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])*|$)", re.DOTALL)
_PREFIX = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+|\s*>\s*)")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://\S+|www\.\S+")
_NO_INFO = re.compile(r"\b(?:no|not|none|nicht|kein\w*|nirgends)\b|ません|ない|見当たりません|不明", re.IGNORECASE)


def _split_sentences(line: str) -> list[str]:
    return [m.group().strip() for m in _SENTENCE.finditer(line) if m.group().strip()]


@dataclass
class Verified:
    body: str
    citations: Citations
    dropped: list[str]


Blocked = Callable[[DocumentText, int, int], bool]


def verify_draft(draft: str, numbered: list[Passage], docs: dict[int, DocumentText], lang: str, cites: Citations | None = None,
                 blocked: Blocked | None = None) -> Verified:
    """Keep the sentences whose [n] point at real passages and whose numbers occur in the quotes cited.

    ``blocked(doc, start, end)`` is true for text that may never be quoted (addressed to an AI): a claim
    that only such text supports is dropped like any other claim without a source.
    """
    cites = cites or Citations()
    dropped: list[str] = []
    out_lines: list[str] = []
    for raw in draft.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#") or set(line.strip()) <= set("-*_=|: "):
            if not _MARKERS.search(line):
                out_lines.append(line)
                continue
        prefix_match = _PREFIX.match(line)
        prefix = prefix_match.group(1) if prefix_match else ""
        kept: list[str] = []
        for sentence in _split_sentences(line[len(prefix):]):
            new = _verify_sentence(sentence, numbered, docs, lang, cites, blocked)
            if new is None:
                dropped.append(sentence)
            elif new:
                kept.append(new)
        if kept:
            out_lines.append(prefix + " ".join(kept))
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(out_lines)).strip()
    return Verified(body, cites, dropped)


def _verify_sentence(sentence: str, numbered: list[Passage], docs: dict[int, DocumentText], lang: str, cites: Citations,
                     blocked: Blocked | None = None) -> str | None:
    refs: list[int] = []
    for m in _MARKERS.finditer(sentence):
        refs += [int(x) for x in re.split(r"[,;]", m.group(1))]
    claim = _MARKERS.sub("", sentence).strip()
    if not refs:
        # Uncited: only a statement that something is *not* in the sources may stand.
        return claim if _NO_INFO.search(claim) and not numbers(claim) else None
    valid = [r for r in dict.fromkeys(refs) if 1 <= r <= len(numbered) and numbered[r - 1].doc_id in docs]
    if not valid:
        return None
    wanted = numbers(claim)
    quotes: list[tuple[Passage, DocumentText, int, int, str]] = []
    for r in valid:
        p = numbered[r - 1]
        doc = docs[p.doc_id]
        span = chunk_span(p, doc)

        def excluded(x: Sentence, doc: DocumentText = doc) -> bool:
            return blocked is not None and blocked(doc, x.start, x.end)

        s = best_sentence(doc.text, span, claim, lang, exclude=excluded)
        if s is None:
            continue
        quotes.append((p, doc, s.start, s.end, s.text))
        # A number of the claim not in that sentence may be in another sentence of the passage.
        for missing in wanted - numbers(" ".join(q[4] for q in quotes)):
            extra = next((x for x in sentences(doc.text, *span) if missing in numbers(x.text) and not excluded(x)), None)
            if extra is not None:
                quotes.append((p, doc, extra.start, extra.end, extra.text))
    if not quotes or not wanted <= numbers(" ".join(q[4] for q in quotes)):
        return None
    quoted = " ".join(q[4] for q in quotes)
    # Addresses and links the claim states must come from the sources (no invented recipients or URLs).
    if any(x not in quoted for x in _ADDRESS.findall(claim)):
        return None
    # The claim must share words with what it cites (same language), unless it is about another language's text.
    claim_tokens = token_set(claim, lang)
    if not wanted and all(detect_language(q[4]) == lang for q in quotes) and lexical_score(claim_tokens, token_set(quoted)) < 0.2:
        return None
    ns = []
    for p, doc, start, end, quote in quotes:
        if not verify_quote(doc.text, quote, start):
            continue
        ns.append(cites.cite(p.doc_id, p.uri, p.title, quote, start, end))
    if not ns:
        return None
    # Keep the sentence's closing punctuation after the markers.
    end_punct = ""
    if claim and claim[-1] in ".!?。！？":
        claim, end_punct = claim[:-1].rstrip(), claim[-1]
    return f"{claim} {''.join(f'[{n}]' for n in dict.fromkeys(ns))}{end_punct}"


def llm_report(notes: Notes, verified: Verified, lang: str, disagreements: list[Disagreement], *, status: str, reason: str | None) -> str:
    t = texts(lang)
    lines = [f"# {notes.question.strip()}", "", f"_{t['llm_note']}_", ""]
    _notices(lines, lang, notes, status, reason, dropped=len(verified.dropped))
    lines += [verified.body, ""]
    # Mechanically found disagreements the model did not mention are added, citing both sides.
    missing = [d for d in disagreements if not all(f.surface in verified.body for f in d.facts[:2])]
    if missing:
        lines += [f"## {t['disagreements']}", "", *_disagreement_lines(missing, verified.citations, t), ""]
    lines += sources_section(verified.citations, t)
    return "\n".join(lines).rstrip() + "\n"
