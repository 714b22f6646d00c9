"""Cristal as an MCP server: ``search_knowledge`` and ``research`` as MCP tools, acting as one employee.

``cristal mcp serve --org SLUG --as EMAIL`` serves them on stdio with the
SDK's ``MCPServer``. Each call resolves the employee again (groups as they are
now, so a removed membership or a removed person takes effect on the next
call) and runs the registry's own ``search`` or ``research`` action in an
``ActionContext`` of that person: the action authorizes and audits exactly as
it does in a workflow step, and finds only what that person may read. Nothing
runs with more rights than the person named by ``--as``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cristal.actions.base import ActionContext, ActionError
from cristal.actions.registry import Registry, build_registry
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError
from cristal.identity.directory import member

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

SEARCH_TIMEOUT = 60.0
# Past the research budget's own limit, the seconds a research call may still take to write its report.
RESEARCH_GRACE = 30.0


@dataclass(frozen=True)
class Caller:
    """Who the server acts as, and where: checked once at start, resolved again on every call."""

    db: Database
    settings: Settings
    org: str
    email: str
    actions: Registry

    def check(self) -> None:
        """A ``NotFound`` (one line) when the organization or the employee does not exist."""
        with self.db.session() as s:
            member(s, self.org, self.email)

    def run(self, kind: str, arguments: dict[str, Any], timeout: float | None) -> Any:
        """Run the registry's ``kind`` action with ``arguments`` as the caller; ``ActionError`` on failure."""
        action = self.actions[kind]
        if action.run is None:  # pragma: no cover - both kinds served here have a run function
            raise ActionError(f"action {kind!r} cannot be run directly")
        try:
            spec = action.spec.model_validate(arguments).model_dump(by_alias=True)
        except ValueError as exc:  # pydantic's ValidationError: say the first problem only
            raise ActionError(f"invalid arguments for {kind}: {_first_error(exc)}") from None
        call = uuid.uuid4().hex[:16]
        with self.db.session() as s:
            org, principal = member(s, self.org, self.email)
            org_id, org_slug = org.id, org.slug
        ctx = ActionContext(db=self.db, settings=self.settings, principal=principal, org_id=org_id, org=org_slug,
                            run_id=f"mcp-{call}", step_id=kind, idempotency_key=f"mcp:{call}", timeout=timeout)
        return action.run(ctx, spec)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc).splitlines()[0]


def build_server(caller: Caller) -> MCPServer:
    """The MCP server with Cristal's tools, every call made as ``caller``."""
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    server: MCPServer = MCPServer(
        "cristal", instructions=f"Cristal, the knowledge of organization {caller.org}, as {caller.email}: "
                                "only the documents this person may read.")

    async def act(kind: str, arguments: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        try:
            # The actions are blocking (database, index, model calls): off the event loop, so the server
            # keeps reading its input (and answers a cancellation) while one runs.
            result = await anyio.to_thread.run_sync(caller.run, kind, arguments, timeout)
        except CristalError as exc:  # ActionError, NotFound (the caller was removed), denied access
            raise ToolError(exc.message) from None
        return dict(result)

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

    @server.tool(name="search_knowledge", annotations=read_only, description=(
        "Search the organization's documents that the acting employee may read; returns the best passages "
        "(doc_id, chunk_id, title, uri, score, snippet, lang)."))
    async def search_knowledge(query: str, limit: int = 10,
                               mode: Literal["hybrid", "keyword", "dense"] = "hybrid") -> dict[str, Any]:
        return await act("search", {"query": query, "limit": limit, "mode": mode}, SEARCH_TIMEOUT)

    @server.tool(name="research", annotations=read_only, description=(
        "Research a question over the documents the acting employee may read; returns a report citing its "
        "sources as [n], with verbatim quotes."))
    async def research(question: str, mode: Literal["auto", "extractive", "llm"] = "auto",
                       lang: Literal["en", "de", "ja"] | None = None, max_seconds: float = 300.0) -> dict[str, Any]:
        arguments: dict[str, Any] = {"question": question, "mode": mode, "max_seconds": max_seconds}
        if lang is not None:
            arguments["lang"] = lang
        return await act("research", arguments, max_seconds + RESEARCH_GRACE)

    del search_knowledge, research  # registered on the server; the names only made the decorators readable
    return server


def serve_stdio(db: Database, settings: Settings, org: str, email: str) -> None:
    """Serve the tools on stdin/stdout until the client closes stdin (``NotFound`` first for a bad org or email)."""
    caller = Caller(db=db, settings=settings, org=org, email=email, actions=build_registry())
    caller.check()
    build_server(caller).run("stdio")
