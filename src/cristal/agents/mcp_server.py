"""Cristal as an MCP server: ``search_knowledge``, ``research`` and the caller's agents as MCP tools, acting as the caller.

One server definition (the SDK's low-level ``Server``) serves both ways in:
``cristal mcp serve --org SLUG --as EMAIL`` on stdio, where the caller is fixed
at start, and ``/mcp`` on ``cristal serve`` (``server/mcp.py``), where each HTTP
request carries a Cristal API key and the server finds the caller in the
request. The list of tools is built per request: ``search_knowledge``,
``research``, and ``agent_SLUG`` for each published agent the caller may use
at that moment (a grant removed, the agent is gone from the next listing).

Each call resolves the employee again (groups as they are now, so a removed
membership or a removed person takes effect on the next call) and runs the
registry's own ``search`` or ``research`` action in an ``ActionContext`` of that
person, or one stateless turn of the agent (``agents.runtime``) with the
person's rights: everything authorizes and audits exactly as it does in a
workflow step or ``cristal ask``. Nothing runs with more rights than the caller.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cristal.actions.base import ActionContext, ActionError
from cristal.actions.registry import Registry, build_registry
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import Busy, CristalError, InvalidInput
from cristal.identity.directory import member
from cristal.knowledge.search import MAX_QUERY_CHARS

if TYPE_CHECKING:
    from mcp import types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

SEARCH_TIMEOUT = 60.0
# Past the research budget's own limit, the seconds a research call may still take to write its report.
RESEARCH_GRACE = 30.0
AGENT_PREFIX = "agent_"

SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["query"], "additionalProperties": False,
    "properties": {"query": {"type": "string"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                   "mode": {"enum": ["hybrid", "keyword", "dense"], "default": "hybrid"}}}
RESEARCH_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["question"], "additionalProperties": False,
    "properties": {"question": {"type": "string"},
                   "mode": {"enum": ["auto", "extractive", "llm"], "default": "auto"},
                   "lang": {"enum": ["en", "de", "ja"]},
                   "max_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 300.0}}}
AGENT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["question"], "additionalProperties": False,
    "properties": {"question": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}}}


@dataclass(frozen=True)
class Caller:
    """Who the server acts as, and where: checked once at start, resolved again on every call.

    ``slots`` (``research``, ``agent``) bound how many such calls run at once (a server shares them with its
    REST routes; a busy one is a tool error, not a queue); ``max_research_seconds`` caps a research call.
    """

    db: Database
    settings: Settings
    org: str
    email: str
    actions: Registry
    slots: Mapping[str, threading.BoundedSemaphore] = field(default_factory=dict)
    max_research_seconds: float | None = None

    @contextmanager
    def slot(self, kind: str) -> Iterator[None]:
        """Hold one of the ``kind`` slots for the block (none configured: no limit)."""
        slots = self.slots.get(kind)
        if slots is None:
            yield
            return
        if not slots.acquire(blocking=False):
            raise Busy(f"too many {kind} calls are in progress on this server; try again shortly")
        try:
            yield
        finally:
            slots.release()

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

    def agents(self) -> list[dict[str, Any]]:
        """The published agents the caller may use now (the store decides and audits ``agent.list``)."""
        from cristal.agents import store

        return [a for a in store.list_agents(self.db, self.org, self.email) if a["published_version"] is not None]

    def ask(self, slug: str, question: str) -> dict[str, Any]:
        """One stateless turn of agent ``slug`` (its published version) as the caller: the ``ask`` shape."""
        from cristal.agents.ask import check_question, counted_turn, usable_config
        from cristal.agents.runtime import TurnContext

        check_question(question)
        config = usable_config(self.db, self.org, self.email, slug)
        with self.db.session() as s:
            _, principal = member(s, self.org, self.email)
        ctx = TurnContext(db=self.db, settings=self.settings, principal=principal, conversation_id=uuid.uuid4().hex)
        # Counted for `cristal agent stats` as a turn through the API, like the REST and OpenAI-compatible ones.
        doc = counted_turn(ctx, config, [], question, "api").as_dict()
        doc["conversation_id"] = None  # nothing is stored: there is no conversation to continue
        return doc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc).splitlines()[0]


def _static_tools() -> list[types.Tool]:
    from mcp import types

    read_only = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    return [
        types.Tool(name="search_knowledge", input_schema=SEARCH_SCHEMA, annotations=read_only, description=(
            "Search the organization's documents that the acting employee may read; returns the best passages "
            "(doc_id, chunk_id, title, uri, score, snippet, lang).")),
        types.Tool(name="research", input_schema=RESEARCH_SCHEMA, annotations=read_only, description=(
            "Research a question over the documents the acting employee may read; returns a report citing its "
            "sources as [n], with verbatim quotes.")),
    ]


def _agent_tool(doc: dict[str, Any]) -> types.Tool:
    from mcp import types

    description = str(doc.get("description") or "").strip() or f"The agent {doc['agent']}."
    return types.Tool(name=AGENT_PREFIX + str(doc["agent"]), input_schema=AGENT_SCHEMA, description=(
        f"Ask the agent {doc['agent']!r} (version {doc['published_version']}) one question, as the acting employee: "
        f"{description} Returns its answer with citations and the tools it called."))


def _dispatch(caller: Caller, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run tool ``name`` as ``caller`` (blocking: database, index, model calls)."""
    unknown = sorted(set(arguments) - set(
        SEARCH_SCHEMA["properties"] if name == "search_knowledge" else
        RESEARCH_SCHEMA["properties"] if name == "research" else AGENT_SCHEMA["properties"]))
    if unknown:
        raise InvalidInput(f"invalid arguments for {name}: {unknown[0]}: not a field of this tool")
    if name == "search_knowledge":
        return dict(caller.run("search", arguments, SEARCH_TIMEOUT))
    if name == "research":
        max_seconds = arguments.get("max_seconds", 300.0)
        if not isinstance(max_seconds, (int, float)) or isinstance(max_seconds, bool):
            raise InvalidInput("invalid arguments for research: max_seconds: a number is required")
        if caller.max_research_seconds is not None:
            max_seconds = min(float(max_seconds), caller.max_research_seconds)
        with caller.slot("research"):
            return dict(caller.run("research", {"mode": "auto", **arguments, "max_seconds": max_seconds},
                                   float(max_seconds) + RESEARCH_GRACE))
    if name.startswith(AGENT_PREFIX) and len(name) > len(AGENT_PREFIX):
        question = arguments.get("question")
        if not isinstance(question, str):
            raise InvalidInput(f"invalid arguments for {name}: question: a string is required")
        with caller.slot("agent"):
            return caller.ask(name[len(AGENT_PREFIX):], question)
    raise InvalidInput(f"unknown tool {name!r}")


