"""``cristal audit``: read an organization's audit trail."""

from __future__ import annotations

import typer

from cristal.cli.runtime import JSON, acting, print_json, show_table, unit_of_work

app = typer.Typer()


@app.command("audit")
def audit_command(
    org: str | None = typer.Option(None, "--org", help="Organization slug; without it, the installation's records "
                                      "(e.g. failed API keys that name no key)."),
    as_email: str | None = typer.Option(None, "--as", help="Read as this employee (must be an admin)."),
    limit: int = typer.Option(200, "--limit", min=1, max=100000),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. user.manage."),
    decision: str | None = typer.Option(None, "--decision", help="allow or deny."),
    json_out: bool = JSON,
) -> None:
    """Show the audit trail of an organization, newest first."""
    from cristal.audit.log import query_audit
    from cristal.identity.authorize import require
    from cristal.identity.directory import in_org, org_by_slug
    from cristal.identity.resource import Resource

    with unit_of_work() as s:
        if org is None:  # records of no organization: only the installation principal reads them
            require(s, acting(s, None, as_email), "audit.read", Resource("audit", None))
        else:
            require(s, acting(s, org, as_email), "audit.read", in_org(org_by_slug(s, org), "audit"))
        entries = query_audit(s, org, limit=limit, action=action, decision=decision)
    if json_out:
        print_json({"org": org, "records": [e.as_dict() for e in entries]})
        return
    show_table(
        f"Audit trail of {org}" if org else "Audit trail of the installation",
        ["time (UTC)", "actor", "action", "resource", "decision", "reason"],
        [[e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.resource, e.decision, e.reason] for e in entries],
        row_style=lambda row: "red" if row[4] == "deny" else None,
    )
