"""``cristal agent ...``: create, edit, publish, roll back, share and remove custom agents; ``cristal ask`` and
``cristal conversation ...``: ask them, and the caller's stored conversations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from cristal.cli.runtime import JSON, database, print_json, settings, show, show_table, show_text

app = typer.Typer()
agent_app = typer.Typer(help="Custom agents: versioned definitions, shared with people and groups.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
conversation_app = typer.Typer(help="Your stored conversations with agents (private to you).", no_args_is_help=True)
app.add_typer(conversation_app, name="conversation")

ORG = typer.Option(..., "--org", help="Organization slug.")
AS = typer.Option(..., "--as", help="The employee acting.")
AGENT = typer.Argument(..., help="The agent's name (its slug).")
CONVERSATION = typer.Argument(..., help="The conversation's id (from `cristal ask --json` or `cristal conversation list`).")


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
                question: str | None = typer.Argument(
                    None, help="The question (may be left out to go on with a conversation after an approval)."),
                org: str = ORG, as_email: str = AS,
                conversation: str | None = typer.Option(
                    None, "--conversation", help="Continue this conversation of yours (default: start a new one)."),
                json_out: bool = JSON) -> None:
    """Ask an agent one question, as the employee: its tools run with their rights only."""
    from cristal.agents.ask import ask

    with database() as db:
        doc = ask(db, settings(), org, as_email, agent, question, conversation_id=conversation)
    if json_out:
        print_json(doc)
        return
    for call in doc["tool_calls"]:
        show("[dim]tool {} {}: {}[/]", call["name"], call["status"], call.get("message") or "")
    show_text(doc["answer"])
    for c in doc["citations"]:
        show("  [{}] {}: “{}”", c["n"], c["uri"], c["quote"])
    if doc.get("status") == "needs_approval":
        waiting = next(c["approval_id"] for c in doc["tool_calls"] if c["status"] == "needs_approval")
        show("[yellow]waiting for approval {}[/]: an approver runs `cristal approvals approve {} --as EMAIL`; then go on "
             "with `cristal ask {} --conversation {} --org {} --as {}`", waiting, waiting, agent, doc["conversation_id"],
             org, as_email)
        return
    show("[dim]conversation {} (continue it with --conversation)[/]", doc["conversation_id"])


def _print_conversation(doc: dict[str, Any]) -> None:
    show("[bold]{}[/] with {} version {}: {} turns, {} tokens, {} USD", doc["title"], doc["agent"], doc["version"],
         doc["turns"], doc["tokens"], doc["cost_usd"])
    show("  id {}, last turn {}", doc["conversation_id"], doc["updated_at"][:19])


@conversation_app.command("list")
def conversation_list(org: str = ORG, as_email: str = AS,
                      agent: str | None = typer.Option(None, "--agent", help="Only the conversations with this agent."),
                      json_out: bool = JSON) -> None:
    """Your conversations, the latest first."""
    from cristal.agents.conversations import list_conversations

    with database() as db:
        docs = list_conversations(db, org, as_email, agent)
    if json_out:
        print_json({"conversations": docs})
        return
    if not docs:
        show("no conversations of yours in {}", org)
        return
    show_table(f"Conversations of {as_email}", ["id", "agent", "version", "title", "turns", "last turn"],
               [[d["conversation_id"], d["agent"], d["version"], d["title"], d["turns"], d["updated_at"][:19]]
                for d in docs])


@conversation_app.command("show")
def conversation_show(conversation: str = CONVERSATION, org: str = ORG, as_email: str = AS,
                      json_out: bool = JSON) -> None:
    """One of your conversations: what was asked and answered, with the tool calls."""
    from cristal.agents.conversations import show as show_conversation

    with database() as db:
        doc = show_conversation(db, org, as_email, conversation)
    if json_out:
        print_json(doc)
        return
    _print_conversation(doc)
    for m in doc["messages"]:
        for call in m["tool_calls"] or []:
            show("[dim]  tool {} {}[/]", call["name"], call["status"])
        content = m["message"].get("content")
        if m["role"] in ("user", "assistant") and isinstance(content, str) and content:
            show("[bold]{}:[/]", "you" if m["role"] == "user" else doc["agent"])
            show_text(content)


@conversation_app.command("rename")
def conversation_rename(conversation: str = CONVERSATION, title: str = typer.Argument(..., help="The new title."),
                        org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """Give one of your conversations a new title."""
    from cristal.agents.conversations import rename

    with database() as db:
        doc = rename(db, org, as_email, conversation, title)
    _out(doc, json_out, _print_conversation)


@conversation_app.command("delete")
def conversation_delete(conversation: str = CONVERSATION, org: str = ORG, as_email: str = AS,
                        json_out: bool = JSON) -> None:
    """Delete one of your conversations with all its messages."""
    from cristal.agents.conversations import delete_conversation

    with database() as db:
        doc = delete_conversation(db, org, as_email, conversation)
    _out(doc, json_out, lambda doc: show("deleted conversation {}", doc["conversation_id"]))


@conversation_app.command("export")
def conversation_export(conversation: str = CONVERSATION, org: str = ORG, as_email: str = AS,
                        out: str | None = typer.Option(None, "--out", help="Write the JSON document to this file.")
                        ) -> None:
    """One of your conversations as a JSON document with every message (on stdout, or --out FILE)."""
    import json
    from pathlib import Path

    from cristal.agents.conversations import export

    with database() as db:
        doc = export(db, org, as_email, conversation)
    if out is None:
        print_json(doc)
        return
    Path(out).write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    show("wrote conversation {} to {}", doc["conversation_id"], out)


@conversation_app.command("retention")
def conversation_retention(org: str = ORG, as_email: str = typer.Option(..., "--as", help="An admin of the organization."),
                           days: int | None = typer.Option(None, "--days", help="Keep conversations this many days "
                                                           "after their last turn."),
                           keep_forever: bool = typer.Option(False, "--keep-forever", help="Keep them until deleted."),
                           json_out: bool = JSON) -> None:
    """Show or set how long the organization keeps conversations."""
    from cristal.agents.conversations import retention

    with database() as db:
        doc = retention(db, org, as_email, days=days, keep_forever=keep_forever)
    _out(doc, json_out, lambda doc: show("in {}, conversations are kept {}", doc["org"],
                                         f"{doc['retention_days']} days after their last turn"
                                         if doc["retention_days"] else "until they are deleted"))


@conversation_app.command("purge")
def conversation_purge(org: str = ORG, as_email: str | None = typer.Option(
                           None, "--as", help="An admin of the organization (default: the installation, as a "
                           "scheduled job)."),
                       days: int | None = typer.Option(None, "--days", help="Instead of the organization's retention."),
                       json_out: bool = JSON) -> None:
    """Delete the organization's conversations not updated within its retention."""
    from cristal.agents.conversations import purge

    with database() as db:
        doc = purge(db, org, days, email=as_email)
    _out(doc, json_out, lambda doc: show("deleted {} conversations in {} (retention: {})", doc["deleted"], doc["org"],
                                         f"{doc['retention_days']} days" if doc["retention_days"] else "none set"))
