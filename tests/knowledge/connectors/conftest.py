"""Fixtures for the connector tests: local sites on loopback, and search as a given employee."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cristal.db import Database
from cristal.identity.directory import resolve_principal
from cristal.knowledge.search import Searcher

from .site import Site


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


@pytest.fixture
def other_site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


def found(db: Database, email: str, query: str, org: str = "acme") -> set[str]:
    """The URIs of the documents ``email`` finds for ``query``, by keyword search."""
    with db.session() as s:
        principal = resolve_principal(s, org, email)
    return {hit.uri for hit in Searcher(db).search(principal, query, limit=50, mode="keyword")}
