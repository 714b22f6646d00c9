"""Bytes -> text for the text-like formats (plain text, Markdown, HTML, mail bodies).

The order is: a byte-order mark; ISO-2022-JP when its escape sequences are
present; UTF-8; the charset the file declares (HTML ``<meta>``, MIME
``charset=``); and then the legacy encodings our users actually have --
Shift_JIS (as Windows cp932), EUC-JP and Windows-1252 -- of which the most
plausible decoding wins. Content that is not text (NUL bytes, many control
characters) is refused with a :class:`ParseError` rather than cleaned up,
because silently stripping bytes from a binary file indexes garbage.
"""

from __future__ import annotations

import codecs
import re

from cristal.knowledge.parse.document import ParseError

# Windows-1252 leaves five bytes undefined; browsers map them to the C1 code
# points. We do the same so cp1252 never fails, and the C1 characters then
# count as suspicious in the plausibility score and the binary check.
_C1_HANDLER = "cristal-c1"


def _c1_fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return chr(err.object[err.start]), err.start + 1


codecs.register_error(_C1_HANDLER, _c1_fallback)

# Declared names that should be read with a Windows superset, as browsers and
# mail clients do: "Shift_JIS" files are nearly always cp932 (①, ～, NEC
# extensions), and "ISO-8859-1" is in practice Windows-1252 (€, curly quotes).
_ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}

_BOMS = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Control characters that never occur in real text (tab, newlines and form
# feed do), C1 controls, and U+FFFD (a file that already went through a bad
# conversion).
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f\ufffd]")
_MAX_BAD_SHARE = 0.01

_NEWLINES = re.compile(r"\r\n?")
_SCORE_SAMPLE = 64 * 1024

_HIRA_KATA = re.compile("[\u3041-\u30ff]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Characters that a wrong legacy decoding typically produces: C1 controls,
# rare Latin-1 symbols, half-width katakana, private-use code points.
_SUSPICIOUS = re.compile("[\x80-\x9f\xa4\xa6\xa8\xac\xaf\xb1\xb2\xb3\xb4\xb6\xb8\xb9\xba\xbc\xbd\xbe\xbf"
                         "\u02c6\u02dc\u2030\u2039\u203a\u0192\uff61-\uff9f\ue000-\uf8ff]")
# Three or more accented letters in a row is mojibake, not a European language.
_LATIN_RUN = re.compile("[\u00a0-\u017f\u2010-\u203a]{3,}")


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode a text file's bytes; newlines become ``\\n``.

    Raises :class:`ParseError` for binary or undecodable content.
    """
    text = _decode(data, declared)
    _refuse_binary(text)
    return _NEWLINES.sub("\n", text)


def _decode(data: bytes, declared: str | None) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise ParseError(f"invalid {codec.upper()} text: {exc.reason}") from None

    if b"\x00" in data:
        # Without a BOM a NUL byte means binary; UTF-16 without a BOM is
        # rare enough in our sources that guessing it is not worth a wrong
        # guess on a binary file.
        raise ParseError("binary content in a text file (NUL bytes)")

    if b"\x1b$" in data:
        # ISO-2022-JP is 7-bit, so it is also valid UTF-8 -- with escape
        # characters in it. Japanese mail still uses it.
        try:
            return data.decode("iso2022_jp_ext")
        except UnicodeDecodeError:
            pass

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass

    named = _codec_for(declared)
    if named is not None and named not in ("utf-8", "utf-8-sig"):
        try:
            return data.decode(named, errors=_errors(named))
        except UnicodeDecodeError:
            pass  # a wrong declaration is common; fall through to guessing

    return _best_legacy(data)


def _codec_for(declared: str | None) -> str | None:
    if not declared:
        return None
    name = declared.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _best_legacy(data: bytes) -> str:
    """The most plausible of cp932, EUC-JP and cp1252 (which never fails).

    Candidates are scored on a prefix (scoring is regex work over the whole
    text otherwise); the winner is then decoded in full, falling back to the
    next candidate if it fails further on.
    """
    sample = data[:_SCORE_SAMPLE]
    scored: list[tuple[float, int, str]] = []
    for rank, codec in enumerate(("cp932", "euc_jp", "cp1252")):
        decoder = codecs.getincrementaldecoder(codec)(errors=_errors(codec))
        try:
            # final=False: a multi-byte character cut by the prefix is not an error
            text = decoder.decode(sample, final=len(sample) == len(data))
        except UnicodeDecodeError:
            continue
        scored.append((_implausibility(text, japanese=codec != "cp1252"), rank, codec))
    for _, _, codec in sorted(scored):  # ties keep the earlier codec
        try:
            return data.decode(codec, errors=_errors(codec))
        except UnicodeDecodeError:
            continue
    return data.decode("cp1252", errors=_C1_HANDLER)


def _errors(codec: str) -> str:
    return _C1_HANDLER if codec == "cp1252" else "strict"


def _implausibility(text: str, *, japanese: bool) -> float:
    """Share of the non-ASCII characters that look like a wrong decoding."""
    non_ascii = len(_NON_ASCII.findall(text))
    if non_ascii == 0:
        return 0.0
    bad = len(_SUSPICIOUS.findall(text))
    if japanese:
        # Japanese prose is full of kana; kanji-only output is what random
        # Latin-1 bytes look like through a Japanese codec.
        if non_ascii > 4 and not _HIRA_KATA.search(text):
            bad += non_ascii // 2
    else:
        bad += sum(len(m) for m in _LATIN_RUN.findall(text))
    return bad / non_ascii


def _refuse_binary(text: str) -> None:
    bad = len(_BAD_CHARS.findall(text))
    if bad and bad > len(text) * _MAX_BAD_SHARE:
        raise ParseError("binary content in a text file (control characters)")


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def html_declared_charset(data: bytes) -> str | None:
    """The charset named in an HTML ``<meta>`` tag near the top, if any."""
    match = _META_CHARSET.search(data, 0, 4096)
    return match.group(1).decode("ascii") if match else None
