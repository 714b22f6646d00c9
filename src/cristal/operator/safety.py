"""The rules a run cannot talk its way out of: the domain allow-list, secrets, irreversible actions.

Irreversible actions are decided by their effect: every request an action makes
that can change something on a server (any method but GET, HEAD and OPTIONS: a
form post, a ``fetch``/XHR that PUTs, PATCHes or DELETEs, a beacon) is held in
the browser until a person approves it (``write_request``), unless the run allows
writes to that host. The word lists below are the second signal: they are named
in the approval's reason, and a link or a ``goto`` whose URL says "delete" (a
write some applications do by GET, which no method shows) pauses before it is
followed.

The allow-list itself lives in ``cristal.net.policy`` (shared with ``http`` workflow steps).

All three come from the run's configuration only. Page text reaches the model
as data; nothing the page says (or the model answers) can add a domain, reveal
a secret or switch off the approval of a state-changing request.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from cristal.errors import InvalidInput
from cristal.net.policy import AllowList, normalise_domain

__all__ = ["SAFE_METHODS", "AllowList", "Secrets", "body_view", "irreversible_click", "irreversible_key", "irreversible_url",
           "normalise_domain", "write_request"]

# ----------------------------------------------------------------------
# Secrets

# Secret variables of the worker a workflow may read: CRISTAL_SECRET_<ORG>_<NAME> (see cristal.operator.workflow).
SECRET_ENV_PREFIX = "CRISTAL_SECRET_"
_SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}")
MIN_SECRET_LENGTH = 4


class Secrets:
    """Values the model must never see: it writes ``{{NAME}}`` and the value is typed at fill time.

    ``redact`` replaces every occurrence of a value (also URL-encoded) by its
    placeholder; everything that leaves the browser for the model, the record
    or the audit trail goes through it.
    """

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = {}
        for name, value in (values or {}).items():
            if not _SECRET_NAME.match(name):
                raise InvalidInput(f"invalid secret name {name!r}: use letters, digits and _ (for example PASSWORD)")
            if len(value) < MIN_SECRET_LENGTH:
                raise InvalidInput(f"secret {name} is shorter than {MIN_SECRET_LENGTH} characters; "
                                   "it could not be told apart from page text")
            self._values[name] = value
        forms: list[tuple[str, str]] = []
        for name, value in self._values.items():
            for form in {value, quote_plus(value), quote(value, safe="")}:
                forms.append((form, "{{" + name + "}}"))
        self._forms = sorted(forms, key=lambda f: -len(f[0]))
        json_forms = {(json.dumps(form, ensure_ascii=False)[1:-1], placeholder) for form, placeholder in forms}
        json_forms |= {(json.dumps(form)[1:-1], placeholder) for form, placeholder in forms}
        self._json_forms = sorted(json_forms, key=lambda f: -len(f[0]))

    @classmethod
    def parse(cls, items: Iterable[str], environ: Mapping[str, str] | None = None) -> Secrets:
        """``NAME=VALUE`` items, or ``NAME`` alone to read the value from the environment variable NAME."""
        values: dict[str, str] = {}
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                if environ is None or name not in environ:
                    raise InvalidInput(f"--secret {name}: give NAME=VALUE, or set the environment variable {name}")
                value = environ[name]
            values[name] = value
        return cls(values)

    @property
    def names(self) -> list[str]:
        return sorted(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def values(self) -> list[str]:
        return list(self._values.values())

    def mapping(self) -> dict[str, str]:
        """Name -> value (handed, in this process only, to the step that types them)."""
        return dict(self._values)

    def substitute(self, text: str) -> str:
        """``text`` with each ``{{NAME}}`` replaced by the secret's value; an unknown name is an error."""

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._values:
                known = ", ".join(self.names) or "none"
                raise KeyError(f"unknown secret {{{{{name}}}}} (this run's secrets: {known})")
            return self._values[name]

        return _PLACEHOLDER.sub(one, text)

    def uses(self, text: str) -> list[str]:
        return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) in self._values]

    def redact(self, text: str) -> str:
        if not self._forms or not text:
            return text
        for form, placeholder in self._forms:
            if form in text:
                text = text.replace(form, placeholder)
        return text

    def redact_json(self, text: str) -> str:
        """``redact`` for a JSON document's text (values as JSON escapes them), before it is parsed."""
        if not self._json_forms or not text:
            return text
        for form, placeholder in self._json_forms:
            if form in text:
                text = text.replace(form, placeholder)
        return text

    def redact_all(self, value: Any) -> Any:
        """``redact`` applied to every string inside dicts, lists and tuples."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return self.redact_dict(value)
        if isinstance(value, (list, tuple)):
            return [self.redact_all(v) for v in value]
        return value

    def redact_dict(self, value: dict[str, Any]) -> dict[str, Any]:
        """``redact_all`` of a dict, typed as one."""
        return {self.redact_all(k): self.redact_all(v) for k, v in value.items()}


# ----------------------------------------------------------------------
# Irreversible-looking actions

# Buttons (and form submits): words that commit, pay, send or destroy. Latin words match at
# a word start, so inflections count (deleted, payment, absenden); CJK words match anywhere.
_BUTTON_WORDS = [
    # English
    "submit", "pay", "purchase", "buy", "checkout", "check out", "place order", "order now", "delete", "remove",
    "destroy", "erase", "wipe", "send", "transfer", "wire", "confirm", "approve", "reject", "decline", "publish",
    "unsubscribe", "deactivate", "terminate", "revoke", "book now", "execute", "approval", "removal",
    # German
    "absenden", "abschicken", "senden", "versenden", "löschen", "entfernen", "bestätigen", "genehmigen", "ablehnen",
    "bezahlen", "zahlen", "zahlungspflichtig", "kaufen", "bestellen", "überweisen", "freigeben", "einreichen",
    "veröffentlichen", "buchen", "kündigen",
    # French, Spanish, Italian
    "supprimer", "envoyer", "payer", "confirmer", "valider", "acheter", "commander",
    "eliminar", "borrar", "enviar", "pagar", "confirmar", "comprar", "aprobar",
    "elimina", "invia", "paga", "conferma", "acquista",
]
_CJK_WORDS = ["削除", "送信", "確定", "承認", "却下", "支払", "購入", "注文", "申請", "提出", "送金", "振込", "決済", "消去",
              "删除", "发送", "提交", "确认", "支付", "삭제", "전송", "제출", "결제"]
# Links and navigations: only words that a GET should never do but some apps still do.
_LINK_WORDS = ["delete", "remove", "destroy", "unsubscribe", "löschen", "entfernen"]


_LETTERS = "a-zäöüßàâçéèêëîïôûùüÿñáíóú"
# Inflections that keep the meaning: payment, deleted, sending, confirmation, transfers.
_SUFFIXES = "s|es|d|ed|ing|ting|ment|ments|en|e|n|t|ation|ion"


def _pattern(words: list[str], cjk: list[str]) -> re.Pattern[str]:
    latin = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    parts = [rf"(?<![{_LETTERS}])(?:{latin})(?:{_SUFFIXES})?(?![{_LETTERS}])"]
    if cjk:
        parts.append("|".join(re.escape(w) for w in cjk))
    return re.compile("|".join(parts))


_BUTTON_RE = _pattern(_BUTTON_WORDS, _CJK_WORDS)
_LINK_RE = _pattern(_LINK_WORDS, ["削除"])
_BUTTON_ROLES = {"button", "menuitem", "clickable", "option", "tab", "switch"}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower().replace("_", " ").replace("-", " ")


def _match(pattern: re.Pattern[str], *texts: str) -> str | None:
    for text in texts:
        m = pattern.search(_fold(text))
        if m:
            return m.group(0)
    return None


def irreversible_click(element: Mapping[str, Any]) -> str | None:
    """Why clicking ``element`` (an observation element) needs approval, or ``None``."""
    role = element.get("role", "")
    name = element.get("name", "")
    attrs = (element.get("fp") or {}).get("attrs") or {}
    if role == "link":
        word = _match(_LINK_RE, name, element.get("href", ""))
    elif role in _BUTTON_ROLES:
        texts = [name, attrs.get("name", ""), attrs.get("id", "")]
        if element.get("submit"):
            texts.append(_path(element.get("formAction", "")))
        word = _match(_BUTTON_RE, *texts)
    else:
        return None
    if word is None:
        return None
    return f"{role} {name!r} looks irreversible (matches {word!r})"


def irreversible_key(key: str, focused: Mapping[str, Any] | None) -> str | None:
    """Why pressing ``key`` on the focused element needs approval (a form submit by Enter, a button by Space)."""
    if not focused:
        return None
    k = key.strip().lower()
    if k in ("enter", "numpadenter", "return"):
        form = focused.get("form")
        is_button = (focused.get("tag") == "button" or focused.get("type") in ("submit", "button", "image")
                     or focused.get("role") == "button")
        if is_button:
            word = _match(_BUTTON_RE, focused.get("name", ""))
            if word:
                return f"Enter on {focused.get('name', '')!r} looks irreversible (matches {word!r})"
        if form and focused.get("tag") != "textarea":
            word = _match(_BUTTON_RE, form.get("submit", ""), _path(form.get("action", "")))
            if word:
                return f"Enter submits a form whose button {form.get('submit', '')!r} looks irreversible (matches {word!r})"
    if k in (" ", "space"):
        if focused.get("tag") == "button" or focused.get("role") == "button" or focused.get("type") in ("submit", "button"):
            word = _match(_BUTTON_RE, focused.get("name", ""))
            if word:
                return f"Space on {focused.get('name', '')!r} looks irreversible (matches {word!r})"
    return None


def irreversible_url(url: str) -> str | None:
    word = _match(_LINK_RE, _path(url))
    return f"going to {url!r} looks irreversible (matches {word!r})" if word else None


def _path(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.path} {parts.query}".replace("/", " ")


# ----------------------------------------------------------------------
# Requests that change state

# Methods HTTP defines as safe (RFC 9110, 9.2.1): they only read, so they never wait for a person.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_VIEW_CHARS = 600  # what an approver sees of a request body


def write_request(method: str) -> bool:
    """Whether a request with ``method`` may change state on its server (and so waits for approval)."""
    return method.upper() not in SAFE_METHODS


def body_view(data: bytes | None, limit: int = BODY_VIEW_CHARS) -> str:
    """A bounded, printable view of a request body for the approver (binary bytes replaced, the rest counted)."""
    if not data:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"
