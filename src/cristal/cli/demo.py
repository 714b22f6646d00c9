"""``cristal demo``: load the sample group company and show what the platform does with it."""

from __future__ import annotations

import typer
from rich.table import Table

from cristal.cli.app import app
from cristal.cli.runtime import err, out, print_json
from cristal.cli.setup import initialise
from cristal.config import load_settings
from cristal.db import Database
from cristal.errors import AccessDenied
from cristal.identity import users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.sample.company import GROUP, load_company


@app.command("demo")
def demo_command(json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables.")) -> None:
    """Load the sample company (Aozora Group) and run the showcase."""
    workspace = initialise()
    db = Database(load_settings().effective_database_url)
    summary: dict = {"workspace": workspace}
    try:
        with db.session() as s:
            report = load_company(s, Principal.operator())
        summary["organizations_created"] = report.orgs_created
        summary["users_created"] = report.users_created

        # Show isolation: an admin of one company is refused in another, and the refusal is audited.
        checks = []
        for actor_org, actor_email, target_org in (
            ("aozora-jp", "yuki.tanaka@aozora.example", "aozora-jp"),
            ("aozora-jp", "yuki.tanaka@aozora.example", "aozora-de"),
            ("aozora-de", "lukas.weber@aozora-de.example", "aozora-de"),
        ):
            with db.session() as s:
                actor = resolve_principal(s, actor_org, actor_email)
            try:
                with db.session() as s:
                    count = len(users.list_users(s, actor, target_org))
                checks.append({"actor": actor.label, "lists users of": target_org, "result": f"allowed ({count} users)"})
            except AccessDenied as exc:
                checks.append({"actor": actor.label, "lists users of": target_org, "result": "denied: " + str(exc).rsplit(": ", 1)[-1]})
        summary["access_checks"] = checks
    finally:
        db.dispose()

    if json_out:
        print_json(summary)
        return
    err.print(f"[bold]Cristal demo[/] — workspace {workspace['home']}")
    table = Table(title="Aozora Group (sample company)")
    for column in ("organization", "name", "employees (role: groups)"):
        table.add_column(column)
    for company in GROUP:
        people = "\n".join(f"{e.email} ({e.role}: {', '.join(e.groups)})" for e in company.employees)
        table.add_row(company.slug, company.name, people)
    out.print(table)
    created = len(summary["organizations_created"]), len(summary["users_created"])
    out.print(f"created {created[0]} organizations and {created[1]} users this run (existing ones kept)")
    checks_table = Table(title="Authorization in action (every decision is in the audit trail)")
    for column in ("actor", "asks to list users of", "result"):
        checks_table.add_column(column)
    for c in summary["access_checks"]:
        checks_table.add_row(c["actor"], c["lists users of"], c["result"], style="red" if c["result"].startswith("denied") else "green")
    out.print(checks_table)
    out.print("next: [bold]cristal audit --org aozora-de[/] shows the refused cross-organization attempt")
