"""``cristal demo``: load the sample company and show what the platform does with it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from cristal.cli.runtime import initialise, markup, note, open_database, print_json, progress, settings, show, show_table

if TYPE_CHECKING:
    from cristal.db import Database
    from cristal.identity.principal import Principal

app = typer.Typer()

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


def _sync_all(db: Database, installation: Principal, quiet: bool) -> list[dict]:
    from cristal.knowledge.sources import list_sources
    from cristal.knowledge.sync import sync_source
    from cristal.sample.company import GROUP

    reports = []
    with progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), quiet=quiet) as bar:
        for company in GROUP:
            with db.session() as s:
                names = [i.name for i in list_sources(s, installation, company.slug)]
            for name in names:
                task = bar.add_task(markup("{}/{}", company.slug, name), total=None)

                def on_progress(phase: str, done: int, total: int, task: TaskID = task, label: str = f"{company.slug}/{name}") -> None:
                    bar.update(task, description=markup("{}: {}", label, phase), completed=done, total=total or None)

                report = sync_source(db, installation, company.slug, name, progress=on_progress)
                reports.append({"org": company.slug, **report.as_dict()})
    return reports


def _isolation(db: Database) -> list[dict]:
    from cristal.errors import AccessDenied
    from cristal.identity import users
    from cristal.identity.directory import resolve_principal

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
    from cristal.identity.directory import resolve_principal
    from cristal.knowledge.search import Searcher

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
    from cristal.cli.demo_agents import run_demo_agents
    from cristal.identity.principal import Principal
    from cristal.operator.demo import run_demo_operator
    from cristal.research.demo import demo_research
    from cristal.sample.company import load_company
    from cristal.sample.knowledge import connect_sources
    from cristal.workflows.demo import run_demo_workflow

    workspace = initialise()
    cfg = settings()
    db = open_database(cfg)
    home = Path(cfg.home)
    installation = Principal.installation()
    summary: dict = {"workspace": workspace}
    try:
        with db.session() as s:
            report = load_company(s, installation)
            summary["sources_added"] = [f"{o}/{n}" for o, n in connect_sources(s, installation, home)]
        summary["organizations_created"] = report.orgs_created
        summary["users_created"] = report.users_created
        summary["sync"] = _sync_all(db, installation, quiet=json_out)
        summary["access_checks"] = _isolation(db)
        summary["searches"] = _searches(db)
        summary["research"] = demo_research(db, home)
        summary["workflow"] = run_demo_workflow(db, home)
        summary["operator"] = run_demo_operator(db, home)
        summary["agents"] = run_demo_agents(db, cfg, home)
    finally:
        db.dispose()

    if json_out:
        print_json(summary)
        return
    _show(summary)


def _show(summary: dict) -> None:
    from cristal.sample.company import GROUP

    note("[bold]Cristal demo[/] — workspace {}", summary["workspace"]["home"])
    show_table("Aozora Group (sample company)", ["organization", "name", "employees (role: groups)"], [
        [company.slug, company.name, "\n".join(f"{e.email} ({e.role}: {', '.join(e.groups)})" for e in company.employees)]
        for company in GROUP
    ])
    show("created {} organizations and {} users and connected {} sources this run (existing ones kept)",
         len(summary["organizations_created"]), len(summary["users_created"]), len(summary["sources_added"]))

    show_table(
        "Knowledge sync (documents and ERP database of each company)",
        ["source", *(Column(c, justify="right") for c in ("added", "updated", "unchanged", "chunks", "embedded", "skipped", "seconds"))],
        [[f"{r['org']}/{r['source']}", r["added"], r["updated"], r["unchanged"], r["chunks_written"], r["embedded"],
          len(r["skipped"]), f"{r['seconds']:.1f}"] for r in summary["sync"]],
    )

    def top_results(hits: list[dict]) -> str | Text:
        titles = list(dict.fromkeys(f"{h['title']} [{h['lang']}]" for h in hits))
        return "\n".join(titles) or Text("no results they may see", style="dim")

    show_table("Same question, different employees: each sees only what they may read", ["employee", "query", "top results"],
               [[f"{s['as']}\n({s['org']})", s["query"], top_results(s["hits"])] for s in summary["searches"]])

    r = summary["research"]
    show("[bold]Deep Research[/] ({}, as {}): {}\n  {}: {} citations from {} sources; disagreements: {}\n  report: {} and {}",
         r["mode"], r["as"], r["question"], r["status"], r["citations"], len(r["sources"]),
         ", ".join(r["disagreements"]) or "none", r["markdown"], r["html"])

    w = summary["workflow"]
    show("[bold]Workflow[/] expense-review (as lukas.weber@aozora-de.example): {} pending claims over 200 EUR from the ERP, "
         "{} flagged by the policy check, the Munich hotel limit researched ({} citations, "
         "{} disagreement(s) between documents); run {} is {} for {}\n"
         "  approve it: [bold]{}[/]  then: [bold]{}[/]",
         w["claims"], w["flagged"], w["research_citations"], w["research_disagreements"], w["run_id"], w["status"],
         ", ".join(w["approvers"] or []), w["approve_command"], w["continue_command"])

    o = summary["operator"]
    show('[bold]Operator[/] in the Expenses app (as {}): "{}"\n'
         "  recorded {} steps ({}); app reset; replayed with no model: {}, {} steps in {} s; "
         "task done according to the app's database: {}\n  recording: {}  (try: cristal webapps, cristal replay FILE)",
         o["as"], o["task"], o["steps"], o["recorded_status"], o["replay_status"], o["replayed_steps"], o["replay_seconds"],
         "yes" if o["task_done_after_replay"] else "NO", o["record"])

    a = summary["agents"]
    show_table("Agents (published by anna.schmidt, shared with aozora-de; scripted model on loopback)",
               ["agent", "version", "tools", "what it does"],
               [[p["agent"], p["version"], ", ".join(p["tools"]), p["description"]] for p in a["published"]])

    def calls(ask: dict) -> str:
        return "\n".join(f"{c['name']}: {c['status']}" + (f" {c['approval_id']}" if c.get("approval_id") else "")
                         for c in ask["tool_calls"])

    show_table("Asking the agents: each employee gets what they may see, with verified citations",
               ["agent", "employee", "question", "answer", "tool calls"],
               [[q["agent"], q["as"], q["question"], q["answer"] + "".join(f"\n[{c['n']}] {c['uri'].rsplit('/', 1)[-1]}"
                                                                          for c in q["citations"]), calls(q)]
                for q in a["asks"]])
    r = a["operator_run"]
    show("[bold]Expense filer[/]: the Operator run {} waited for approval {}; {} (finance) approved {} step(s); run {}; "
         "claim submitted according to the Expenses app: {}", r["run_id"], r["waited_for"], r["approver"], len(r["approved"]),
         r["status"], "yes" if r["claim_submitted"] else "NO")
    show('try: [bold]cristal ask travel-expense-helper "Wie hoch ist die Hotelobergrenze in München?" --org aozora-de '
         '--as jonas.becker@aozora-de.example[/] (with CRISTAL_LLM_BASE_URL set to a model)')

    show_table("Authorization in action (every decision is in the audit trail)", ["actor", "asks to list users of", "result"],
               [[c["actor"], c["lists users of"], c["result"]] for c in summary["access_checks"]],
               row_style=lambda row: "red" if str(row[2]).startswith("denied") else "green")
    show('try: [bold]cristal search "Hotelobergrenze München" --org aozora-de --as jonas.becker@aozora-de.example[/]')
    show("     [bold]cristal audit --org aozora-de[/] shows every search and the refused cross-organization attempt")
