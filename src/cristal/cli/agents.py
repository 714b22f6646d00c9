"""``cristal agent ...``: create, edit, publish, roll back, share and remove custom agents; ``cristal ask`` and
``cristal conversation ...``: ask them, and the caller's stored conversations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from cristal.cli.runtime import JSON, database, print_json, read_attachment, settings, show, show_table, show_text

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
        doc = create(db, definition, org, as_email, settings=settings())
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
        doc = edit(db, org, as_email, agent, definition, settings=settings())
    if json_out:
        print_json(doc)
    else:
        _print_summary(doc)
        show("  draft updated; publish it with `cristal agent publish {}`", doc["agent"])


@agent_app.command("publish")
def agent_publish(agent: str = AGENT, org: str = ORG, as_email: str = AS,
                  note: str = typer.Option("", "--note", help="What changed, kept with the version."),
                  json_out: bool = JSON) -> None:
    """Publish the draft as the next version: the one users get from now on (after its tests, if it asks that)."""
    from cristal.agents.evaluation import publish

    with database() as db:
        doc = publish(db, settings(), org, as_email, agent, note)
    _out(doc, json_out, lambda doc: show("published {} version {}{}", doc["agent"], doc["version"],
                                         f" ({doc['tests']['total']} test cases passed)" if "tests" in doc else ""))


@agent_app.command("test")
def agent_test(agent: str = typer.Argument(..., help="AGENT or AGENT@VERSION (default: the published version)."),
               org: str = ORG, as_email: str = AS,
               draft: bool = typer.Option(False, "--draft", help="Test the draft instead (those who may edit it)."),
               json_out: bool = JSON) -> None:
    """Run the agent's test cases as the employee; exit 1 when one fails."""
    from cristal.agents.evaluation import run_tests

    with database() as db:
        doc = run_tests(db, settings(), org, as_email, agent, draft=draft)
    if json_out:
        print_json(doc)
    else:
        which = "the draft" if doc["draft"] else f"version {doc['version']}"
        show_table(f"Tests of {doc['agent']} ({which}) as {as_email}", ["#", "question", "result", "why"],
                   [[c["n"], c["ask"], "pass" if c["passed"] else "FAIL", "; ".join(c["reasons"])] for c in doc["cases"]],
                   row_style=lambda row: None if row[2] == "pass" else "red")
        if not doc["cases"]:
            show("{} has no test cases", doc["agent"])
        else:
            show("{} of {} test cases passed", doc["total"] - doc["failed"], doc["total"])
    if not doc["passed"]:
        raise typer.Exit(1)


@agent_app.command("stats")
def agent_stats(agent: str = AGENT, org: str = ORG, as_email: str = AS,
                since: str | None = typer.Option(None, "--since", help="Only turns since then: 7d, 24h, a date "
                                                 "(2026-11-01) or an ISO time."),
                json_out: bool = JSON) -> None:
    """Usage per version: conversations, turns, messages, tool calls, errors, tokens, cost, thumbs up and down."""
    from cristal.agents.analytics import parse_since, stats

    start = parse_since(since) if since else None
    with database() as db:
        doc = stats(db, org, as_email, agent, start)
    if json_out:
        print_json(doc)
        return
    columns = ["version", "conversations", "turns", "messages", "tool calls", "errors", "tokens", "cost (USD)", "thumbs up",
               "thumbs down"]

    def row(label: object, d: dict[str, Any]) -> list[object]:
        return [label, d["conversations"], d["turns"], d["messages"], d["tool_calls"], d["errors"], d["tokens"],
                f"{d['cost_usd']:.4f}", d["thumbs_up"], d["thumbs_down"]]

    title = f"Usage of {doc['agent']}" + (f" since {doc['since'][:19]}" if doc["since"] else "")
    show_table(title, columns, [*(row(v["version"], v) for v in doc["versions"]), row("all", doc["total"])])


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
                attach: list[str] = typer.Option(
                    [], "--attach", help="A file (PDF, DOCX, HTML, e-mail, Markdown, text) the agent reads in this "
                    "conversation only; repeatable."),
                json_out: bool = JSON) -> None:
    """Ask an agent one question, as the employee: its tools run with their rights only."""
    from cristal.agents.ask import ask

    config = settings()
    files = [read_attachment(path, config.attachment_max_bytes) for path in attach]
    with database() as db:
        doc = ask(db, config, org, as_email, agent, question, conversation_id=conversation, attach=files)
    if json_out:
        print_json(doc)
        return
    for call in doc["tool_calls"]:
        waits = f"approval {call['approval_id']} (cristal approvals approve ID --as APPROVER)" if call.get("approval_id") else ""
        show("[dim]tool {} {}: {}[/]", call["name"], call["status"], call.get("message") or waits)
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


