"""An agent's MCP tools: the allowed tools of the organization's registered servers, offered and called as the caller.

An agent file's ``mcp: {server: NAME, tools: [...]}`` names a server an org
admin registered (``agents.mcp_servers``) and some of its tools. Each tool the
admin allowed is offered to the model as the function ``SERVER__TOOL`` with the
schema and description the server gave when it was allowed, and with the effect
class the admin set (``write`` when nobody did), which decides, as for every
tool, whether untrusted text may reach it (``agents.runtime``). A tool the
organization has not allowed, or a server it has not registered (another
organization's does not exist), is a one-line error before the model is called:
an agent never answers as if it had a tool it does not have.

A call authorizes ``mcp.call`` as the caller (audited), then goes through
``agents.mcp_client`` with ``Settings.mcp_timeout_seconds``: a server that hangs,
crashes or writes garbage is an ``ActionError``, which the turn hands back to the
model as a tool error. What the server returns is a tool result like any other:
untrusted from then on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from cristal.actions.base import Action, ActionContext, Effect
from cristal.agents.mcp_client import McpServer, call_tool
from cristal.agents.mcp_servers import usable
from cristal.agents.tools import Tool
from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.authorize import require
from cristal.identity.principal import Principal

MAX_NAME = 64  # OpenAI function names: ^[A-Za-z0-9_-]{1,64}$
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class McpArguments(BaseModel):
    """Whatever object the tool takes: its own schema (from the server) is checked in ``McpTool.spec``."""

    model_config = ConfigDict(extra="allow")


def function_name(server: str, tool: str) -> str:
    """The name the model calls: ``SERVER__TOOL``, with characters OpenAI refuses replaced by ``_``."""
    return _UNSAFE.sub("_", f"{server}__{tool}")


@dataclass(frozen=True)
class McpTool(Tool):
    """One allowed tool of a registered MCP server, as an agent's tool."""

    server: McpServer | None = None
    tool: str = ""
    effect_class: Effect = "write"
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effect(self) -> Effect:
        return self.effect_class

    def definition(self) -> dict[str, Any]:
        schema = dict(self.input_schema) or {"type": "object", "properties": {}}
        assert self.server is not None
        description = (f"{self.description} " if self.description else "") + \
            f"(tool {self.tool!r} of the MCP server {self.server.name!r}; effect: {self.effect_class})"
        return {"type": "function", "function": {"name": self.name, "description": description.strip(),
                                                 "parameters": schema}}

    def spec(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments, with the schema's required and known fields checked (the server judges the rest)."""
        schema = self.input_schema
        properties = schema.get("properties")
        missing = [str(n) for n in schema.get("required") or () if n not in arguments]
        if missing:
            raise InvalidInput(f"invalid arguments for {self.name}: {missing[0]}: missing")
        if schema.get("additionalProperties") is False and isinstance(properties, Mapping):
            unknown = sorted(set(arguments) - set(properties))
            if unknown:
                raise InvalidInput(f"invalid arguments for {self.name}: {unknown[0]}: not a field of this tool")
        return dict(arguments)


def _runner(server: McpServer, tool: str, org_domains: tuple[str, ...] | None) -> Any:
    def run(ctx: ActionContext, arguments: dict[str, Any]) -> Any:
        with ctx.db.session() as s:
            require(s, ctx.principal, "mcp.call", ctx.resource("mcp-server", server.name),
                    request_id=ctx.idempotency_key[:64], details={"tool": tool})
        return call_tool(server, tool, arguments, ctx.settings.mcp_timeout_seconds, settings=ctx.settings,
                         org_domains=org_domains)

    return run


def mcp_tools(db: Database, principal: Principal, configs: Sequence[Mapping[str, Any]],
              taken: Iterable[str] = ()) -> dict[str, Tool]:
    """The tools of an agent's ``mcp`` entries (``{"server", "tools"}`` each), by the name the model calls."""
    out: dict[str, Tool] = {}
    names = set(taken)
    for config in configs:
        server_name = str(config.get("server") or "")
        wanted = [str(t) for t in config.get("tools") or ()]
        if not server_name or not wanted:
            raise InvalidInput("an mcp tool needs a server and the tools the agent may use")
        server, allowed, domains = usable(db, principal, server_name)
        for tool in wanted:
            info = allowed.get(tool)
            if info is None:
                raise InvalidInput(f"MCP server {server_name!r} does not allow its tool {tool!r} for agents "
                                   f"(allowed: {', '.join(sorted(allowed)) or 'none'}); an org admin allows it with "
                                   f"`cristal mcp tools {server_name} --allow {tool}`")
            name = function_name(server_name, tool)
            if len(name) > MAX_NAME or name in names:
                raise InvalidInput(f"MCP tool {tool!r} of server {server_name!r} cannot be offered as {name!r}: "
                                   "the name is too long or already taken")
            names.add(name)
            action = Action(name="mcp", spec=McpArguments, effect=info["effect"], run=_runner(server, tool, domains),
                            description=str(info.get("description") or ""), retriable=False)
            out[name] = McpTool(name=name, action=action, options={"server": server_name, "tool": tool}, server=server,
                                tool=tool, effect_class=info["effect"], description=str(info.get("description") or ""),
                                input_schema=dict(info.get("input_schema") or {}))
    return out
