"""Citations of an agent's answer: ``[n]`` markers checked against the passages the tools returned.

The ``search_knowledge`` tool shows the model each passage under a number of
the turn. An answer cites ``[n]``; a citation holds when ``n`` is a passage the
tools returned in this turn and a sentence of that passage supports the
claim: the quote is the best such sentence, every number the claim states occurs in it (``research.extract.best_sentence``)
and is checked verbatim (``research.extract.verify_quote``), the same checks
Deep Research applies. Markers that do not hold are removed from the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cristal.research.extract import best_sentence, numbers, verify_quote

_MARK = re.compile(r"\s?\[(\d{1,4})\]")
# A sentence of the answer: what its markers are claimed to support.
_SENTENCE = re.compile(r"[^.!?。！？\n]*(?:\[\d{1,4}\])*[.!?。！？]?(?:\s*\[\d{1,4}\])*")


@dataclass(frozen=True)
class Passage:
    """A passage a tool showed the model: the chunk's text, verbatim."""

    n: int
    doc_id: int
    uri: str
    title: str
    text: str


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: int
    uri: str
    quote: str

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "doc_id": self.doc_id, "uri": self.uri, "quote": self.quote}


def settled(text: str) -> int:
    """How much of ``text``, an answer still arriving, is whole sentences that ``cite`` can check already.

    A sentence is whole once something other than white space or another ``[n]`` marker follows it; checking
    the text up to there alone gives what ``cite`` gives for the whole answer.
    """
    end = 0
    for m in _SENTENCE.finditer(text):
        rest = text[m.end():].lstrip()
        if m.end() > m.start() and rest and not rest.startswith("["):
            end = m.end()
    return end


def cite(answer: str, passages: dict[int, Passage]) -> tuple[str, list[Citation]]:
    """The answer without the markers that do not hold, and the citations that do (in order of first use)."""
    cited: dict[int, Citation] = {}
    out: list[str] = []
    pos = 0
    for m in _SENTENCE.finditer(answer):
        # What lies between two sentences (a line break the pattern stops at) is kept as it is.
        out.append(answer[pos:m.start()])
        pos = m.end()
        sentence = m.group()
        claim = _MARK.sub("", sentence).strip()

        def keep(mark: re.Match[str], claim: str = claim) -> str:
            n = int(mark.group(1))
            passage = passages.get(n)
            if passage is None or not claim:
                return ""
            best = best_sentence(passage.text, (0, len(passage.text)), claim)
            # As in Deep Research: every number the sentence states must occur in the quote it cites.
            if best is None or not verify_quote(passage.text, best.text, best.start) or not numbers(claim) <= numbers(best.text):
                return ""
            # Each marker is checked against its own sentence; the citation keeps the first quote that held.
            cited.setdefault(n, Citation(n, passage.doc_id, passage.uri, best.text))
            return mark.group()

        out.append(_MARK.sub(keep, sentence))
    out.append(answer[pos:])
    return "".join(out), list(cited.values())
