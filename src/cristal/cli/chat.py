"""``cristal chat AGENT``: an interactive conversation with an agent in the terminal.

Each line read from standard input is a message (so a script, or a test, can
pipe a conversation in); ``/new`` starts a new conversation, ``/attach PATH``
attaches a file to the conversation with the next message, and ``/exit`` (or
the end of input) ends the chat. The answer streams as the model writes it
and each tool call shows as it starts and as it ends. Every turn is stored in
one of the caller's conversations, exactly as ``cristal ask --conversation``
stores it (``agents.ask.prepare``); ``--conversation ID`` goes on with one.

A turn that fails (a spent budget, the model, a message too long) is one
``error:`` line on stderr; nothing of it is stored and the chat goes on. The
exit status is then that of the last failed turn, so a piped session that
went wrong does not pass for one that worked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from cristal.cli.runtime import database, note, read_attachment, settings, show, show_inline

if TYPE_CHECKING:
    from cristal.agents.runtime import TurnEvent

app = typer.Typer()

HELP = "type a message; /new starts a new conversation, /attach PATH adds a file with your next message, /exit ends the chat"


def _lines() -> Iterator[str]:
    """The user's lines: with a prompt on a terminal, else as piped in."""
    if sys.stdin.isatty():
        while True:
            try:
                yield input("you> ")
            except EOFError:
                return
    else:
        yield from sys.stdin


class _Printer:
    """Shows one turn's events as they happen: tool calls on their own lines, the answer's text inline."""

    def __init__(self) -> None:
        self.mid_line = False

    def __call__(self, event: TurnEvent) -> None:
        from cristal.agents.runtime import TextDelta, ToolCallFinished, ToolCallStarted

        if isinstance(event, TextDelta):
            show_inline(event.text)
            self.mid_line = not event.text.endswith("\n")
        elif isinstance(event, ToolCallStarted):
            self._line("[dim]… {} {}[/]", event.name, json.dumps(event.arguments, ensure_ascii=False)[:200])
        elif isinstance(event, ToolCallFinished):
            record = event.record
            self._line("[dim]{} {} {}{}[/]", "✓" if record.status == "ok" else "✗", record.name, record.status,
                       f": {record.message}" if record.message
                       else f": approval {record.approval_id}" if record.approval_id else "")

    def _line(self, template: str, *values: object) -> None:
        if self.mid_line:
            show_inline("\n")
            self.mid_line = False
        show(template, *values)

    def end(self, doc: dict[str, Any]) -> None:
        if self.mid_line:
            show_inline("\n")
        for c in doc["citations"]:
            show("  [{}] {}: “{}”", c["n"], c["uri"], c["quote"])
        usage = doc["usage"]
        show("[dim]conversation {} · {} tokens · {} USD[/]", doc["conversation_id"], usage["total_tokens"],
             usage["cost_usd"])


@app.command("chat")
def chat(agent: str = typer.Argument(..., help="AGENT or AGENT@VERSION (a pinned version)."),
         org: str = typer.Option(..., "--org", help="Organization slug."),
         as_email: str = typer.Option(..., "--as", help="The employee talking to the agent."),
         conversation: str | None = typer.Option(
             None, "--conversation", help="Go on with this conversation of yours (default: start a new one)."),
         ) -> None:
    """Talk with an agent: answers stream, tool calls show as they happen; /new, /attach PATH, /exit."""
    from cristal.agents import attachments, conversations
    from cristal.agents.ask import prepare, usable_config
    from cristal.agents.store import parse_ref
    from cristal.errors import CristalError, InvalidInput
    from cristal.models.gateway import Gateway

    cfg = settings()
    failed = 0
    attach: list[tuple[str, bytes]] = []  # files to go with the next message
    with database() as db, Gateway(cfg, db) as gateway:
        # Decided before the first line is read: an agent or a conversation the caller cannot use ends it here.
        config = usable_config(db, org, as_email, agent)
        if conversation is not None:
            past = conversations.history(db, org, as_email, conversation)
            if past.agent != parse_ref(agent)[0]:
                raise InvalidInput(f"conversation {conversation!r} is with agent {past.agent!r}, not {config.slug!r}")
        note("chatting with {} version {} as {}; " + HELP, config.slug, config.version, as_email)
        for line in _lines():
            message = line.strip()
            if not message:
                continue
            if message == "/exit":
                break
            if message == "/new":
                conversation = None
                note("a new conversation starts with your next message")
                continue
            if message.startswith("/attach "):
                try:
                    name, data = read_attachment(message.removeprefix("/attach ").strip(), cfg.attachment_max_bytes)
                    attachments.parse(cfg, name, data)  # a bad file is told now, not with the next message
                except CristalError as exc:
                    typer.echo(f"error: {exc.message}", err=True)
                    failed = exc.exit_code
                    continue
                attach.append((name, data))
                note("{} goes with your next message", name)
                continue
            printer = _Printer()
            files, attach = attach, []
            try:
                turn = prepare(db, cfg, org, as_email, agent, line.rstrip("\r\n"), conversation, gateway, files)
                doc = turn.run(on_event=printer)
            except CristalError as exc:
                if printer.mid_line:
                    show_inline("\n")
                typer.echo(f"error: {exc.message}", err=True)
                failed = exc.exit_code
                continue
            conversation = doc["conversation_id"]
            printer.end(doc)
    if failed:
        raise typer.Exit(failed)