CallerOf = Callable[["ServerRequestContext[Any, Any]"], Awaitable[Caller]]


def build_server(caller_of: CallerOf) -> Server[Any]:
    """The MCP server with Cristal's tools, every request made as ``await caller_of(ctx)``."""
    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        caller = await caller_of(ctx)
        try:
            agents = await anyio.to_thread.run_sync(caller.agents)
        except CristalError:
            agents = []  # the caller was removed since: their next call says so
        return types.ListToolsResult(tools=[*_static_tools(), *(_agent_tool(a) for a in agents)])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = await caller_of(ctx)
        try:
            # Off the event loop, so the server keeps reading its input (and answers a cancellation) while one runs.
            result = await anyio.to_thread.run_sync(_dispatch, caller, params.name, dict(params.arguments or {}))
        except CristalError as exc:  # ActionError, NotFound (an agent they may not use, the caller removed), ...
            return types.CallToolResult(content=[types.TextContent(type="text", text=exc.message)], is_error=True)
        text = json.dumps(result, ensure_ascii=False, default=str)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)

    return Server("cristal", instructions="Cristal: the organization's knowledge and agents, as the acting employee; "
                                          "only what this person may read.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


def serve_stdio(db: Database, settings: Settings, org: str, email: str) -> None:
    """Serve the tools on stdin/stdout until the client closes stdin (``NotFound`` first for a bad org or email)."""
    import anyio
    from mcp.server.stdio import stdio_server

    caller = Caller(db=db, settings=settings, org=org, email=email, actions=build_registry())
    caller.check()

    async def fixed(_ctx: ServerRequestContext[Any, Any]) -> Caller:
        return caller

    server = build_server(fixed)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)
