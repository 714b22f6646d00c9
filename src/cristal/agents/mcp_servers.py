"""The organization's MCP servers: registered by an org admin, with the tools agents may use and their effect classes.

``add`` stores how to reach a server (a stdio command or a streamable HTTP
URL, credentials as the *names* of ``CRISTAL_ORG_KEY_...`` variables),
``set_tools`` allows tools (with their effect class: ``read``, ``write`` or
``destructive``; one nobody classified counts as ``write``) and withdraws
them, ``remove`` forgets the server. Each is ``mcp.manage`` (org admins),
decided by ``authorize`` and audited. ``list_servers`` (``mcp.list``, any
member, so agent authors know what to name) shows how to reach a server to
admins only. A server of another organization does not exist for a caller:
``NotFound``, whoever asks.

``usable`` is what an agent's turn reads: the server's description and the
allowed tools with their schemas, as they were when the admin allowed them,
so a turn offers tools without connecting to anything.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.actions.base import ActionError, Effect
from cristal.agents.mcp_client import DEFAULT_EFFECT, McpServer, list_tools, tool_effects
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import McpServerEntry, Organization, utcnow
from cristal.errors import AlreadyExists, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, member
from cristal.identity.principal import Principal
from cristal.net.policy import org_domains

__all__ = ["add", "describe", "list_servers", "parse_allow", "remove", "set_tools", "usable"]


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _pairs(items: Iterable[str], what: str) -> dict[str, str]:
    """``NAME=CRISTAL_ORG_KEY_X`` (or ``CRISTAL_ORG_KEY_X``, seen under its own name) as ``{NAME: VARIABLE}``."""
    out: dict[str, str] = {}
    for item in items:
        target, eq, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not eq:
            target = source = item.strip()
        if not target or not source:
            raise InvalidInput(f"invalid --{what} {item!r}: write NAME=CRISTAL_ORG_KEY_VARIABLE")
        out[target] = source
    return out


def _server_of(row: McpServerEntry) -> McpServer:
    return McpServer.model_validate({"name": row.name, "transport": row.transport, "command": row.command,
                                     "args": list(row.args or []), "env": dict(row.env or {}), "url": row.url,
                                     "headers": dict(row.headers or {})})


def _row(s: Session, org: Organization, name: str) -> McpServerEntry:
    row = s.scalar(select(McpServerEntry).where(McpServerEntry.org_id == org.id, McpServerEntry.name == name))
    if row is None:
        raise NotFound(f"unknown MCP server {name!r} in organization {org.slug!r}")
    return row


def _doc(row: McpServerEntry, org: Organization, *, admin: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": row.name, "org": org.slug, "transport": row.transport,
        "tools": {t: (info.get("effect") or DEFAULT_EFFECT) for t, info in sorted((row.tools or {}).items())},
    }
    if admin:
        # How to reach it: the command line or URL and the names of the variables (never their values).
        doc.update(command=row.command, args=list(row.args or []), env=dict(row.env or {}), url=row.url,
                   headers=dict(row.headers or {}), created_by=row.created_by_email,
                   created_at=row.created_at.isoformat(), updated_at=row.updated_at.isoformat())
    return doc


def _manage(s: Session, org_slug: str, email: str, name: str, details: dict[str, Any]) -> tuple[Organization, Principal]:
    org, principal = member(s, org_slug, email)
    require(s, principal, "mcp.manage", in_org(org, "mcp-server", name), details=details)
    return org, principal


def add(db: Database, org_slug: str, email: str, name: str, *, command: str | None = None, url: str | None = None,
        env: Iterable[str] = (), headers: Iterable[str] = ()) -> dict[str, Any]:
    """Register a server: ``command`` (a command line, split like a shell) for stdio, or ``url`` for streamable HTTP."""
    if (command is None) == (url is None):
        raise InvalidInput("give exactly one of --command (a stdio server) or --url (a streamable HTTP server)")
    try:
        words = shlex.split(command) if command is not None else []
    except ValueError as exc:
        raise InvalidInput(f"invalid --command: {exc}") from None
    if command is not None and not words:
        raise InvalidInput("--command is empty")
    try:
        server = McpServer(name=name, transport="stdio" if command is not None else "http",
                           command=words[0] if words else None, args=words[1:], env=_pairs(env, "env"),
                           url=url, headers=_pairs(headers, "header"))
    except ValidationError as exc:
        raise InvalidInput(f"MCP server {name!r}: {_first_error(exc)}") from None
    with db.session() as s:
        details = {"transport": server.transport, "command": command, "url": url, "env": server.env,
                   "headers": server.headers}
        org, _ = _manage(s, org_slug, email, name, details)
        taken = s.scalar(select(McpServerEntry.id).where(McpServerEntry.org_id == org.id, McpServerEntry.name == name))
        if taken is not None:
            raise AlreadyExists(f"an MCP server named {name!r} already exists in organization {org.slug!r}")
        now = utcnow()
        row = McpServerEntry(org_id=org.id, name=name, transport=server.transport, command=server.command,
                             args=server.args, env=server.env, url=server.url, headers=server.headers, tools={},
                             created_by_email=email, created_at=now, updated_at=now)
        s.add(row)
        s.flush()
        return _doc(row, org, admin=True)


def list_servers(db: Database, org_slug: str, email: str) -> list[dict[str, Any]]:
    """The organization's servers and their allowed tools (with how to reach them for admins)."""
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        rows = list(s.scalars(select(McpServerEntry).where(McpServerEntry.org_id == org.id).order_by(McpServerEntry.name)))
        require(s, principal, "mcp.list", in_org(org, "mcp-server"), details={"listed": len(rows)})
        return [_doc(r, org, admin=principal.is_admin) for r in rows]


