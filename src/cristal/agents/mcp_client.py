"""Cristal as an MCP client: describe a server, list its tools, call one, with every failure a one-line ``ActionError``.

A server is reached over stdio (Cristal starts the command) or streamable
HTTP (a URL, checked against the network policy and dialled only at the checked
addresses, like the ``http`` action).
Credentials never sit in a description: it names environment variables
(``CRISTAL_ORG_KEY_...``, the same family as organizations' model keys), read
when a connection opens. Each call opens its own connection and closes it
(the SDK stops a stdio server: stdin closed, then SIGTERM, then SIGKILL), so
no child process outlives the call, whatever the server did.

A tool's effect class comes from the admin's settings; a tool nobody
classified counts as ``write`` (``tool_effects``), so an unknown tool never
passes for harmless.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO, TypeVar, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cristal.actions.base import ActionError, Effect, check_size
from cristal.config import Settings, secret_from_env
from cristal.identity.orgs import ORG_KEY_ENV_PREFIX
from cristal.net.policy import InternalAddress, NetRefused, Target, check_url

DEFAULT_TIMEOUT = 30.0
DEFAULT_EFFECT: Effect = "write"
_EFFECTS: tuple[str, ...] = get_args(Effect)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_T = TypeVar("_T")


class McpServer(BaseModel):
    """How to reach one MCP server: ``stdio`` (command, args, env) or ``http`` (a streamable HTTP URL).

    ``env`` maps a variable the server process sees to the Cristal variable its
    value is read from; ``headers`` maps an HTTP header to the Cristal variable
    holding its value (``Authorization: Bearer ...`` is the whole value). Only
    names are stored, never the secrets themselves.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"invalid MCP server name {v!r}: lower-case letters, digits, - and _ (at most 63)")
        return v

    @field_validator("env", "headers")
    @classmethod
    def _sources(cls, v: dict[str, str]) -> dict[str, str]:
        for target, source in v.items():
            if not target or "\n" in target or "\r" in target:
                raise ValueError(f"invalid name {target!r}")
            # As with organizations' model keys: only variables meant for this, or a description could
            # hand any server variable (the database URL...) to a process or a URL of its author's choosing.
            if not (source.startswith(ORG_KEY_ENV_PREFIX) and _ENV_NAME.match(source)):
                raise ValueError(f"invalid variable {source!r} for {target!r}: the name must start with {ORG_KEY_ENV_PREFIX}")
        return v

    @model_validator(mode="after")
    def _shape(self) -> McpServer:
        if self.transport == "stdio":
            if not self.command or self.url is not None or self.headers:
                raise ValueError("a stdio MCP server has a command (and args, env), not a url or headers")
        else:
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("an http MCP server has a url starting with http:// or https://")
            if self.command is not None or self.args or self.env:
                raise ValueError("an http MCP server has a url (and headers), not a command, args or env")
        return self


def tool_effects(tools: Iterable[str], configured: Mapping[str, str | None] | None = None) -> dict[str, Effect]:
    """Each tool's effect class: what the admin set for it, ``write`` when nobody did."""
    configured = configured or {}
    out: dict[str, Effect] = {}
    for name in tools:
        value = configured.get(name)
        if value is None:
            out[name] = DEFAULT_EFFECT
        elif value in _EFFECTS:
            out[name] = cast(Effect, value)
        else:
            raise ActionError(f"invalid effect {value!r} for MCP tool {name!r}: use read, write or destructive")
    return out


# ---------------------------------------------------------------------------
# Calls


