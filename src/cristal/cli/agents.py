"""``cristal agent ...``: create, edit, publish, roll back, share and remove custom agents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from cristal.cli.runtime import JSON, database, print_json, settings, show, show_table, show_text

app = typer.Typer()
agent_app = typer.Typer(help="Custom agents: versioned definitions, shared with people and groups.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")

ORG = typer.Option(..., "--org", help="Organization slug.")
AS = typer.Option(..., "--as", help="The employee acting.")
AGENT = typer.Argument(..., help="The agent's name (its slug).")


def _out(doc: dict[str, Any], json_out: bool, human: Callable[[dict[str, Any]], None]) -> None:
    """One JSON document with ``--json``, else the human form."""
    if json_out:
        print_json(doc)
    else:
        human(doc)


def _print_summary(doc: dict[str, Any]) -> None:
    published = doc["published_version"]
    show("[bold]{}[/] in {} (created by {}): {}", doc["agent"], doc["org"], doc["created_by"],
         f"version {published} published" if published else "not published yet")
    show("  shared with: {}", ", ".join(doc["sharing"]) or "nobody (private)")


@agent_app.command("create")
def agent_create(file: str = typer.Argument(..., help="The agent file (YAML)."), org: str = ORG, as_email: str = AS,
                 json_out: bool = JSON) -> None:
    """Create an agent from a file; its definition is the draft until `cristal agent publish`."""
    from cristal.agents.definition import load_agent
    from cristal.agents.store import create

    definition = load_agent(file)
    with database() as db:
        doc = create(db, definition, org, as_email)
    if json_out:
        print_json(doc)
        return
    _print_summary(doc)
    show("  publish it: cristal agent publish {} --org {} --as {}", doc["agent"], org, as_email)


@agent_app.command("edit")
def agent_edit(agent: str = AGENT, file: str = typer.Argument(..., help="The new definition (YAML)."), org: str = ORG,
               as_email: str = AS, json_out: bool = JSON) -> None:
    """Replace the draft with a file (published versions stay as they are)."""
    from cristal.agents.definition import load_agent
    from cristal.agents.store import edit

    definition = load_agent(file)
    with database() as db:
        doc = edit(db, org, as_email, agent, definition)
    if json_out:
        print_json(doc)
    else:
        _print_summary(doc)
        show("  draft updated; publish it with `cristal agent publish {}`", doc["agent"])


@agent_app.command("publish")
def agent_publish(agent: str = AGENT, org: str = ORG, as_email: str = AS,
                  note: str = typer.Option("", "--note", help="What changed, kept with the version."),
                  json_out: bool = JSON) -> None:
    """Publish the draft as the next version: the one users get from now on."""
    from cristal.agents.store import publish

    with database() as db:
        doc = publish(db, org, as_email, agent, note)
    _out(doc, json_out, lambda doc: show("published {} version {}", doc["agent"], doc["version"]))


def _print_versions(agent: str, docs: list[dict[str, Any]]) -> None:
    if not docs:
        show("{} has no published version yet", agent)
        return
    show_table(f"Versions of {agent}", ["version", "published at", "by", "note", "current"],
               [[d["version"], d["published_at"][:19], d["published_by"], d["note"], "✓" if d["current"] else ""]
                for d in docs])


@agent_app.command("versions")
def agent_versions(agent: str = AGENT, org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """The published versions of an agent."""
    from cristal.agents.store import versions

    with database() as db:
        docs = versions(db, org, as_email, agent)
    if json_out:
        print_json({"agent": agent, "versions": docs})
    else:
        _print_versions(agent, docs)


@agent_app.command("rollback")
def agent_rollback(agent: str = AGENT, version: int = typer.Argument(..., help="The version to publish again."),
                   org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """Publish an older version again (as a new version; the draft becomes it too)."""
    from cristal.agents.store import rollback

    with database() as db:
        doc = rollback(db, org, as_email, agent, version)
    _out(doc, json_out, lambda doc: show("{} now serves version {} (the definition of version {})", doc["agent"],
                                         doc["version"], doc["rolled_back_to"]))


@agent_app.command("show")
def agent_show(agent: str = typer.Argument(..., help="AGENT or AGENT@VERSION (a pinned version)."), org: str = ORG,
               as_email: str = AS, json_out: bool = JSON) -> None:
    """The agent's published definition (or a pinned version)."""
    import yaml

    from cristal.agents.store import show as show_agent

    with database() as db:
        doc = show_agent(db, org, as_email, agent)
    if json_out:
        print_json(doc)
        return
    _print_summary(doc)
    show("  showing: {}", f"version {doc['version']}" if doc["version"] else "the draft")
    show_text(yaml.safe_dump(doc["spec"], allow_unicode=True, sort_keys=False))


