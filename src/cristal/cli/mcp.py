"""``cristal mcp ...``: the organization's MCP servers for agents (add, list, tools, remove) and Cristal as an MCP
server on stdio (``serve``), acting as one employee."""

from __future__ import annotations

from typing import Any

import typer

from cristal.cli.runtime import JSON, database, print_json, settings, show, show_table

app = typer.Typer()
mcp_app = typer.Typer(help="The Model Context Protocol: MCP servers for agents, and Cristal as an MCP server.",
                      no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")

ORG = typer.Option(..., "--org", help="Organization slug.")
ADMIN = typer.Option(..., "--as", help="An org admin of the organization.")
NAME = typer.Argument(..., help="The server's name in the organization (what agent files name).")


def _print_server(doc: dict[str, Any]) -> None:
    where = doc.get("url") or " ".join([doc.get("command") or "", *doc.get("args", [])]).strip()
    show("[bold]{}[/] in {} ({}){}", doc["name"], doc["org"], doc["transport"], f": {where}" if where else "")
    tools = doc["tools"]
    show("  tools agents may use: {}", ", ".join(f"{t} ({e})" for t, e in tools.items()) or "none yet")


@mcp_app.command("add")
def add_command(
    name: str = NAME,
    command: str | None = typer.Option(None, "--command", help="A stdio server: the command line that starts it."),
    url: str | None = typer.Option(None, "--url", help="A streamable HTTP server: its URL."),
    env: list[str] = typer.Option([], "--env", help="NAME=CRISTAL_ORG_KEY_VAR: a variable the stdio server gets, "
                                                    "read from that variable (or CRISTAL_ORG_KEY_VAR alone). Repeatable."),
    header: list[str] = typer.Option([], "--header", help="NAME=CRISTAL_ORG_KEY_VAR: an HTTP header whose whole value "
                                                          "is read from that variable. Repeatable."),
    org: str = ORG, as_email: str = ADMIN, json_out: bool = JSON,
) -> None:
    """Register an MCP server for the organization's agents (no tool is allowed until `cristal mcp tools --allow`)."""
    from cristal.agents.mcp_servers import add

    with database() as db:
        doc = add(db, org, as_email, name, command=command, url=url, env=env, headers=header)
    if json_out:
        print_json(doc)
        return
    _print_server(doc)
    show("  allow its tools: cristal mcp tools {} --allow TOOL=read --org {} --as {}", name, org, as_email)


@mcp_app.command("list")
def list_command(org: str = ORG, as_email: str = typer.Option(..., "--as", help="The employee asking."),
                 json_out: bool = JSON) -> None:
    """The organization's MCP servers and the tools agents may use (how to reach them: admins only)."""
    from cristal.agents.mcp_servers import list_servers

    with database() as db:
        docs = list_servers(db, org, as_email)
    if json_out:
        print_json({"servers": docs})
        return
    show_table(f"MCP servers of {org}", ["server", "transport", "tools (effect)"],
               [[d["name"], d["transport"], ", ".join(f"{t} ({e})" for t, e in d["tools"].items())] for d in docs])


@mcp_app.command("tools")
def tools_command(
    name: str = NAME,
    allow: list[str] = typer.Option([], "--allow", help="TOOL or TOOL=read|write|destructive: let agents use it, "
                                                        "with that effect class (unset: write). Repeatable."),
    deny: list[str] = typer.Option([], "--deny", help="TOOL: agents may no longer use it. Repeatable."),
    org: str = ORG, as_email: str = ADMIN, json_out: bool = JSON,
) -> None:
    """Without options, connect and list the server's tools; with --allow/--deny, choose which agents may use."""
    from cristal.agents.mcp_servers import describe, parse_allow, set_tools

    cfg = settings()
    with database() as db:
        if not allow and not deny:
            listing = describe(db, cfg, org, as_email, name)
            if json_out:
                print_json(listing)
                return
            show_table(f"tools of MCP server {name}", ["tool", "allowed", "effect", "description"],
                       [[t["name"], "yes" if t["allowed"] else "no", t["effect"] or "", t["description"][:80]]
                        for t in listing["tools"]])
            return
        doc = set_tools(db, cfg, org, as_email, name, allow=parse_allow(allow), deny=deny)
    if json_out:
        print_json(doc)
    else:
        _print_server(doc)


@mcp_app.command("remove")
def remove_command(name: str = NAME, org: str = ORG, as_email: str = ADMIN, json_out: bool = JSON) -> None:
    """Forget an MCP server (agents that name it can no longer be asked)."""
    from cristal.agents.mcp_servers import remove

    with database() as db:
        doc = remove(db, org, as_email, name)
    if json_out:
        print_json(doc)
    else:
        show("removed MCP server {} from {}", name, org)


@mcp_app.command("serve")
def serve_command(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="Act as this employee: their access only."),
) -> None:
    """Serve search_knowledge, research and the employee's agents as MCP tools on stdin/stdout until stdin closes."""
    from cristal.agents.mcp_server import serve_stdio

    # stdout carries the protocol and nothing else: everything this command says goes to stderr.
    with database() as db:
        serve_stdio(db, settings(), org, as_email)