def list_tools(server: McpServer, settings: Settings, *, effects: Mapping[str, str | None] | None = None,
               timeout: float = DEFAULT_TIMEOUT, org_domains: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The server's tools: ``{"name", "description", "input_schema", "effect"}`` each (effects from ``effects``)."""
    return _blocking(_guarded(server, timeout, settings, org_domains, None, {}, effects))


def call_tool(server: McpServer, tool: str, arguments: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT, *,
              settings: Settings, org_domains: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Call ``tool``: ``{"content": [...], "structured": ...}`` as JSON, or an ``ActionError`` within ``timeout``.

    ``org_domains`` is the organization's allow-list (``cristal.net.policy.org_domains``), for HTTP servers.
    """
    result = _blocking(_guarded(server, timeout, settings, org_domains, tool, dict(arguments), None))
    return cast(dict[str, Any], check_size(f"mcp:{server.name}:{tool}", result))


async def list_tools_async(server: McpServer, settings: Settings, *, effects: Mapping[str, str | None] | None = None,
                           timeout: float = DEFAULT_TIMEOUT,
                           org_domains: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """``list_tools`` for a caller already inside an event loop."""
    return cast(list[dict[str, Any]], await _guarded(server, timeout, settings, org_domains, None, {}, effects))


async def call_tool_async(server: McpServer, tool: str, arguments: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT,
                          *, settings: Settings, org_domains: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``call_tool`` for a caller already inside an event loop."""
    result = await _guarded(server, timeout, settings, org_domains, tool, dict(arguments), None)
    return cast(dict[str, Any], check_size(f"mcp:{server.name}:{tool}", result))


def _blocking(work: Awaitable[_T]) -> _T:
    """Run ``work`` to the end from synchronous code (in a fresh thread when this one already runs a loop)."""

    async def main() -> _T:
        return await work

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cristal-mcp") as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass
class _Watch:
    """What the transport saw that the session does not raise: lines that are not JSON-RPC."""

    garbage: str | None = None
    stop: Callable[[], None] = field(default=lambda: None)


async def _guarded(server: McpServer, timeout: float, settings: Settings, org_domains: tuple[str, ...] | None,
                   tool: str | None, arguments: dict[str, Any], effects: Mapping[str, str | None] | None) -> Any:
    """One connection, one listing (and one call), every failure turned into a one-line ``ActionError``."""
    import anyio

    label = f"MCP server {server.name!r}"
    watch = _Watch()
    # The server's stderr goes to a file, not to ours: its tracebacks are its business, and the last line
    # says why it died better than "connection closed".
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errlog:
        try:
            with anyio.fail_after(timeout):
                with anyio.CancelScope() as scope:
                    watch.stop = scope.cancel
                    result = await _session(server, settings, org_domains, tool, arguments, effects, watch, errlog)
                if scope.cancelled_caught or watch.garbage is not None:
                    raise ActionError(f"{label} wrote {watch.garbage}")
                return result
        except ActionError:
            raise
        except TimeoutError:
            what = f"tool {tool!r}" if tool else "listing its tools"
            raise ActionError(f"{label} did not answer ({what}) within {timeout:g}s", retriable=True) from None
        except Exception as exc:  # noqa: BLE001 - every failure of a foreign process or site becomes one line
            raise ActionError(_describe(label, exc, watch, _last_line(errlog)), retriable=False) from None


async def _session(server: McpServer, settings: Settings, org_domains: tuple[str, ...] | None, tool: str | None,
                   arguments: dict[str, Any], effects: Mapping[str, str | None] | None, watch: _Watch,
                   errlog: TextIO) -> Any:
    from mcp import Client
    from mcp.client.session import IncomingMessage

    async def on_message(message: IncomingMessage) -> None:
        # The SDK hands lines it could not parse to this handler and carries on waiting: stop at once instead
        # of running into the timeout, and say what the server wrote.
        if isinstance(message, Exception) and watch.garbage is None:
            watch.garbage = "a line on stdout that is not JSON-RPC" + _quoted_input(str(message))
            watch.stop()

    transport = _transport(server, settings, org_domains, errlog)  # the client enters (and leaves) it
    async with Client(transport, cache=None, message_handler=on_message, raise_exceptions=False) as client:
        listing = await client.list_tools()
        names = [t.name for t in listing.tools]
        if tool is None:
            classes = tool_effects(names, effects)
            return [{"name": t.name, "description": t.description or "",
                     "input_schema": t.input_schema, "effect": classes[t.name]} for t in listing.tools]
        if tool not in names:
            raise ActionError(f"MCP server {server.name!r} has no tool {tool!r} (it has: {', '.join(names) or 'none'})")
        answer = await client.call_tool(tool, arguments)
        content = [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in answer.content]
        if answer.is_error:
            text = " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text") or "no details"
            raise ActionError(f"MCP tool {tool!r} of server {server.name!r} failed: {_one_line(text, 300)}")
        return {"content": content, "structured": answer.structured_content}


def _transport(server: McpServer, settings: Settings, org_domains: tuple[str, ...] | None, errlog: TextIO) -> Any:
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

    if server.transport == "stdio":
        # The SDK logs each line it cannot parse with a traceback on stderr; the ActionError already says what
        # the server wrote, and a command's stderr carries one line per error, never a traceback.
        logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)
        # Only what the description declares, over the SDK's short list of harmless variables (PATH, HOME,
        # USER, ...): Cristal's own environment holds the database URL, model keys and every organization's
        # secrets, and a third-party server (or whoever controls its package) must see none of them.
        env = {target: _secret(server, source) for target, source in server.env.items()}
        params = StdioServerParameters(command=server.command or "", args=server.args, env=env)
        return stdio_client(params, errlog=errlog)
    import httpcore2
    import httpx2

    url = server.url or ""
    try:
        target = check_url(url, org_domains, allow_internal=settings.workflow_http_allow_private)
    except InternalAddress as exc:
        raise ActionError(f"MCP server {server.name!r}: {exc}; allow it with CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE "
                          "or the organization's allow-list") from None
    except NetRefused as exc:
        raise ActionError(f"MCP server {server.name!r}: {exc}", retriable=exc.retriable) from None
    headers = {target_name: _secret(server, source) for target_name, source in server.headers.items()}
    # No proxy variables (trust_env=False), as the http action: requests go to the checked host, and each
    # connection to the addresses checked above (_Pinned), so a second DNS answer cannot point elsewhere. The
    # SDK follows a redirect only within the URL's own origin, so no hop leaves that host.
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    # httpcore2's dialing hook, set on the pool httpx2 built (httpx2 offers no public way to pass a backend).
    transport._pool._network_backend = cast("httpcore2.AsyncNetworkBackend", _Pinned(target))
    client = httpx2.AsyncClient(headers=headers, trust_env=False, follow_redirects=False, transport=transport,
                                timeout=httpx2.Timeout(DEFAULT_TIMEOUT, read=None))
    return streamable_http_client(url, http_client=client)