def remove(db: Database, org_slug: str, email: str, name: str) -> dict[str, Any]:
    """Forget a server; agents that name it can no longer be asked until it is registered again."""
    with db.session() as s:
        org, _ = _manage(s, org_slug, email, name, {"change": "remove"})
        s.delete(_row(s, org, name))
        return {"name": name, "org": org.slug, "removed": True}


def _reachable(db: Database, org_slug: str, email: str, name: str, details: dict[str, Any]
               ) -> tuple[McpServer, dict[str, Any], tuple[str, ...] | None]:
    """As an admin (audited): the server, its allowed tools, the organization's domain allow-list."""
    with db.session() as s:
        org, _ = _manage(s, org_slug, email, name, details)
        row = _row(s, org, name)
        return _server_of(row), dict(row.tools or {}), org_domains(s, org.id)


def describe(db: Database, settings: Settings, org_slug: str, email: str, name: str) -> dict[str, Any]:
    """Connect to the server and list its tools, each marked allowed (with its effect class) or not."""
    server, allowed, domains = _reachable(db, org_slug, email, name, {"change": "list-tools"})
    tools = list_tools(server, settings, timeout=settings.mcp_timeout_seconds, org_domains=domains)
    return {"name": name, "org": org_slug, "tools": [
        {"name": t["name"], "description": t["description"], "allowed": t["name"] in allowed,
         "effect": (allowed.get(t["name"]) or {}).get("effect") or DEFAULT_EFFECT if t["name"] in allowed else None}
        for t in tools]}


def parse_allow(items: Iterable[str]) -> dict[str, str | None]:
    """``TOOL`` or ``TOOL=read|write|destructive`` as ``{TOOL: effect or None}`` (``None``: nobody set it)."""
    out: dict[str, str | None] = {}
    for item in items:
        tool, eq, effect = item.partition("=")
        tool = tool.strip()
        if not tool:
            raise InvalidInput(f"invalid --allow {item!r}: write TOOL or TOOL=read|write|destructive")
        out[tool] = effect.strip() if eq else None
    try:
        tool_effects(out, out)
    except ActionError as exc:  # a bad class: the same one-line message, as bad input
        raise InvalidInput(exc.message) from None
    return out


def set_tools(db: Database, settings: Settings, org_slug: str, email: str, name: str, *,
              allow: Mapping[str, str | None] | None = None, deny: Iterable[str] = ()) -> dict[str, Any]:
    """Allow tools (``{TOOL: effect or None}``; connects to read their schemas) and withdraw ``deny``."""
    allow, deny = dict(allow or {}), list(deny)
    both = sorted(set(allow) & set(deny))
    if both:
        raise InvalidInput(f"tool {both[0]!r} is both allowed and denied")
    effects = {t: e for t, e in allow.items() if e is not None}
    server, current, domains = _reachable(db, org_slug, email, name,
                                          {"change": "tools", "allow": allow, "deny": deny})
    unknown = sorted(set(deny) - set(current))
    if unknown:
        raise InvalidInput(f"tool {unknown[0]!r} of MCP server {name!r} is not allowed, so it cannot be denied")
    described: dict[str, dict[str, Any]] = {}
    if allow:
        listing = list_tools(server, settings, effects=effects, timeout=settings.mcp_timeout_seconds, org_domains=domains)
        described = {t["name"]: t for t in listing}
        missing = sorted(set(allow) - set(described))
        if missing:
            raise InvalidInput(f"MCP server {name!r} has no tool {missing[0]!r} (it has: {', '.join(described) or 'none'})")
    with db.session() as s:
        org, principal = member(s, org_slug, email)
        row = _row(s, org, name)
        tools = dict(row.tools or {})
        for tool in deny:
            tools.pop(tool, None)
        for tool, effect in allow.items():
            # An effect nobody set stays unset (it counts as write), so a later listing says so honestly.
            kept = effect if effect is not None else (tools.get(tool) or {}).get("effect")
            tools[tool] = {"effect": kept, "description": described[tool]["description"],
                           "input_schema": described[tool]["input_schema"]}
        row.tools = tools
        row.updated_at = utcnow()
        return _doc(row, org, admin=principal.is_admin)


def usable(db: Database, principal: Principal, name: str) -> tuple[McpServer, dict[str, dict[str, Any]], tuple[str, ...] | None]:
    """For an agent's turn: the server of the caller's organization, its allowed tools (``effect`` resolved), the
    organization's domain allow-list; ``NotFound`` for a server the organization has not registered."""
    with db.session() as s:
        org = s.get(Organization, principal.org_id) if principal.org_id is not None else None
        if org is None:
            raise NotFound(f"unknown MCP server {name!r}")
        row = _row(s, org, name)
        tools: dict[str, dict[str, Any]] = {}
        for tool, info in (row.tools or {}).items():
            effect: Effect = tool_effects([tool], {tool: info.get("effect")})[tool]
            tools[tool] = {**info, "effect": effect}
        return _server_of(row), tools, org_domains(s, org.id)