@conversation_app.command("attach")
def conversation_attach(conversation: str = CONVERSATION,
                        file: str = typer.Argument(..., help="The file (PDF, DOCX, HTML, e-mail, Markdown, text)."),
                        org: str = ORG, as_email: str = AS, json_out: bool = JSON) -> None:
    """Attach a file to one of your conversations: the agent reads it there, and nowhere else."""
    from cristal.agents.conversations import attach

    config = settings()
    name, data = read_attachment(file, config.attachment_max_bytes)
    with database() as db:
        doc = attach(db, config, org, as_email, conversation, name, data)
    _out(doc, json_out, lambda doc: show("attached {} ({} characters{}) as {}", doc["filename"], doc["chars"],
                                         ", cut" if doc["truncated"] else "", doc["attachment_id"]))


@conversation_app.command("attachments")
def conversation_attachments(conversation: str = CONVERSATION, org: str = ORG, as_email: str = AS,
                             json_out: bool = JSON) -> None:
    """The files attached to one of your conversations."""
    from cristal.agents.conversations import attachments_of

    with database() as db:
        docs = attachments_of(db, org, as_email, conversation)
    if json_out:
        print_json({"attachments": docs})
        return
    show_table(None, ["id", "file", "bytes", "characters", "attached"],
               [[d["attachment_id"], d["filename"], d["size_bytes"], d["chars"], d["created_at"][:19]] for d in docs])


def _print_conversation(doc: dict[str, Any]) -> None:
    show("[bold]{}[/] with {} version {}: {} turns, {} tokens, {} USD", doc["title"], doc["agent"], doc["version"],
         doc["turns"], doc["tokens"], doc["cost_usd"])
    show("  id {}, last turn {}", doc["conversation_id"], doc["updated_at"][:19])


@conversation_app.command("list")
def conversation_list(org: str = ORG, as_email: str = AS,
                      agent: str | None = typer.Option(None, "--agent", help="Only the conversations with this agent."),
                      query: str | None = typer.Option(None, "--query", help="Only those whose title, questions or "
                                                       "answers contain this text."),
                      json_out: bool = JSON) -> None:
    """Your conversations, the latest first."""
    from cristal.agents.conversations import list_conversations

    with database() as db:
        docs = list_conversations(db, org, as_email, agent, query)
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


@conversation_app.command("rate")
def conversation_rate(conversation: str = CONVERSATION, org: str = ORG, as_email: str = AS,
                      up: bool | None = typer.Option(None, "--up/--down", help="Thumbs up or thumbs down."),
                      message: int | None = typer.Option(None, "--message", help="The answer's seq "
                                                         "(`cristal conversation show --json`; default: the latest)."),
                      json_out: bool = JSON) -> None:
    """Rate an answer of one of your conversations, thumbs up or down (rating again replaces it)."""
    from cristal.agents.conversations import rate
    from cristal.errors import InvalidInput

    if up is None:
        raise InvalidInput("give --up or --down")
    with database() as db:
        doc = rate(db, org, as_email, conversation, up, message)
    _out(doc, json_out, lambda doc: show("rated turn {} of conversation {}: thumbs {}", doc["turn"],
                                         doc["conversation_id"], doc["rating"]))


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
                        out: str | None = typer.Option(None, "--out", help="Write the document to this file."),
                        markdown: bool = typer.Option(False, "--markdown", help="Markdown instead of JSON.")) -> None:
    """One of your conversations as a JSON (or Markdown) document with every message (on stdout, or --out FILE)."""
    import json
    from pathlib import Path

    from cristal.agents.conversations import as_markdown, export

    with database() as db:
        doc = export(db, org, as_email, conversation)
    if out is None:
        if markdown:
            show_text(as_markdown(doc).rstrip("\n"))
        else:
            print_json(doc)
        return
    text = as_markdown(doc) if markdown else json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    Path(out).write_text(text, encoding="utf-8")
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