class _Pinned:
    """httpcore2's network backend, dialing only the checked addresses of the one host a client may reach."""

    def __init__(self, target: Target) -> None:
        import httpcore2

        self._target = target
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> Any:
        import httpcore2

        if host.strip("[]").lower() != self._target.host.strip("[]").lower() or port != self._target.port:
            raise httpcore2.ConnectError(f"{host}:{port} is not the checked address of this MCP server")
        failure: Exception = httpcore2.ConnectError(f"no address for {host}")
        for address in self._target.addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout, OSError) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        import httpcore2

        raise httpcore2.ConnectError("MCP servers are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _secret(server: McpServer, variable: str) -> str:
    value = secret_from_env(variable)
    if value is None:
        raise ActionError(f"MCP server {server.name!r} takes a credential from ${variable}, which is not set")
    return value


def _describe(label: str, exc: BaseException, watch: _Watch, stderr_tail: str) -> str:
    """One line for a failure the SDK or the transport raised (unwrapping task-group groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ActionError):
        return exc.message
    if watch.garbage is not None:
        return f"{label} wrote {watch.garbage}"
    if isinstance(exc, FileNotFoundError):
        return f"{label} could not start: command not found ({_one_line(str(exc.filename or exc), 160)})"
    text = _one_line(str(exc) or type(exc).__name__, 200)
    if stderr_tail:
        return f"{label} failed ({text}); its last words: {stderr_tail}"
    return f"{label} failed: {text}"


def _last_line(errlog: TextIO) -> str:
    try:
        errlog.flush()
        errlog.seek(0)
        lines = [line.strip() for line in errlog.read()[-4000:].splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return _one_line(lines[-1], 200) if lines else ""


def _quoted_input(error: str) -> str:
    # pydantic's message quotes the offending line as input_value='...': show the start of it, nothing else.
    found = re.search(r"input_value=(.{1,80}?)(?:, input_type=|\]|$)", error)
    return f": {found.group(1)}" if found else ""


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
