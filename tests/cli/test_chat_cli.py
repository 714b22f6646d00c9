"""``cristal chat`` as a real process with its input piped in, against a scripted model on loopback.

Two employees talk to the same agent (finance may read the supplier document,
engineering may not); one conversation is stored per chat until ``/new``, and
``--conversation`` goes on with one of your own only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cristal.testing.scripted_model import ScriptedModel, http_status, text, tool_call
from tests.cli.test_agents_cli import ASKABLE, _cited_answer, _file, _json
from tests.conftest import CliResult, Invoke

FIN = ("--org", "acme", "--as", "fin@acme.example")
ENG = ("--org", "acme", "--as", "eng@acme.example")
QUESTION = "Who is paid to which IBAN?"
SEARCH = tool_call("search_knowledge", {"query": "Kumo Components IBAN"})


@pytest.fixture
def model(cli_in_process: Invoke, tmp_path: Path) -> Iterator[ScriptedModel]:
    """acme (finance and engineering) and globex, the wiki indexed, finance-helper published; the model's env."""
    from tests.knowledge.conftest import write_tree

    docs = write_tree(tmp_path / "wiki")
    for args in (("init",), ("org", "create", "acme"), ("org", "create", "globex"),
                 ("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance"),
                 ("user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering"),
                 ("user", "add", "fin@globex.example", "--org", "globex", "--group", "finance"),
                 ("source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", str(docs)),
                 ("sync", "--org", "acme"), ("agent", "create", _file(tmp_path, ASKABLE), *FIN),
                 ("agent", "publish", "finance-helper", *FIN)):
        assert cli_in_process(*args).code == 0, args
    with ScriptedModel() as m:
        yield m


def _env(model: ScriptedModel) -> dict[str, str]:
    return {"CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "scripted"}


def _chat(cli, model: ScriptedModel, lines: list[str], *args: str) -> CliResult:  # type: ignore[no-untyped-def]  # the cli fixture is untyped
    """``cristal chat finance-helper ARGS`` in a new process, ``lines`` piped into it."""
    result: CliResult = cli("chat", "finance-helper", *args, input="".join(f"{line}\n" for line in lines),
                            extra_env=_env(model))
    return result


def _in_process(cli_in_process: Invoke, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``chat(lines, *args)``: the same command with the same piped input in this process (faster than a new one)."""
    for name, value in _env(model).items():
        monkeypatch.setenv(name, value)

    def chat(lines: list[str], *args: str) -> CliResult:
        return cli_in_process("chat", "finance-helper", *args, input="".join(f"{line}\n" for line in lines))

    return chat


def test_chat_streams_shows_tool_calls_and_keeps_one_conversation(cli, cli_in_process: Invoke,  # type: ignore[no-untyped-def]  # the cli fixture is untyped
                                                                  model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    model.push(SEARCH, _cited_answer, text("You are welcome."), text("Hello again."))
    result = _chat(cli, model, [QUESTION, "", "Thanks!", "/new", "Hi", "/exit", "never sent"], *FIN)
    assert result.code == 0, result.stderr
    out = result.stdout
    # The tool call as it started and as it ended, then the streamed answer with its checked citation.
    started, finished = out.index("… search_knowledge"), out.index("✓ search_knowledge ok")
    assert started < finished < out.index("Kumo Components is paid to IBAN DE89") < out.index("  [1] ")
    assert "You are welcome." in out and "Hello again." in out
    assert "chatting with finance-helper version 1" in result.stderr and "Traceback" not in result.stderr
    assert len(model.chat_requests) == 4 and all(r.json["stream"] for r in model.chat_requests)
    conversations = _json(cli_in_process("conversation", "list", *FIN, "--json"))["conversations"]
    assert sorted((c["title"], c["turns"]) for c in conversations) == [("Hi", 1), (QUESTION, 2)]
    first = next(c["conversation_id"] for c in conversations if c["turns"] == 2)
    found = _json(cli_in_process("conversation", "list", *FIN, "--query", "welcome", "--json"))["conversations"]
    assert [c["conversation_id"] for c in found] == [first]
    assert f"conversation {first}" in out
    markdown = cli_in_process("conversation", "export", first, *FIN, "--markdown")
    assert markdown.code == 0 and markdown.stdout.startswith(f"# {QUESTION}\n") and "## 2. You" in markdown.stdout

    # --conversation goes on with it: the model gets the stored history.
    chat = _in_process(cli_in_process, model, monkeypatch)
    model.push(text("Still here."))
    again = chat(["Are you there?"], *FIN, "--conversation", first)
    assert again.code == 0 and "Still here." in again.stdout
    sent = [(m["role"], m["content"]) for m in model.chat_requests[-1].json["messages"] if m["role"] != "tool"]
    assert sent[1] == ("user", QUESTION) and sent[-3:] == [("user", "Thanks!"), ("assistant", "You are welcome."),
                                                          ("user", "Are you there?")]

    # Engineering asks the same agent: the finance document never reaches the model, nor the screen.
    model.push(SEARCH, _cited_answer)
    start = len(model.chat_requests)
    eng = chat([QUESTION], *ENG)
    assert eng.code == 0 and "DE89" not in eng.stdout
    assert "DE89" not in json.dumps([r.json for r in model.chat_requests[start:]])


def test_bad_input_is_one_line_and_nothing_half_written(cli_in_process: Invoke, model: ScriptedModel,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    chat = _in_process(cli_in_process, model, monkeypatch)
    model.push(text("Hello, finance."))
    assert chat(["Hello?"], *FIN).code == 0
    [mine] = _json(cli_in_process("conversation", "list", *FIN, "--json"))["conversations"]
    cid = mine["conversation_id"]
    refused = [
        chat(["Let me read it"], *ENG, "--conversation", cid),  # a colleague's conversation
        chat(["hi"], *FIN, "--conversation", "no-such-conversation"),
        chat(["hi"], "--org", "globex", "--as", "fin@globex.example"),  # another organization
    ]
    for result in refused:
        lines = result.stderr.strip().splitlines()
        assert result.code == 3 and len(lines) == 1 and lines[0].startswith("error: unknown"), result.stderr
        assert "Hello" not in result.stdout
    # A message too long, then a turn whose model fails: one line each, the chat goes on, nothing of them is stored.
    model.push(text("Short answer."), http_status(500))
    result = chat(["x" * 2001, "A short one", "This one fails"], *FIN, "--conversation", cid)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "at most 2000" in errors[0] and "Traceback" not in result.stderr
    assert "Short answer." in result.stdout and result.code != 0
    shown = _json(cli_in_process("conversation", "show", cid, *FIN, "--json"))
    assert shown["turns"] == 2 and [m["message"]["content"] for m in shown["messages"]] == [
        "Hello?", "Hello, finance.", "A short one", "Short answer."]
