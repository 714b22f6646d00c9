"""``cristal demo``: load the sample company and show what the platform does with it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
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
from cristal.knowledge.search import Searcher
from cristal.knowledge.sources import list_sources
from cristal.knowledge.sync import sync_source
from cristal.operator.demo import run_demo_operator
from cristal.research.demo import demo_research
from cristal.workflows.demo import run_demo_workflow
from cristal.sample.company import GROUP, load_company
from cristal.sample.knowledge import connect_sources

# (org, employee, query): the same question asked by people with different access.
SEARCHES = [
    ("aozora-de", "lukas.weber@aozora-de.example", "IBAN Lieferant Rheinfilter"),
    ("aozora-de", "jonas.becker@aozora-de.example", "IBAN Lieferant Rheinfilter"),
    ("aozora-de", "mia.fischer@aozora-de.example", "Gehaltsbänder Senior Engineer"),
    ("aozora-de", "lukas.weber@aozora-de.example", "Gehaltsbänder Senior Engineer"),
    ("aozora-de", "jonas.becker@aozora-de.example", "What is the warranty period for Sora air purifiers in Germany?"),
    ("aozora-jp", "kenji.sato@aozora.example", "出張旅費の精算期限"),
    ("aozora-jp", "daiki.kobayashi@aozora.example", "Sora Pro 2 launch date"),
    ("aozora-us", "michael.brown@aozora-us.example", "pending expenses above 100"),
]
ISOLATION_CHECKS = (
    ("aozora-jp", "yuki.tanaka@aozora.example", "aozora-jp"),
    ("aozora-jp", "yuki.tanaka@aozora.example", "aozora-de"),
    ("aozora-de", "lukas.weber@aozora-de.example", "aozora-de"),
)


def _sync_all(db: Database, operator: Principal, quiet: bool) -> list[dict]:
    reports = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True, disable=quiet) as bar:
        for company in GROUP:
            with db.session() as s:
                names = [i.name for i in list_sources(s, operator, company.slug)]
            for name in names:
                task = bar.add_task(f"{company.slug}/{name}", total=None)

                def progress(phase: str, done: int, total: int, task=task, label=f"{company.slug}/{name}") -> None:  # type: ignore[no-untyped-def]
                    bar.update(task, description=f"{label}: {phase}", completed=done, total=total or None)

                report = sync_source(db, operator, company.slug, name, progress=progress)
                reports.append({"org": company.slug, **report.as_dict()})
    return reports


def _isolation(db: Database) -> list[dict]:
    checks = []
    for actor_org, actor_email, target_org in ISOLATION_CHECKS:
        with db.session() as s:
            actor = resolve_principal(s, actor_org, actor_email)
        try:
            with db.session() as s:
                count = len(users.list_users(s, actor, target_org))
            checks.append({"actor": actor.label, "lists users of": target_org, "result": f"allowed ({count} users)"})
        except AccessDenied as exc:
            checks.append({"actor": actor.label, "lists users of": target_org, "result": "denied: " + str(exc).rsplit(": ", 1)[-1]})
    return checks


def _searches(db: Database) -> list[dict]:
    searcher = Searcher(db)
    results = []
    for org, email, query in SEARCHES:
        with db.session() as s:
            principal = resolve_principal(s, org, email)
        hits = searcher.search(principal, query, limit=5)
        results.append({"org": org, "as": email, "query": query, "hits": [h.as_dict() for h in hits]})
    return results


@app.command("demo")
def demo_command(json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables.")) -> None:
    """Load the sample company (Aozora Group), index its knowledge and run the showcase."""
    workspace = initialise()
    settings = load_settings()
    db = Database(settings.effective_database_url)
    operator = Principal.operator()
    summary: dict = {"workspace": workspace}
    try:
        with db.session() as s:
            report = load_company(s, operator)
            summary["sources_added"] = [f"{o}/{n}" for o, n in connect_sources(s, operator, Path(settings.home))]
        summary["organizations_created"] = report.orgs_created
        summary["users_created"] = report.users_created
        summary["sync"] = _sync_all(db, operator, quiet=json_out)
        summary["access_checks"] = _isolation(db)
        summary["searches"] = _searches(db)
        summary["research"] = demo_research(db, Path(settings.home))
        summary["workflow"] = run_demo_workflow(db, Path(settings.home))
        summary["operator"] = run_demo_operator(db, Path(settings.home))
    finally:
        db.dispose()

    if json_out:
        print_json(summary)
        return
    _show(summary)


def _show(summary: dict) -> None:
    err.print(f"[bold]Cristal demo[/] — workspace {summary['workspace']['home']}")
    table = Table(title="Aozora Group (sample company)")
    for column in ("organization", "name", "employees (role: groups)"):
        table.add_column(column)
    for company in GROUP:
        people = "\n".join(f"{e.email} ({e.role}: {', '.join(e.groups)})" for e in company.employees)
        table.add_row(company.slug, company.name, people)
    out.print(table)
    out.print(f"created {len(summary['organizations_created'])} organizations and {len(summary['users_created'])} users "
              f"and connected {len(summary['sources_added'])} sources this run (existing ones kept)")

    sync = Table(title="Knowledge sync (documents and ERP database of each company)")
    for column in ("source", "added", "updated", "unchanged", "chunks", "embedded", "skipped", "seconds"):
        sync.add_column(column, justify="right" if column != "source" else "left")
    for r in summary["sync"]:
        sync.add_row(f"{r['org']}/{r['source']}", str(r["added"]), str(r["updated"]), str(r["unchanged"]),
                     str(r["chunks_written"]), str(r["embedded"]), str(len(r["skipped"])), f"{r['seconds']:.1f}")
    out.print(sync)

    searches = Table(title="Same question, different employees: each sees only what they may read")
    for column in ("employee", "query", "top results"):
        searches.add_column(column)
    for s in summary["searches"]:
        titles = list(dict.fromkeys(f"{h['title']} [{h['lang']}]" for h in s["hits"]))
        top = "\n".join(titles) or "[dim]no results they may see[/]"
        searches.add_row(f"{s['as']}\n({s['org']})", s["query"], top)
    out.print(searches)

    r = summary["research"]
    out.print(f"[bold]Deep Research[/] ({r['mode']}, as {r['as']}): {r['question']}\n  {r['status']}: {r['citations']} citations from "
              f"{len(r['sources'])} sources; disagreements: {', '.join(r['disagreements']) or 'none'}\n  report: {r['markdown']} and {r['html']}")

    w = summary["workflow"]
    out.print(f"[bold]Workflow[/] expense-review (as lukas.weber@aozora-de.example): {w['claims']} pending claims over 200 EUR from the ERP, "
              f"{w['flagged']} flagged by the policy check, the Munich hotel limit researched ({w['research_citations']} citations, "
              f"{w['research_disagreements']} disagreement(s) between documents); run {w['run_id']} is {w['status']} for "
              f"{', '.join(w['approvers'] or [])}\n"
              f"  approve it: [bold]{w['approve_command']}[/]  then: [bold]{w['continue_command']}[/]")

    o = summary["operator"]
    out.print(f"[bold]Operator[/] in the Expenses app (as {o['as']}): \"{o['task']}\"\n"
              f"  recorded {o['steps']} steps ({o['recorded_status']}); app reset; replayed with no model: {o['replay_status']}, "
              f"{o['replayed_steps']} steps in {o['replay_seconds']} s; task done according to the app's database: "
              f"{'yes' if o['task_done_after_replay'] else 'NO'}\n  recording: {o['record']}  (try: cristal webapps, cristal replay FILE)")

    checks = Table(title="Authorization in action (every decision is in the audit trail)")
    for column in ("actor", "asks to list users of", "result"):
        checks.add_column(column)
    for c in summary["access_checks"]:
        checks.add_row(c["actor"], c["lists users of"], c["result"], style="red" if c["result"].startswith("denied") else "green")
    out.print(checks)
    out.print("try: [bold]cristal search \"Hotelobergrenze München\" --org aozora-de --as jonas.becker@aozora-de.example[/]")
    out.print("     [bold]cristal audit --org aozora-de[/] shows every search and the refused cross-organization attempt")
