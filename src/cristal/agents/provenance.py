"""Where the text of a tool call's arguments came from: the user, or untrusted content.

Every text that entered the conversation from a tool result since the user's
last message is untrusted (documents, web pages, query results, MCP results:
anyone who can write them can address the model). Text the user wrote, the
agent's instructions and its tool configuration are trusted.

An argument *carries untrusted text* when it contains a word of at least
``MIN_WORD`` characters, or a run of ``NGRAM`` consecutive words, that occurs
in untrusted text and nowhere in trusted text. Words are compared lower-cased
(``\\w`` runs with ``.@+-/:`` inside, so addresses and URLs stay whole; runs of
Chinese, Japanese or Korean script are cut into overlapping pieces).
The rule errs on the side of stopping: a word the model could only have read in
a tool result stops the call (see ``agents.runtime``), even if the model meant well.

A fully hijacked model can hide what it read by encoding it (base64, reversed,
one character at a time), so no word of it matches. Hence the second rule,
``unvouched_in``: once untrusted text has entered the turn (``tainted``), a
value in a write's arguments may only be made of words trusted text said (the
user, the instructions, the tool configuration and definitions); argument names
do not count. What is left is a covert channel through the choice and order of
trusted words: ``policy.approve: always`` closes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MIN_WORD = 4
NGRAM = 3

_WORD = re.compile(r"\w(?:[\w.@+\-/:]*\w)?")


_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``; a run of Chinese, Japanese or Korean script (no spaces between
    words) counts as its overlapping pieces of ``MIN_WORD`` characters, so that part of it is still found."""
    out: list[str] = []
    for w in _WORD.findall(text):
        w = w.lower()
        if len(w) > MIN_WORD and _CJK.search(w):
            out += [w[i : i + MIN_WORD] for i in range(len(w) - MIN_WORD + 1)]
        else:
            out.append(w)
    return out


def _grams(ws: list[str]) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + NGRAM]) for i in range(len(ws) - NGRAM + 1)}


def values_of(value: Any) -> str:
    """Every string and number inside ``value`` but the keys of its mappings, joined by newlines."""
    if isinstance(value, dict):
        return "\n".join(values_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return "\n".join(values_of(v) for v in value)
    return flatten(value)


def flatten(value: Any) -> str:
    """Every string and number inside ``value`` (JSON arguments), joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(flatten(k) + "\n" + flatten(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "\n".join(flatten(v) for v in value)
    return "" if value is None else json.dumps(value)


@dataclass
class Provenance:
    """The trusted and untrusted words of one turn (one per ``run_turn``; never shared between turns)."""

    trusted_words: set[str] = field(default_factory=set)
    trusted_grams: set[tuple[str, ...]] = field(default_factory=set)
    untrusted_words: set[str] = field(default_factory=set)
    untrusted_grams: set[tuple[str, ...]] = field(default_factory=set)

    def trust(self, text: str) -> None:
        """Text from the user, the instructions or the tool configuration."""
        ws = words(text)
        self.trusted_words.update(ws)
        self.trusted_grams |= _grams(ws)

    @property
    def tainted(self) -> bool:
        """Untrusted text has entered the turn."""
        return bool(self.untrusted_words or self.untrusted_grams)

    def distrust(self, text: str) -> None:
        """Text that entered the conversation from a tool result."""
        ws = words(text)
        self.untrusted_words.update(w for w in ws if len(w) >= MIN_WORD)
        self.untrusted_grams |= _grams(ws)

    def untrusted_in(self, arguments: Any) -> list[str]:
        """The pieces of ``arguments`` that came from untrusted content (empty: none did), at most five."""
        ws = words(flatten(arguments))
        found = [w for w in dict.fromkeys(ws) if w in self.untrusted_words and w not in self.trusted_words]
        found += [" ".join(g) for g in _grams(ws) if g in self.untrusted_grams and g not in self.trusted_grams
                  and not all(w in self.trusted_words for w in g)]
        return found[:5]

    def unvouched_in(self, arguments: Any) -> list[str]:
        """The words of the argument values that no trusted text said (empty: all were), at most five."""
        return [w for w in dict.fromkeys(words(values_of(arguments))) if w not in self.trusted_words][:5]
