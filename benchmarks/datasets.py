"""Loading the retrieval benchmark sets of /work/shared/data (see its README.md).

Each paragraph is a document; each question's gold document is the paragraph
it was asked about. Paragraph i of XQuAD-en is the translation of paragraph i
of XQuAD-de, so English questions over the German paragraphs are a
cross-lingual set. JSQuAD contexts start with ``TITLE [SEP] ``: the title is
split off and becomes the document's title.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

DATA = Path(os.environ.get("CRISTAL_BENCH_DATA", "/work/shared/data"))


@dataclass(frozen=True)
class Paragraph:
    idx: int
    title: str  # "" when the set has no usable title
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    gold: int  # index of the gold paragraph


@dataclass(frozen=True)
class Corpus:
    name: str
    lang: str
    paragraphs: list[Paragraph]
    questions: list[Question]


def _squad(path: Path) -> list[tuple[str, str, list[str]]]:
    """(article title, context, questions) per paragraph, in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(a["title"], p["context"], [q["question"] for q in p["qas"]]) for a in data for p in a["paragraphs"]]


def load_xquad(lang: str) -> Corpus:
    """XQuAD in ``de`` or ``en``; its article titles are English page names in every language, so they are dropped."""
    rows = _squad(DATA / "xquad" / f"xquad.{lang}.json")
    paragraphs = [Paragraph(i, "", context) for i, (_, context, _) in enumerate(rows)]
    questions = [Question(q, i) for i, (_, _, qs) in enumerate(rows) for q in qs]
    return Corpus(f"XQuAD-{lang}", lang, paragraphs, questions)


def load_jsquad() -> Corpus:
    rows = _squad(DATA / "jsquad" / "valid-v1.3.json")
    paragraphs = []
    for i, (article, context, _) in enumerate(rows):
        title, sep, body = context.partition(" [SEP] ")
        if not sep:
            title, body = article, context
        paragraphs.append(Paragraph(i, title.strip(), body.strip()))
    questions = [Question(q, i) for i, (_, _, qs) in enumerate(rows) for q in qs]
    return Corpus("JSQuAD", "ja", paragraphs, questions)


def sample(questions: list[Question], n: int | None, seed: int = 13) -> list[Question]:
    """``n`` questions drawn reproducibly (all of them when ``n`` is None or too large), in a stable order."""
    if n is None or n >= len(questions):
        return list(questions)
    picked = sorted(random.Random(seed).sample(range(len(questions)), n))
    return [questions[i] for i in picked]
