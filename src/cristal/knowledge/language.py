"""Offline language detection for the languages Cristal indexes specially.

:func:`detect_language` answers ``"ja"``, ``"de"``, ``"en"`` or ``"und"``. It
needs no model and no dependency, and looks at a bounded prefix of the text so
it is cheap on the ingestion path:

- Japanese by script: kana and kanji against Latin letters (a Japanese
  character carries about as much as a short Latin word, so it weighs more).
  Han text without any kana is Chinese, not Japanese, unless it is short
  (a kanji-only title such as 議事録).
- German against English by function words ("und", "der" / "the", "of"),
  umlauts and ß, and -- for short titles without function words -- spelling
  patterns typical of each (sch, -ung, -keit / th, wh, -ing, -ly).
- Latin text dominated by French/Spanish/Italian/Dutch function words, and
  other scripts (Cyrillic, Hangul, ...), are ``"und"``.
"""

from __future__ import annotations

import re

_SAMPLE = 10_000

_KANA = re.compile("[\u3041-\u309f\u30a0-\u30ff\uff66-\uff9d]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile("[a-z\u00df-\u00f6\u00f8-\u00ff]+")
_UMLAUT = re.compile("[\u00e4\u00f6\u00fc\u00df]")

# Words that are frequent in one language and (nearly) absent from the other.
# Ambiguous ones ("in", "an", "so", "was", "will", "die", "man") are left out.
_DE_WORDS = frozenset(
    "der das und ist nicht ein eine einen einem einer eines des den dem mit von zu zum zur auf für sich "
    "auch es als werden wird wurde wurden sind bei nach aus wie oder aber wir sie ich du noch nur über "
    "durch vom haben hat kann können muss müssen bitte sehr gibt dass daß wenn im ihr ihre unsere unser "
    "dieser diese dieses keine kein mehr schon jetzt hier bis vor unter zwischen gegen ohne sowie soll "
    "sollen sollte mir mich uns ihnen weil damit jedoch alle neue neuen worden sein seine ihrer "
    "nächste werden wir bzw ggf sowie zwei drei".split()
)
_EN_WORDS = frozenset(
    "the and is are of to that this with for on be by it not or from have has were can you we they our "
    "your at which would should please all been their there these those its into about if but what "
    "when who how do does must may more than then also other each any only after before between without "
    "such where because he she my me us them his her new next two three".split()
)
# Romance and Dutch function words that English and German do not share.
_OTHER_WORDS = frozenset(
    "le la les et est une pour dans que qui pas sur avec ce cette sont au aux el los las y por para con "
    "una del il di che non het een van niet zijn op voor não em um uma".split()
)

# Spelling patterns, weighted by how strongly they point to one language.
_DE_PATTERNS = (
    (re.compile("sch"), 2.0),
    (re.compile(r"(?:ung|ungen|keit|heit|schaft|lich|chen)\b"), 2.0),
    (re.compile("tz|cht|pf"), 1.5),
    (re.compile(r"\b(?:ver|ge|be|zu)[a-z\u00df-\u00ff]{4,}"), 0.3),
    # Long compounds ("Urlaubsantrag") -- but not English -tion/-ment words.
    (re.compile(r"\b[a-z\u00df-\u00ff]{12,}(?<!tion|ment|ness|ship|ings|ance|ence)(?<!ity|ing|ies)\b"), 1.5),
    (re.compile("ei|ie|eu|au|z"), 0.7),
    (re.compile("k"), 0.3),
    (re.compile(r"en\b"), 0.5),
)
_EN_PATTERNS = (
    (re.compile("th|wh"), 2.0),
    (re.compile(r"(?:ing|ly|ness|ship|ance|ence|ity)\b"), 2.0),
    (re.compile("c(?![hk])"), 1.0),
    (re.compile("ea|ou|ee|oo|ai|oa|y|w"), 0.7),
    (re.compile("x|q"), 0.3),
)


def detect_language(text: str) -> str:
    """``"ja"``, ``"de"``, ``"en"`` or ``"und"`` (undetermined) for ``text``."""
    sample = text[:_SAMPLE]
    letters = len(_LETTER.findall(sample))
    if letters == 0:
        return "und"
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    latin = len(_LATIN.findall(sample))
    japanese = kana + han
    if japanese and japanese * 3 >= latin:
        # Long Han-only text is Chinese; a short one is most likely a
        # Japanese title in our users' documents.
        return "ja" if kana or han <= 30 else "und"
    if latin * 2 < letters:
        return "und"  # mostly another script: Cyrillic, Greek, Hangul, ...
    return _latin_language(sample.lower())


def _latin_language(lower: str) -> str:
    words = _WORD.findall(lower)
    if not words:
        return "und"
    de_hits = en_hits = other_hits = 0
    for word in words:
        if word in _DE_WORDS:
            de_hits += 1
        elif word in _EN_WORDS:
            en_hits += 1
        elif word in _OTHER_WORDS:
            other_hits += 1
    umlauts = len(_UMLAUT.findall(lower))
    de = 3.0 * de_hits + 2.0 * umlauts
    en = 3.0 * en_hits
    if other_hits >= 2 and 3.0 * other_hits > max(de, en):
        return "und"
    if de_hits + en_hits < 3:
        # Too few function words to decide (titles, headings): spelling.
        de += sum(weight * len(p.findall(lower)) for p, weight in _DE_PATTERNS)
        en += sum(weight * len(p.findall(lower)) for p, weight in _EN_PATTERNS)
    if de == en == 0:
        # Latin text with no German evidence at all; English is the
        # better bet among the languages our users write in.
        return "en"
    return "de" if de > en else "en"
