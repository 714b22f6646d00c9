"""Breaking a question into sub-questions.

Extractive mode splits the question at clause boundaries (several questions,
"and"/"und"/"および" joining two full clauses) and derives a key-phrase query
for each sub-question; LLM mode asks the model for a plan as structured output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from cristal.knowledge.tokenize import _STOP  # the same stop words the index uses

MAX_SUBQUESTIONS = 5

_QUESTION_SPLIT = re.compile(r"(?<=[?？])\s*|;\s*|；")
_CONJUNCTION = re.compile(r"\s*(?:,\s*)?\b(?:and also|and|as well as|und|sowie|außerdem)\b\s+|、?(?:および|また|そして)、?", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_JA_PARTICLES = re.compile(r"[はがをにでとのへもやかね]|について|による|ですか|ますか|でしょうか|ください"
                           r"|とは|どの|どれ|何|いつ|いくら|ような")
_QUESTION_WORDS = {
    "what", "which", "how", "when", "who", "where", "why", "much", "many", "long", "does", "did", "is", "are",
    "was", "wie", "wann", "wer", "wo", "welche", "welcher", "welches", "hoch", "viel", "viele", "lange",
    "gilt", "gibt", "maximum", "please", "tell", "me",
}


@dataclass
class Plan:
    subquestions: list[str]
    # One extra key-phrase query per sub-question (searched when the first search finds too little).
    key_phrases: dict[str, str] = field(default_factory=dict)
    source: str = "extractive"


class PlanModel(BaseModel):
    """What the model returns for a plan."""

    subquestions: list[str] = Field(description="1 to 5 self-contained sub-questions, in the question's language")


def key_phrases(text: str, lang: str) -> str:
    """The question without question words and stop words: a keyword query."""
    if lang == "ja":
        parts = [p for p in _JA_PARTICLES.split(re.sub(r"[？?。、「」]", " ", text)) if p.strip()]
        return " ".join(p.strip() for p in parts if len(p.strip()) > 1) or text
    stop = _STOP.get(lang, set()) | _STOP["en"] | _QUESTION_WORDS
    words = [w for w in _WORD.findall(text) if w.casefold() not in stop and (len(w) > 2 or w.isdigit() or w.isupper())]
    return " ".join(words) or text


def _content_words(text: str, lang: str) -> int:
    return len(key_phrases(text, lang).split()) if lang != "ja" else len(text)


def extractive_plan(question: str, lang: str) -> Plan:
    """Sub-questions from the question's clauses; the whole question comes first when it was split."""
    parts: list[str] = []
    for piece in _QUESTION_SPLIT.split(question):
        piece = piece.strip()
        if not piece:
            continue
        clauses = [c.strip(" ,、") for c in _CONJUNCTION.split(piece) if c and c.strip(" ,、")]
        # Only split where each side is a clause of its own (2+ content words), not "Düsseldorf and Munich".
        minimum = 6 if lang == "ja" else 2
        if len(clauses) > 1 and all(_content_words(c, lang) >= minimum for c in clauses):
            parts.extend(clauses)
        else:
            parts.append(clauses[0] if len(clauses) == 1 else piece)
    parts = list(dict.fromkeys(parts))
    subquestions = parts if len(parts) == 1 else [question.strip(), *parts]
    subquestions = subquestions[:MAX_SUBQUESTIONS]
    return Plan(subquestions, {q: key_phrases(q, lang) for q in subquestions}, "extractive")


def clean_llm_plan(question: str, proposed: list[str], lang: str) -> Plan:
    """The model's sub-questions, deduplicated and bounded; the question itself when the model proposed none."""
    seen: list[str] = []
    for item in proposed:
        item = " ".join(str(item).split())[:300]
        if item and item not in seen:
            seen.append(item)
    if not seen:
        seen = [question.strip()]
    seen = seen[:MAX_SUBQUESTIONS]
    return Plan(seen, {q: key_phrases(q, lang) for q in seen}, "llm")
