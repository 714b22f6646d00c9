"""``/mcp``: Cristal as an MCP server over streamable HTTP, authenticated with a Cristal API key (``Bearer``).

The tools are those of ``cristal mcp serve`` (``agents.mcp_server``):
``search_knowledge``, ``research`` and ``agent_SLUG`` per agent the caller may
use, every call acting as the key's employee. Each HTTP request is checked on
its own (the SDK's stateless mode: no session outlives a request, so no
session id can be carried from one key to another), with the same key check,
401 body and audit of refused keys as every other route. The caller travels
to the MCP handlers in the request's ASGI scope, never in a global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from cristal.actions.registry import build_registry
from cristal.agents.mcp_server import Caller, build_server
from cristal.identity.principal import Principal
from cristal.server.auth import bearer_token, principal_for_key
from cristal.server.errors import ApiError, error_response
from cristal.server.state import ServerState

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

_CALLER = "cristal_mcp_caller"


class McpEndpoint:
    """The ASGI app at ``/mcp``: the key first, then the SDK's streamable HTTP transport."""

    def __init__(self, state: ServerState) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.state = state
        actions = build_registry()
        # The same slots as the REST routes: /mcp cannot hold more of the server's threads than they may.
        slots = {"research": state.research_slots, "agent": state.agent_turn_slots}

        async def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
            request = ctx.request
            principal = request.scope.get("state", {}).get(_CALLER) if isinstance(request, Request) else None
            if not isinstance(principal, Principal) or principal.org_slug is None or principal.email is None:
                raise RuntimeError("an MCP request reached its handler without an authenticated caller")
            return Caller(db=state.db, settings=state.settings, org=principal.org_slug, email=principal.email,
                          actions=actions, slots=slots, max_research_seconds=state.limits.research_max_seconds)

        self.manager: StreamableHTTPSessionManager = StreamableHTTPSessionManager(
            app=build_server(caller_of), stateless=True, json_response=True,
            max_request_body_size=state.limits.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = str(scope.get("state", {}).get("request_id", ""))
        try:
            token = bearer_token(request)
            principal = await anyio.to_thread.run_sync(
                lambda: principal_for_key(self.state.db, token,
                                          lambda exc: self.state.refusals.failed_key(request, exc, request_id)))
        except ApiError as exc:
            await error_response(exc.status, exc.type, exc.message, exc.headers)(scope, receive, send)
            return
        scope.setdefault("state", {})[_CALLER] = principal
        await self.manager.handle_request(scope, receive, send)
