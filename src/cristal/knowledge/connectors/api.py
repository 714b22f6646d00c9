"""The API connector: records of a REST/JSON API, described by a small mapping file.

``--uri`` is the API's base URL; the settings file (``--config``) says which
endpoint lists the records, how it pages, and which fields of a record become
what::

    endpoint: /api/v1/articles          # relative to --uri
    query: {status: published}          # fixed query parameters
    items: data.items                   # where the list is in each answer (default: the answer itself)
    id: id                              # required: the record's identity
    title: title
    text: [summary, body]               # the fields that become the text, in order
    fields: [status, owner.name]        # shown as "name: value" lines (searchable, not prose)
    updated: updated_at                 # changes when the record changes (default: a hash of the mapped fields)
    url: links.html                     # the record's own address, if it has one
    acl: [visibility.groups]            # fields naming who may read it (a string or a list)
    pagination: {style: cursor, param: cursor, cursor: meta.next_cursor}

Fields are dotted paths into a record. Pagination styles: ``page`` (``param``
counts up from ``start``), ``offset`` (``param`` moves by the records
received), ``cursor`` (the next cursor is at ``cursor`` in the answer),
``next_link`` (the next URL is at ``next`` in the answer, or in the ``Link``
header when ``next: header``) and ``none``. ``size_param``/``size`` ask for a
page size.

Change detection: the ``updated`` field (or the hash of every mapped field) is
the fingerprint, so an unchanged record is not re-indexed. Access rules are
recomputed from the ``acl`` fields on every sync, so a permission change at
the source applies even when ``updated`` does not move.

Bad answers: ``429``/``503`` with ``Retry-After`` are waited out up to
``max_wait_seconds``; a longer wait, an error status, an answer that is not
JSON, a list that is no longer where the mapping says (the API changed its
shape mid-sync), a pagination that repeats itself or exceeds ``max_pages``
stop the listing with that reason: the records received so far are synced
and nothing is deleted. A record without its ``id`` or without any text is
reported on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cristal.errors import InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.connectors.fetch import Fetched, Fetcher, FetchLimits, FetchRefused, host_key, normalize_url
from cristal.knowledge.connectors.settings import MissingCredential, PrincipalMap, SourceSettings, env_headers, unreachable
from cristal.knowledge.parse.builder import DocumentBuilder, add_paragraphs
from cristal.knowledge.parse.document import ParseError

_PATH = re.compile(r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)
MAX_TEXT_CHARS = 1_000_000


def _check_path(value: str | None) -> str | None:
    if value is not None and not _PATH.match(value):
        raise ValueError(f"{value!r} is not a field path (names joined by dots, like data.items)")
    return value


class Pagination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    style: Literal["page", "offset", "cursor", "next_link", "none"] = "none"
    param: str | None = None
    start: int = 1
    size_param: str | None = None
    size: int | None = Field(None, ge=1, le=10_000)
    cursor: str | None = None
    next: str | None = None

    @field_validator("cursor")
    @classmethod
    def _cursor_path(cls, value: str | None) -> str | None:
        return _check_path(value)


class ApiSettings(SourceSettings):
    endpoint: str = Field(min_length=1)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    items: str | None = None
    id: str
    title: str | None = None
    text: list[str] = Field(min_length=1)
    fields: list[str] = Field(default_factory=list)
    updated: str | None = None
    url: str | None = None
    acl: list[str] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)
    allowed_hosts: list[str] = Field(default_factory=list)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    max_pages: int = Field(1000, ge=1, le=1_000_000)
    max_items: int = Field(100_000, ge=1, le=10_000_000)
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_wait_seconds: float = Field(60.0, ge=0, le=3600)
    timeout_seconds: float = Field(30.0, gt=0, le=600)

    @field_validator("text", "fields", "acl", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("items", "id", "title", "updated", "url")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return _check_path(value)

    @field_validator("text", "fields", "acl")
    @classmethod
    def _paths(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_path(value)
        return values

    @field_validator("pagination")
    @classmethod
    def _complete(cls, value: Pagination) -> Pagination:
        if value.style in ("page", "offset", "cursor") and not value.param:
            raise ValueError(f"style {value.style} needs param (the query parameter to send)")
        if value.style == "cursor" and not value.cursor:
            raise ValueError("style cursor needs cursor (where the next cursor is in the answer)")
        if value.style == "next_link" and not value.next:
            raise ValueError("style next_link needs next (a field path, or header for the Link header)")
        if value.style == "next_link" and value.next != "header":
            _check_path(value.next)
        return value


_MISSING = object()


def pick(value: Any, path: str) -> Any:
    """The value at a dotted path (``_MISSING`` when a step is absent)."""
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value if _text(v))
    if isinstance(value, (dict, bool, int, float)):
        return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
    return str(value)


class _ShapeChanged(Exception):
    pass


class ApiConnector:
    kind = "api"
    settings_model = ApiSettings

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        self.base = normalize_url(uri)
        self.settings = ApiSettings.model_validate((options or {}).get("config") or {})
        self.endpoint = urljoin(self.base, self.settings.endpoint)
        self.allowed = frozenset(self.settings.allowed_hosts or {host_key(self.base)})
        self.acl = acl
        self.map = PrincipalMap(self.settings.principals)
        self.scope = ScanScope()

    @staticmethod
    def validate(uri: str) -> str:
        parts = urlsplit(uri.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"invalid api source {uri!r}: give the API's base URL (http or https)")
        return normalize_url(uri)

    def scan(self) -> Iterator[Item | ScanProblem]:
        s = self.settings
        try:
            headers = env_headers(s.headers_from_env)
        except MissingCredential as exc:
            yield unreachable(self.scope, self.endpoint, str(exc))
            return
        headers.setdefault("Accept", "application/json")
        limits = FetchLimits(max_bytes=s.max_response_bytes, max_redirects=5, timeout_seconds=s.timeout_seconds,
                             max_wait_seconds=s.max_wait_seconds)
        fetcher = Fetcher(self.allowed, headers, limits)
        try:
            yield from self._pages(fetcher)
        finally:
            fetcher.close()
        yield from self.map.problems()

    def _stop(self, page: int, reason: str) -> ScanProblem:
        self.scope.complete = False
        return ScanProblem(self.endpoint, f"listing stopped on page {page}: {reason}; records received so far are synced, "
                                          "nothing deleted")

    def _pages(self, fetcher: Fetcher) -> Iterator[Item | ScanProblem]:
        s, p = self.settings, self.settings.pagination
        number, offset, cursor, url = p.start, 0, None, None
        seen: set[str] = set()
        received = 0
        for page in range(1, s.max_pages + 1):
            if url is None:
                query: dict[str, Any] = dict(s.query)
                if p.size_param and p.size:
                    query[p.size_param] = p.size
                if p.style == "page":
                    query[p.param or "page"] = number
                elif p.style == "offset":
                    query[p.param or "offset"] = offset
                elif p.style == "cursor" and cursor is not None:
                    query[p.param or "cursor"] = cursor
                url = _with_query(self.endpoint, query)
            if url in seen:
                yield self._stop(page, f"the pagination repeats itself ({url})")
                return
            seen.add(url)
            try:
                got = fetcher.get(url)
                body, records = self._records(got)
            except FetchRefused as exc:
                yield self._stop(page, str(exc))
                return
            except _ShapeChanged as exc:
                yield self._stop(page, f"the answer changed shape: {exc}")
                return
            for record in records:
                if received >= s.max_items:
                    yield self._stop(page, f"more than {s.max_items} records (max_items)")
                    return
                received += 1
                yield self._item(record, page)
            if not records:
                return
            url = None
            if p.style == "none":
                return
            if p.style == "page":
                number += 1
            elif p.style == "offset":
                offset += len(records)
            elif p.style == "cursor":
                found = pick(body, p.cursor or "")
                if found is _MISSING or found in (None, ""):
                    return
                cursor = str(found)
            elif p.style == "next_link":
                link = _link_next(got) if p.next == "header" else pick(body, p.next or "")
                if link is _MISSING or not link:
                    return
                url = normalize_url(urljoin(got.url, str(link)))
        yield self._stop(s.max_pages + 1, f"more than {s.max_pages} pages (max_pages)")

    def _records(self, got: Fetched) -> tuple[Any, list]:
        if got.status != 200:
            if got.status == 429:
                raise FetchRefused("rate limited (HTTP 429) and no Retry-After within the allowed wait")
            raise FetchRefused(f"HTTP {got.status}")
        try:
            body = json.loads(got.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _ShapeChanged(f"not JSON ({got.content_type or 'no content type'})") from None
        records = pick(body, self.settings.items) if self.settings.items else body
        where = f"`{self.settings.items}`" if self.settings.items else "the answer"
        if records is _MISSING:
            raise _ShapeChanged(f"{where} is missing")
        if not isinstance(records, list):
            raise _ShapeChanged(f"{where} is not a list (got {type(records).__name__})")
        if any(not isinstance(r, dict) for r in records):
            raise _ShapeChanged(f"{where} holds something other than records")
        return body, records

    def _item(self, record: dict, page: int) -> Item | ScanProblem:
        s = self.settings
        identity = pick(record, s.id)
        if identity is _MISSING or identity in (None, "") or isinstance(identity, (dict, list)):
            # Not knowing which record this is, the sync must not delete the one it may have replaced.
            self.scope.complete = False
            return ScanProblem(f"{self.endpoint} (page {page})", f"a record without `{s.id}`: not indexed, nothing deleted")
        key = str(identity)
        title = _text(pick(record, s.title)) if s.title else ""
        builder = DocumentBuilder()
        heading = title.strip() or f"{urlsplit(self.endpoint).path.rstrip('/').rsplit('/', 1)[-1]} {key}"
        builder.heading(heading, 0)
        lines = [f"{f}: {_text(pick(record, f))}" for f in s.fields if _text(pick(record, f))]
        if lines:
            builder.add("table", "\n".join(lines))
        text = "\n\n".join(t for t in (_text(pick(record, f)).strip() for f in s.text) if t)
        if not text and not lines:
            return ScanProblem(key, f"no text in {', '.join(f'`{f}`' for f in s.text)}")
        if len(text) > MAX_TEXT_CHARS:
            return ScanProblem(key, f"text longer than {MAX_TEXT_CHARS} characters")
        add_paragraphs(builder, text)
        try:
            parsed = builder.build(filename=key, title=heading)
        except ParseError as exc:
            return ScanProblem(key, str(exc))
        principals: list[str] | None = None
        for field in s.acl:
            value = pick(record, field)
            if value is _MISSING or value is None:
                continue
            names = value if isinstance(value, list) else str(value).split(",")
            principals = (principals or []) + [str(n).strip() for n in names if str(n).strip()]
        updated = pick(record, s.updated) if s.updated else _MISSING
        if updated is _MISSING or updated in (None, ""):
            mapped = [pick(record, f) for f in [s.id, s.title or "", *s.text, *s.fields, s.url or ""] if f]
            fingerprint = "hash:" + hashlib.sha256(json.dumps(mapped, default=str, sort_keys=True).encode()).hexdigest()
        else:
            fingerprint = f"updated:{updated}"
        link = _text(pick(record, s.url)) if s.url else ""
        return Item(
            external_id=key, uri=urljoin(self.endpoint, link) if link else f"{self.endpoint}#{key}", filename=f"{key}.json",
            acl=self.acl if principals is None else self.map.rules(principals),
            size=len(parsed.text.encode()), parsed=parsed, fingerprint=fingerprint,
        )


def _with_query(url: str, query: dict[str, Any]) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{extra}" if parts.query else extra, ""))


def _link_next(got: Fetched) -> str | None:
    match = _LINK_NEXT.search(got.headers.get("link", ""))
    return match.group(1) if match else None
