"""The connector interface: a source lists items; the sync engine parses and indexes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cristal.knowledge.parse.document import ParsedDocument


@dataclass
class Item:
    """One document as its source sees it, before parsing.

    A connector gives either ``read`` (bytes that a parser will turn into a
    document, chosen by ``filename``) or ``parsed`` (a document it built itself,
    like a database row).

    With a ``fingerprint`` (an ETag, a message UID, an updated-at value) the
    sync compares that instead of the content and calls ``read`` only when it
    changed, so an unchanged object is never downloaded. ``meta`` is kept with
    the indexed document and handed back through ``Connector.remember`` on the
    next sync (validators for conditional requests, links, attachment names).
    """

    external_id: str
    uri: str
    filename: str
    acl: tuple[str, ...] | None
    mtime: float | None = None
    size: int = 0
    read: Callable[[], bytes] | None = None
    parsed: ParsedDocument | None = None
    fingerprint: str | None = None  # a cheap content hash when the connector has one
    meta: dict[str, str] | None = None


@dataclass(frozen=True)
class ScanProblem:
    """Something the connector could not list or read, or refuses; the sync reports it and goes on.

    ``keep_indexed``: whether a version indexed earlier stays (a file that is
    unreadable this time), or goes (a file the connector now refuses to read).
    """

    external_id: str
    reason: str
    keep_indexed: bool = True


@dataclass
class ScanScope:
    """What a scan could not see: documents under these prefixes must not be deleted."""

    unseen_prefixes: list[str] = field(default_factory=list)
    complete: bool = True


class Connector(Protocol):
    kind: str
    scope: ScanScope

    def scan(self) -> Iterator[Item | ScanProblem]:
        """Every document of the source, or a problem per thing that failed."""


class ConnectorClass(Protocol):
    """What ``CONNECTORS`` maps a kind to: a connector class, built from a source's URI, rules and options."""

    def __call__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> Connector: ...

    def validate(self, uri: str) -> str:
        """The URI as stored, or ``InvalidInput`` saying what is wrong with it."""
        ...


@runtime_checkable
class RemembersPrevious(Protocol):
    """A connector that wants what it stored last time (``Item.meta``), by external id, before ``scan``."""

    def remember(self, previous: dict[str, dict]) -> None: ...
