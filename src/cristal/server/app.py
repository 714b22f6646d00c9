"""The app factory: ``create_app(db, settings)`` builds the ASGI app that ``cristal serve`` runs.

The HTTP layer sits beside the CLI at the top of the layers: every route
authenticates the caller's API key and then calls the same service functions
as the CLI, which authorize and audit as that employee. Handlers are plain
``def`` functions on purpose: the services are synchronous (SQLAlchemy,
DBOS, the ``openai`` client), so FastAPI runs them in its thread pool and the
event loop stays free for other requests.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request

from cristal.config import Settings
from cristal.db import Database
from cristal.server.envelope import MAX_BODY_BYTES, Envelope
from cristal.server.errors import install_error_handlers

@dataclass
class Limits:
    """What one request may cost."""

    max_body_bytes: int = MAX_BODY_BYTES
    research_max_seconds: float = 120.0
    research_max_steps: int = 30
    research_max_tokens: int = 60_000
    research_concurrency: int = 4  # runs at once; each holds a server thread for up to research_max_seconds


@dataclass
class ServerState:
    """What the routes share: the database, settings, and lazily built heavy objects."""

    db: Database
    settings: Settings
    limits: Limits = field(default_factory=Limits)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _searcher: object | None = None
    _gateway: object | None = None
    research_slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.research_slots = threading.BoundedSemaphore(self.limits.research_concurrency)

    def searcher(self):  # type: ignore[no-untyped-def]
        """One ``Searcher`` for the process, so the embedding model and matrix are loaded once."""
        from cristal.knowledge.search import Searcher

        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(self.db)
            return self._searcher

    def gateway(self):  # type: ignore[no-untyped-def]
        """One LLM gateway for the process: it pools the connections to each endpoint."""
        from cristal.models.gateway import Gateway

        with self._lock:
            if self._gateway is None:
                self._gateway = Gateway(self.settings, self.db)
            return self._gateway

    def close(self) -> None:
        with self._lock:
            gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.close()  # type: ignore[attr-defined]


def state_of(request: Request) -> ServerState:
    return request.app.state.cristal


def create_app(db: Database, settings: Settings, *, limits: Limits | None = None) -> FastAPI:
    """The whole HTTP surface: ``/api/v1`` (REST), ``/v1`` (OpenAI-compatible) and the web UI at ``/``."""
    from cristal.server import approvals, audit, me, openai_api, research, runs, search, ui

    state = ServerState(db, settings, limits or Limits())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Cristal",
        version="1",
        docs_url=None,  # the interactive docs load scripts from a CDN; Cristal works offline
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.cristal = state
    install_error_handlers(app)
    for module in (me, search, research, runs, approvals, audit):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(openai_api.router, prefix="/v1")
    app.include_router(ui.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(Envelope, max_body_bytes=state.limits.max_body_bytes)
    return app