@agent_app.command("list")
def agent_list(org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """The agents you may use: yours, those shared with you or your groups, the organization's."""
    from cristal.agents.store import list_agents

    with database() as db:
        docs = list_agents(db, org, as_email)
    if json_out:
        print_json({"agents": docs})
        return
    if not docs:
        show("no agents you may use in {}", org)
        return
    show_table(f"Agents in {org}", ["agent", "version", "relation", "created by", "description"],
               [[d["agent"], d["published_version"] or "draft", d["relation"], d["created_by"], d["description"]]
                for d in docs])


@agent_app.command("share")
def agent_share(agent: str = AGENT,
                grantee: str = typer.Argument(..., help="user:EMAIL, group:NAME or org."),
                org: str = ORG, as_email: str = AS,
                edit: bool = typer.Option(False, "--edit", help="Let them edit and publish too, not only use it."),
                json_out: bool = JSON) -> None:
    """Let a person, a group or the whole organization use (or edit) the agent."""
    from cristal.agents.store import share

    with database() as db:
        doc = share(db, org, as_email, agent, grantee, edit=edit)
    _out(doc, json_out, _print_summary)


@agent_app.command("unshare")
def agent_unshare(agent: str = AGENT, grantee: str = typer.Argument(..., help="user:EMAIL, group:NAME or org."),
                  org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """Take back a grant."""
    from cristal.agents.store import unshare

    with database() as db:
        doc = unshare(db, org, as_email, agent, grantee)
    _out(doc, json_out, _print_summary)


@agent_app.command("remove")
def agent_remove(agent: str = AGENT, org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """Remove an agent with its versions and grants (its creator or an admin)."""
    from cristal.agents.store import remove

    with database() as db:
        doc = remove(db, org, as_email, agent)
    _out(doc, json_out, lambda doc: show("removed {} from {}", agent, org))


@agent_app.command("policy")
def agent_policy(org: str = ORG, as_email: str = typer.Option(..., "--as", help="An admin of the organization."),
                 members_share_org: bool | None = typer.Option(
                     None, "--members-share-org/--admins-share-org",
                     help="Let members share agents with the whole organization, or leave that to admins."),
                 json_out: bool = JSON) -> None:
    """Show or set who may share agents organization-wide."""
    from cristal.agents.store import sharing_policy

    with database() as db:
        doc = sharing_policy(db, org, as_email, members_share_org=members_share_org)
    _out(doc, json_out, lambda doc: show("in {}, {} may share agents with the whole organization", doc["org"],
                                         "members" if doc["members_share_org"] else "only admins"))


@app.command("ask")
def ask_command(agent: str = typer.Argument(..., help="AGENT or AGENT@VERSION (a pinned version)."),
                question: str = typer.Argument(..., help="The question."), org: str = ORG, as_email: str = AS,
                json_out: bool = JSON) -> None:
    """Ask an agent one question, as the employee: its tools run with their rights only."""
    from cristal.agents.ask import ask

    with database() as db:
        doc = ask(db, settings(), org, as_email, agent, question)
    if json_out:
        print_json(doc)
        return
    for call in doc["tool_calls"]:
        show("[dim]tool {} {}: {}[/]", call["name"], call["status"], call.get("message") or "")
    show_text(doc["answer"])
    for c in doc["citations"]:
        show("  [{}] {}: “{}”", c["n"], c["uri"], c["quote"])
