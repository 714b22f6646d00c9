"""``cristal mcp serve``: Cristal's knowledge as an MCP server on stdio, acting as one employee."""

from __future__ import annotations

import typer

from cristal.cli.runtime import database, settings

app = typer.Typer()
mcp_app = typer.Typer(help="The Model Context Protocol: Cristal as an MCP server.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def serve_command(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="Act as this employee: their access only."),
) -> None:
    """Serve search_knowledge and research as MCP tools on stdin/stdout until stdin closes."""
    from cristal.agents.mcp_server import serve_stdio

    # stdout carries the protocol and nothing else: everything this command says goes to stderr.
    with database() as db:
        serve_stdio(db, settings(), org, as_email)
