"""What the routes of one server share, hung off the FastAPI app (``app.state.cristal``), never off a module.

The routers read it with ``state_of(request)``; ``app.py`` builds it. Keeping
it here, below both, means the app imports its routers and the routers import
this module, with no cycle between the app and its routes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from cristal.config import Settings
from cristal.db import Database
from cristal.identity.signin import ProviderDocuments
from cristal.server.envelope import MAX_BODY_BYTES
from cristal.server.errors import ApiError
from cristal.server.refusals import Refusals

if TYPE_CHECKING:  # heavy imports, loaded on first use only
    from cristal.knowledge.search import Searcher
    from cristal.models.gateway import Gateway


@dataclass
class Limits:
    """What one request may cost."""

    max_body_bytes: int = MAX_BODY_BYTES
    research_max_seconds: float = 120.0
    research_max_steps: int = 30
    research_max_tokens: int = 60_000
    research_concurrency: int = 4  # runs at once; each holds a server thread for up to research_max_seconds
    agent_turn_concurrency: int = 8  # agent turns at once (REST and agent: models); each holds a server thread
    # Refusals recorded in full per window (the rest are counted and summarized; see refusals.py).
    audit_window_seconds: int = 300
    audit_failed_keys_per_source: int = 10  # per source address, per organization the key names
    audit_failed_keys_per_org: int = 100  # all sources together, per organization (or the installation)
    audit_not_found_per_caller: int = 20


@dataclass
class ServerState:
    """What the routes share: the database, settings, and lazily built heavy objects."""

    db: Database
    settings: Settings
    limits: Limits = field(default_factory=Limits)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _searcher: Searcher | None = None
    _gateway: Gateway | None = None
    _ui_page: tuple[str, str] | None = None
    research_slots: threading.BoundedSemaphore = field(init=False)
    agent_turn_slots: threading.BoundedSemaphore = field(init=False)
    refusals: Refusals = field(init=False)
    oidc_documents: ProviderDocuments = field(default_factory=ProviderDocuments)  # providers' discovery and keys

    def __post_init__(self) -> None:
        self.research_slots = threading.BoundedSemaphore(self.limits.research_concurrency)
        self.agent_turn_slots = threading.BoundedSemaphore(self.limits.agent_turn_concurrency)
        limits = self.limits
        self.refusals = Refusals(self.db, window_seconds=limits.audit_window_seconds,
                                 failed_keys_per_source=limits.audit_failed_keys_per_source,
                                 failed_keys_per_org=limits.audit_failed_keys_per_org,
                                 not_found_per_caller=limits.audit_not_found_per_caller)

    def searcher(self) -> Searcher:
        """One ``Searcher`` for the process, so the embedding model and matrix are loaded once."""
        from cristal.knowledge.indexes import Embedders
        from cristal.knowledge.search import Searcher
        from cristal.models.embedder import endpoint_embedders

        with self._lock:
            if self._searcher is None:
                # The gateway is fetched when an endpoint index is first searched (``gateway()`` takes this lock).
                self._searcher = Searcher(self.db, Embedders(endpoint_embedders(self.gateway)))
            return self._searcher

    def gateway(self) -> Gateway:
        """One LLM gateway for the process: it pools the connections to each endpoint."""
        from cristal.models.gateway import Gateway

        with self._lock:
            if self._gateway is None:
                self._gateway = Gateway(self.settings, self.db)
            return self._gateway

    def ui_page(self, build: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        """The web UI's page and its Content-Security-Policy, built once per server."""
        with self._lock:
            if self._ui_page is None:
                self._ui_page = build()
            return self._ui_page

    def close(self) -> None:
        with self._lock:
            gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.close()


@contextmanager
def slot(slots: threading.BoundedSemaphore, busy: str) -> Iterator[None]:
    """Hold one of ``slots`` for the block; 429 (``Retry-After: 10``) saying ``busy`` when all are taken.

    Refused rather than queued: a waiting request would hold a server thread too.
    """
    take_slot(slots, busy)
    try:
        yield
    finally:
        slots.release()


def take_slot(slots: threading.BoundedSemaphore, busy: str) -> None:
    """Take one of ``slots`` (the caller releases it, maybe from another thread); 429 as ``slot`` when none is free."""
    if not slots.acquire(blocking=False):
        raise ApiError(429, busy, headers={"Retry-After": "10"})


def state_of(request: Request) -> ServerState:
    """The state of the app serving ``request``."""
    state: ServerState = request.app.state.cristal
    return state
