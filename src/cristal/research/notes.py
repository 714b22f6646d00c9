"""What a research run has gathered so far: the checkpointed notes.

Everything here is plain data that round-trips through JSON, so a run can be
saved after every step and resumed where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Evidence:
    """A sentence read from a document the asking user may read: ``quote == document.text[start:end]``."""

    subquestion: str
    doc_id: int
    title: str
    uri: str
    lang: str
    start: int
    end: int
    quote: str
    score: float
    heading: str = ""
    chunk_id: int | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.doc_id, self.start, self.end)


@dataclass
class Passage:
    """A chunk a search returned and the run chose to read."""

    subquestion: str
    doc_id: int
    chunk_id: int
    title: str
    uri: str
    lang: str
    start: int
    end: int
    score: float
    heading: str = ""


@dataclass
class Notes:
    question: str
    lang: str
    mode: str
    principal: str  # the label of who asked; a resume must come from the same person
    org: str
    subquestions: list[str] = field(default_factory=list)
    key_phrases: dict[str, str] = field(default_factory=dict)
    searches: list[dict[str, Any]] = field(default_factory=list)  # {"query", "subquestion", "hits", "round"}
    passages: list[Passage] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    phase: str = "start"  # start -> planned -> gathered -> reflected -> written
    rounds: int = 0
    steps: int = 0
    tokens: int = 0
    llm_calls: int = 0
    seconds: float = 0.0
    refused_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    suspicious: list[dict[str, Any]] = field(default_factory=list)
    draft: str | None = None  # the model's report text, once written
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notes:
        data = dict(data)
        data["passages"] = [Passage(**p) for p in data.get("passages", [])]
        data["evidence"] = [Evidence(**e) for e in data.get("evidence", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def evidence_for(self, subquestion: str) -> list[Evidence]:
        return [e for e in self.evidence if e.subquestion == subquestion]

    def searched(self, query: str) -> bool:
        return any(s["query"] == query for s in self.searches)
