"""The app factory: ``create_app(db, settings)`` builds the ASGI app that ``cristal serve`` runs.

The HTTP layer sits beside the CLI at the top of the layers: every route
authenticates the caller (an API key, or the web app's session) and then calls the same service functions
as the CLI, which authorize and audit as that employee. Handlers are plain
``def`` functions on purpose: the services are synchronous (SQLAlchemy,
DBOS, the ``openai`` client), so FastAPI runs them in its thread pool and the
event loop stays free for other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from starlette.routing import Route

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError
from cristal.server import agents, approvals, audit, conversations, me, openai_api, research, runs, search, signin, ui
from cristal.server.envelope import Envelope
from cristal.server.errors import install_error_handlers
from cristal.server.mcp import McpEndpoint
from cristal.server.openapi import install_openapi
from cristal.server.state import Limits, ServerState


def create_app(db: Database, settings: Settings, *, limits: Limits | None = None) -> FastAPI:
    """The whole HTTP surface: ``/api/v1`` (REST), ``/v1`` (OpenAI-compatible), ``/mcp`` (MCP) and the web UI at ``/``."""
    state = ServerState(db, settings, limits or Limits())
    mcp_endpoint = McpEndpoint(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(state.refusals.sweep_periodically())
        try:
            async with mcp_endpoint.manager.run():  # the MCP transport's task group lives as long as the server
                yield
        finally:
            sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await sweeper
            await asyncio.to_thread(state.refusals.sweep)
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
    install_error_handlers(app, on_not_found=lambda request, exc: _not_found(state, request, exc))
    install_openapi(app)
    for module in (me, search, research, agents, conversations, runs, approvals, audit):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(openai_api.router, prefix="/v1")
    app.include_router(signin.router)
    app.include_router(ui.router)
    # An ASGI app, not a FastAPI route: the MCP SDK's transport speaks HTTP itself (JSON-RPC over POST). POST only:
    # the server is stateless, so there is no stream to GET (it would stay open, idle) and no session to DELETE.
    app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint, methods=["POST"], include_in_schema=False))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(Envelope, max_body_bytes=state.limits.max_body_bytes)
    return app


def _not_found(state: ServerState, request: Request, exc: CristalError) -> None:
    """A 404 for an authenticated caller is probing, or a mistake; either way it is recorded (rate-limited)."""
    caller = getattr(request.state, "caller", None)
    if caller is not None:
        state.refusals.not_found(request, caller.principal, exc.message, caller.request_id)
