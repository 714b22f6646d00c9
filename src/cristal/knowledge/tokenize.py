"""Keyword tokens for English, German and Japanese, the same for documents and queries.

- Text is NFKC-normalised and case-folded (``ß`` folds to ``ss``, full-width
  letters to ASCII), so spelling variants meet.
- Latin-script words are stemmed with Snowball (PyStemmer) in the text's
  language; a short stop-word list keeps ``OR`` queries selective.
- Japanese runs (no spaces) are segmented by Sudachi, keeping normalised forms
  of content words (particles, auxiliaries and symbols are dropped).

German compounds are handled by the trigram index next to these tokens (see
``keyword.py``), not here.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any

import Stemmer

_JA_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005\u30fc]+")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)

_STOP = {
    "en": set(
        "a an and are as at be but by for from has have how i in is it its of on or that the this to was were what "
        "when where which who why will with do does did can you your we our they their he she his her there".split()
    ),
    "de": set(
        "der die das den dem des ein eine einer eines einem einen und oder aber ist sind war waren wird werden "
        "wie was wer wo wann warum mit von zu zum zur im in am an auf aus bei für fur über uber unter nach vor "
        "nicht auch als es sie er ich wir ihr sich dass dass so nur noch".split()
    ),
}
_STEMMER_LANG = {"en": "english", "de": "german"}
_JA_SKIP_POS = {"助詞", "助動詞", "補助記号", "空白", "記号"}

_local = threading.local()


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _stemmer(lang: str) -> Stemmer.Stemmer | None:
    name = _STEMMER_LANG.get(lang)
    if name is None:
        return None
    cache = getattr(_local, "stemmers", None)
    if cache is None:
        cache = _local.stemmers = {}
    if name not in cache:
        cache[name] = Stemmer.Stemmer(name)
    return cache[name]


@lru_cache(maxsize=1)
def _sudachi_dictionary() -> Any:  # a sudachipy.Dictionary (sudachipy has no type hints)
    from sudachipy import Dictionary

    return Dictionary(dict="core")


def _japanese_tokens(run: str) -> list[str]:
    # Sudachi tokenizers are not thread-safe: one per thread.
    tokenizer = getattr(_local, "sudachi", None)
    if tokenizer is None:
        tokenizer = _local.sudachi = _sudachi_dictionary().tokenizer()
    from sudachipy import SplitMode

    out = []
    for m in tokenizer.tokenize(run, SplitMode.A):
        if m.part_of_speech()[0] in _JA_SKIP_POS:
            continue
        form = m.normalized_form()
        if form:
            out.append(form)
    return out


def tokens(text: str, lang: str = "en") -> list[str]:
    """The keyword tokens of ``text`` written in ``lang`` (``en``, ``de``, ``ja`` or other)."""
    text = normalize(text)
    stop = _STOP.get(lang, _STOP["en"])
    stemmer = _stemmer(lang) or _stemmer("en")
    out: list[str] = []
    pos = 0
    for match in _JA_RUN.finditer(text):
        out.extend(_latin_tokens(text[pos : match.start()], stop, stemmer))
        out.extend(_japanese_tokens(match.group()))
        pos = match.end()
    out.extend(_latin_tokens(text[pos:], stop, stemmer))
    return out


def _latin_tokens(text: str, stop: set[str], stemmer: Stemmer.Stemmer | None) -> list[str]:
    words = [w for w in _WORD.findall(text) if w not in stop]
    if stemmer is not None:
        words = stemmer.stemWords(words)
    return words


def terms(text: str, lang: str) -> str:
    """Tokens joined by spaces, as stored in ``chunks.terms``."""
    return " ".join(tokens(text, lang))
