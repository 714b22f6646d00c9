"""``cristal agent`` end to end, as a user types it: create, publish, show, share, versions, rollback, remove."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import ANY

import pytest

from tests.agents.conftest import Hook, hook
from tests.conftest import CliResult, Invoke

__all__ = ["hook"]  # the fixture, shared with the agents tests

AGENT = """\
name: expense-helper
description: Answers travel and expense questions.
instructions: {instructions}
tools:
  - search_knowledge
  - sql: {{source: erp}}
"""


def _json(result: CliResult) -> dict:
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def workspace(cli_in_process: Invoke, tmp_path: Path) -> Invoke:
    for args in (("init",), ("org", "create", "acme"), ("org", "create", "globex"),
                 ("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance"),
                 ("user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering"),
                 ("user", "add", "fin@globex.example", "--org", "globex", "--group", "finance")):
        assert cli_in_process(*args).code == 0
    return cli_in_process


def _file(tmp_path: Path, text: str, name: str = "agent.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_create_publish_share_and_roll_back(workspace: Invoke, tmp_path: Path) -> None:
    run = workspace
    me = ("--org", "acme", "--as", "fin@acme.example")
    created = _json(run("agent", "create", _file(tmp_path, AGENT.format(instructions="first")), *me, "--json"))
    assert created["agent"] == "expense-helper" and created["published_version"] is None
    assert _json(run("agent", "publish", "expense-helper", *me, "--note", "first cut", "--json"))["version"] == 1
    assert run("agent", "edit", "expense-helper", _file(tmp_path, AGENT.format(instructions="second")), *me).code == 0
    run("agent", "publish", "expense-helper", *me)

    other = ("--org", "acme", "--as", "eng@acme.example")
    hidden = run("agent", "show", "expense-helper", *other, "--json")
    assert hidden.code == 3 and hidden.stdout == ""
    assert hidden.stderr.strip() == "error: unknown agent 'expense-helper' in organization 'acme'"
    assert _json(run("agent", "share", "expense-helper", "group:engineering", *me, "--json"))["sharing"] == [
        "group:engineering"]
    shown = _json(run("agent", "show", "expense-helper", *other, "--json"))
    assert (shown["version"], shown["spec"]["instructions"], shown["can_edit"]) == (2, "second", False)
    assert _json(run("agent", "show", "expense-helper@1", *other, "--json"))["spec"]["instructions"] == "first"
    assert [a["agent"] for a in _json(run("agent", "list", *other, "--json"))["agents"]] == ["expense-helper"]

    denied = run("agent", "publish", "expense-helper", *other)
    assert denied.code == 5 and len(denied.stderr.strip().splitlines()) == 1

    back = _json(run("agent", "rollback", "expense-helper", "1", *me, "--json"))
    assert (back["version"], back["rolled_back_to"]) == (3, 1)
    versions = _json(run("agent", "versions", "expense-helper", *me, "--json"))["versions"]
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, False), (3, True)]
    table = run("agent", "versions", "expense-helper", *me)
    assert table.code == 0 and "rollback to version 1" in table.stdout
    assert "instructions: first" in run("agent", "show", "expense-helper", *other).stdout

    # Another organization's people do not see it, not even by its name.
    outside = run("agent", "show", "expense-helper", "--org", "globex", "--as", "fin@globex.example")
    assert outside.code == 3 and "unknown agent" in outside.stderr
    assert run("agent", "remove", "expense-helper", *other).code == 5
    assert _json(run("agent", "remove", "expense-helper", *me, "--json")) == {"agent": "expense-helper", "removed": True}
    assert run("agent", "show", "expense-helper", *me).code == 3


@pytest.mark.parametrize(("text", "code", "message"), [
    ("name: x\ninstructions: hi\ntools:\n  - sql: {sorce: erp}\n", 2, "agent.yaml:4: tools.0.sql.source: missing field"),
    ("name: x\ninstructions: hi\ntools: [teleport]\n", 2, "agent.yaml:3: tools.0: unknown tool 'teleport'"),
    ("name: x\ninstructions: hi\nsharing: [group:nobody]\n", 3, "unknown group 'nobody' in organization 'acme'"),
    ("name: x\ninstructions: hi\nsharing: [org]\n", 5, "agent.share.org"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(workspace: Invoke, tmp_path: Path, text: str, code: int,
                                                   message: str) -> None:
    result = workspace("agent", "create", _file(tmp_path, text), "--org", "acme", "--as", "fin@acme.example", "--json")
    assert result.code == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.stderr
    assert _json(workspace("agent", "list", "--org", "acme", "--as", "fin@acme.example", "--json")) == {"agents": []}


def test_the_sharing_policy_is_an_admins(workspace: Invoke, tmp_path: Path) -> None:
    assert workspace("user", "add", "boss@acme.example", "--org", "acme", "--role", "admin").code == 0
    assert workspace("agent", "policy", "--org", "acme", "--as", "fin@acme.example").code == 5
    doc = _json(workspace("agent", "policy", "--org", "acme", "--as", "boss@acme.example", "--members-share-org", "--json"))
    assert doc == {"org": "acme", "members_share_org": True}
    path = _file(tmp_path, AGENT.format(instructions="hi") + "sharing: [org]\n")
    assert _json(workspace("agent", "create", path, "--org", "acme", "--as", "fin@acme.example", "--json"))["sharing"] == ["org"]
    listed = _json(workspace("agent", "list", "--org", "acme", "--as", "eng@acme.example", "--json"))["agents"]
    assert [(a["agent"], a["relation"]) for a in listed] == [("expense-helper", "org")]
    missing = workspace("agent", "create", str(tmp_path / "none.yaml"), "--org", "acme", "--as", "fin@acme.example")
    assert missing.code == 2 and "no such agent file" in missing.stderr


def test_as_a_real_process(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    for args in (("init",), ("org", "create", "acme"), ("user", "add", "fin@acme.example", "--org", "acme")):
        assert cli(*args).code == 0
    bad = cli("agent", "create", _file(tmp_path, "name: x\ninstructions: hi\ncolour: red\n"), "--org", "acme",
              "--as", "fin@acme.example", "--json")
    assert bad.code == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'agent.yaml'}:3: colour: unknown field"]
    good = cli("agent", "create", _file(tmp_path, AGENT.format(instructions="hi")), "--org", "acme",
               "--as", "fin@acme.example", "--json")
    assert json.loads(good.stdout)["agent"] == "expense-helper"


ASKABLE = """\
name: finance-helper
instructions: Answer from the documents only; cite every fact.
tools:
  - search_knowledge
sharing: [group:engineering]
"""


def _cited_answer(request: dict) -> object:
    """Cite the IBAN passage if the tool returned it, else say nothing answers."""
    from cristal.testing.scripted_model import text

    for message in request["messages"]:
        if message["role"] == "tool":
            for p in (json.loads(message["content"]).get("output") or {}).get("passages", []):
                if "IBAN" in p["text"]:
                    return text(f"Kumo Components is paid to IBAN DE89 3704 0044 0532 0130 00 [{p['n']}].")
    return text("I found nothing about that.")


def test_ask_answers_each_employee_from_what_they_may_read(cli_in_process: Invoke, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, tool_call
    from tests.knowledge.conftest import write_tree

    run = cli_in_process
    docs = write_tree(tmp_path / "wiki")
    for args in (("init",), ("org", "create", "acme"),
                 ("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance"),
                 ("user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering"),
                 ("source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", str(docs)),
                 ("sync", "--org", "acme")):
        assert run(*args).code == 0, args
    me = ("--org", "acme", "--as", "fin@acme.example")
    assert run("agent", "create", _file(tmp_path, ASKABLE), *me).code == 0
    unpublished = run("ask", "finance-helper", "Who is paid to which IBAN?", *me)
    assert unpublished.code == 2 and "no published version" in unpublished.stderr
    assert run("agent", "publish", "finance-helper", *me).code == 0

    search = tool_call("search_knowledge", {"query": "Kumo Components IBAN"})
    with ScriptedModel([search, _cited_answer, search, _cited_answer]) as model:
        monkeypatch.setenv("CRISTAL_LLM_BASE_URL", model.base_url)
        monkeypatch.setenv("CRISTAL_LLM_API_KEY", "k")
        monkeypatch.setenv("CRISTAL_LLM_MODEL", "scripted")
        fin = _json(run("ask", "finance-helper", "Who is paid to which IBAN?", *me, "--json"))
        eng = _json(run("ask", "finance-helper", "Who is paid to which IBAN?", "--org", "acme", "--as",
                        "eng@acme.example", "--json"))
        sent_for_eng = json.dumps([r.json for r in model.chat_requests[2:]])
    assert set(fin) >= {"agent", "version", "conversation_id", "answer", "citations", "tool_calls"}
    assert (fin["agent"], fin["version"]) == ("finance-helper", 1)
    [citation] = fin["citations"]
    assert citation["uri"].endswith("bank.txt") and "IBAN DE89" in citation["quote"]
    assert fin["tool_calls"] == [{"name": "search_knowledge", "arguments": {"query": "Kumo Components IBAN"},
                                  "status": "ok"}]
    # The same agent, asked by an employee outside finance: the document never reaches the model.
    assert eng["citations"] == [] and "DE89" not in eng["answer"] and "DE89" not in sent_for_eng
    assert fin["conversation_id"] != eng["conversation_id"]
    # Outside the organization, or for an agent that does not exist: unknown, one line.
    missing = run("ask", "no-such-agent", "hello", *me)
    assert missing.code == 3 and len(missing.stderr.strip().splitlines()) == 1


def _acme(run: Invoke, *people: tuple[str, ...]) -> Invoke:
    """A workspace with organization acme and ``(NAME, user add options...)`` as NAME@acme.example."""
    for args in (("init",), ("org", "create", "acme"),
                 *(("user", "add", f"{name}@acme.example", "--org", "acme", *options) for name, *options in people)):
        assert run(*args).code == 0, args
    return run


def _use_model(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    for name, value in (("BASE_URL", base_url), ("API_KEY", "k"), ("MODEL", "scripted")):
        monkeypatch.setenv(f"CRISTAL_LLM_{name}", value)


def test_conversations_are_stored_continued_and_private(cli_in_process: Invoke, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, text

    run = _acme(cli_in_process, ("boss", "--role", "admin"), ("fin", "--group", "finance"),
                ("eng", "--group", "engineering"))
    me = ("--org", "acme", "--as", "fin@acme.example")
    eng = ("--org", "acme", "--as", "eng@acme.example")
    assert run("agent", "create", _file(tmp_path, ASKABLE), *me).code == 0
    assert run("agent", "publish", "finance-helper", *me).code == 0

    with ScriptedModel([text("Hello, finance."), text("Still here.")]) as model:
        _use_model(monkeypatch, model.base_url)
        first = _json(run("ask", "finance-helper", "Hello?", *me, "--json"))
        cid = first["conversation_id"]
        second = _json(run("ask", "finance-helper", "Are you there?", *me, "--conversation", cid, "--json"))
        # Another employee, even one the agent is shared with, cannot continue it: unknown, one line, exit 3.
        theirs = run("ask", "finance-helper", "Let me read it", *eng, "--conversation", cid)
        history = [(m["role"], m["content"]) for m in model.chat_requests[1].json["messages"][1:]]
        assert len(model.chat_requests) == 2
    assert second["conversation_id"] == cid and second["answer"] == "Still here."
    assert history == [("user", "Hello?"), ("assistant", "Hello, finance."), ("user", "Are you there?")]
    assert theirs.code == 3 and len(theirs.stderr.strip().splitlines()) == 1 and "unknown conversation" in theirs.stderr

    listed = _json(run("conversation", "list", *me, "--json"))["conversations"]
    assert [(c["conversation_id"], c["turns"], c["title"]) for c in listed] == [(cid, 2, "Hello?")]
    assert _json(run("conversation", "list", *eng, "--json")) == {"conversations": []}
    exported = _json(run("conversation", "export", cid, *me))
    assert exported["format"] == "cristal.conversation/1"
    assert [m["message"]["content"] for m in exported["messages"]] == ["Hello?", "Hello, finance.", "Are you there?",
                                                                      "Still here."]
    assert run("conversation", "export", cid, *me, "--out", str(tmp_path / "c.json")).code == 0
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == {**exported, "exported_at": ANY}
    shown = run("conversation", "show", cid, *me)
    assert shown.code == 0 and "Still here." in shown.stdout
    assert _json(run("conversation", "rename", cid, "Greetings", *me, "--json"))["title"] == "Greetings"
    # An admin neither reads nor deletes it.
    boss = ("--org", "acme", "--as", "boss@acme.example")
    for args in (("show", cid), ("export", cid), ("rename", cid, "x"), ("delete", cid)):
        denied = run("conversation", *args, *boss)
        assert denied.code == 3 and len(denied.stderr.strip().splitlines()) == 1, args
    assert run("conversation", "retention", *me, "--days", "30").code == 5
    assert _json(run("conversation", "retention", *boss, "--days", "30", "--json")) == {"org": "acme",
                                                                                        "retention_days": 30}
    assert _json(run("conversation", "purge", *boss, "--json")) == {"org": "acme", "retention_days": 30, "deleted": 0}
    assert _json(run("conversation", "delete", cid, *me, "--json")) == {"conversation_id": cid, "deleted": True}
    assert run("conversation", "show", cid, *me).code == 3


TESTED = """\
name: policy-bot
instructions: Answer briefly.
tools: [search_knowledge]
sharing: [group:engineering]
policy: {{tests_must_pass: true}}
tests:
  - ask: "Hotel cap in Munich?"
    expect: ["{fact}"]
  - ask: "Search for it"
    tools: [search_knowledge]
"""


def test_tests_gate_publish_and_stats_count_turns_and_thumbs(cli_in_process: Invoke, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, text, tool_call

    run = _acme(cli_in_process, ("fin", "--group", "finance"), ("eng", "--group", "engineering"),
                ("ops", "--group", "operations"))
    me = ("--org", "acme", "--as", "fin@acme.example")
    assert run("agent", "create", _file(tmp_path, TESTED.format(fact="200 EUR")), *me).code == 0
    search = tool_call("search_knowledge", {"query": "hotel"})
    # Each run of the two cases (test, refused publish, publish, test): an answer, then a search and an answer.
    script = [text("The cap is 180 EUR."), search, text("Found nothing.")] * 4 + [text("180 EUR."), text("Sure.")]
    with ScriptedModel(script) as model:
        _use_model(monkeypatch, model.base_url)
        failing = run("agent", "test", "policy-bot", *me, "--draft", "--json")
        assert failing.code == 1, failing.stderr
        report = json.loads(failing.stdout)
        assert (report["passed"], report["failed"], report["total"], report["version"]) == (False, 1, 2, None)
        assert report["cases"][0]["reasons"] == ["the answer does not contain '200 EUR'"]
        assert report["cases"][1]["passed"] and report["cases"][1]["tool_calls"][0]["name"] == "search_knowledge"
        refused = run("agent", "publish", "policy-bot", *me)
        assert refused.code == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert "1 of 2 test cases fail, so it is not published (policy.tests_must_pass)" in refused.stderr
        assert _json(run("agent", "versions", "policy-bot", *me, "--json"))["versions"] == []

        assert run("agent", "edit", "policy-bot", _file(tmp_path, TESTED.format(fact="180 eur")), *me).code == 0
        published = _json(run("agent", "publish", "policy-bot", *me, "--json"))
        assert (published["version"], published["tests"]) == (1, {"passed": True, "failed": 0, "total": 2})
        table = run("agent", "test", "policy-bot", *me)
        assert table.code == 0 and "pass" in table.stdout and "FAIL" not in table.stdout, table.stdout

        cid = _json(run("ask", "policy-bot", "Hotel cap?", *me, "--json"))["conversation_id"]
        _json(run("ask", "policy-bot", "Thanks", *me, "--conversation", cid, "--json"))
        assert len(model.chat_requests) == len(script)
    rated = _json(run("conversation", "rate", cid, "--down", "--message", "2", *me, "--json"))
    assert (rated["turn"], rated["rating"]) == (1, "down")
    assert _json(run("conversation", "rate", cid, "--up", *me, "--json"))["turn"] == 2
    # Only the conversation's owner rates it; a seq that is no answer is refused.
    assert run("conversation", "rate", cid, "--up", "--org", "acme", "--as", "eng@acme.example").code == 3
    assert run("conversation", "rate", cid, "--up", "--message", "1", *me).code == 2
    assert run("conversation", "rate", cid, *me).code == 2

    stats = _json(run("agent", "stats", "policy-bot", *me, "--json"))
    [v1] = stats["versions"]
    assert {k: v1[k] for k in ("version", "conversations", "turns", "messages", "tool_calls", "errors", "thumbs_up",
                               "thumbs_down")} == {"version": 1, "conversations": 1, "turns": 2, "messages": 4,
                                                   "tool_calls": 0, "errors": 0, "thumbs_up": 1, "thumbs_down": 1}
    assert v1["turns_by_way_in"] == {"conversation": 2, "api": 0, "workflow": 0} and v1["tokens"] > 0
    assert stats["total"]["turns"] == 2
    assert _json(run("agent", "stats", "policy-bot", *me, "--since", "2999-01-01", "--json"))["versions"] == []
    human = run("agent", "stats", "policy-bot", *me, "--since", "7d")
    assert human.code == 0 and "Usage of policy-bot" in human.stdout
    # A use grant does not show the statistics (exit 5); for anyone else the agent does not exist (exit 3).
    assert run("agent", "stats", "policy-bot", "--org", "acme", "--as", "eng@acme.example").code == 5
    assert run("agent", "stats", "policy-bot", "--org", "acme", "--as", "ops@acme.example").code == 3
    bad = run("agent", "stats", "policy-bot", *me, "--since", "last tuesday")
    assert bad.code == 2 and "invalid --since" in bad.stderr


POSTER = """\
name: poster
instructions: Post what the user asks to the hook.
sharing: [group:engineering]
tools:
  - http: {{endpoints: [{{name: hook, url: "{url}", method: POST}}]}}
policy: {{approve: always, approvers: ["group:finance"]}}
"""


def test_a_write_waits_for_an_approval_and_goes_on_after_it(cli_in_process: Invoke, tmp_path: Path, hook: Hook,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, text, tool_call

    run = cli_in_process
    for args in (("init",), ("org", "create", "acme"),
                 ("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance"),
                 ("user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering")):
        assert run(*args).code == 0, args
    fin, eng = ("--org", "acme", "--as", "fin@acme.example"), ("--org", "acme", "--as", "eng@acme.example")
    assert run("agent", "create", _file(tmp_path, POSTER.format(url=hook.url)), *fin).code == 0
    assert run("agent", "publish", "poster", *fin).code == 0
    note = {"note": "Lunch at noon"}
    with ScriptedModel([tool_call("http", {"url": hook.url, "method": "POST", "json": note}), text("Posted.")]) as model:
        for name, value in (("BASE_URL", model.base_url), ("API_KEY", "k"), ("MODEL", "scripted")):
            monkeypatch.setenv(f"CRISTAL_LLM_{name}", value)
        monkeypatch.setenv("CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE", "true")
        asked = _json(run("ask", "poster", "Post the note 'Lunch at noon' to the hook.", *eng, "--json"))
        cid, [call] = asked["conversation_id"], asked["tool_calls"]
        assert asked["status"] == "needs_approval" and call["status"] == "needs_approval" and hook.received == []

        [approval] = _json(run("approvals", "list", *fin, "--json"))["approvals"]
        assert (approval["id"], approval["subject"]) == (call["approval_id"], "conversation")
        assert approval["details"]["arguments"] == call["arguments"] and approval["approvers"] == ["group:finance"]
        listed = run("approvals", "list", *fin)
        assert "call: http" in listed.stdout and "Lunch at noon" in listed.stdout
        early = run("ask", "poster", *eng, "--conversation", cid)
        assert early.code == 2 and "waits for approval" in early.stderr and len(early.stderr.strip().splitlines()) == 1
        denied = run("approvals", "approve", call["approval_id"], "--as", "eng@acme.example")
        assert denied.code != 0 and "may not decide" in denied.stderr  # not among the approvers
        assert run("approvals", "approve", call["approval_id"], "--as", "fin@acme.example").code == 0

        after = _json(run("ask", "poster", *eng, "--conversation", cid, "--json"))
        model.push(tool_call("http", {"url": hook.url, "method": "POST", "json": note}))
        shown = run("ask", "poster", "Post the note 'Lunch at noon' to the hook.", *eng)
    assert shown.code == 0 and "waiting for approval apr_" in shown.stdout and "--conversation" in shown.stdout
    assert after["answer"] == "Posted." and after["tool_calls"][0]["status"] == "ok"
    assert hook.received == [("POST", "/hook", note)]  # once: the second ask waits
    no_question = run("ask", "poster", *eng)
    assert no_question.code == 2 and "question is empty" in no_question.stderr


def test_a_model_or_tool_the_organization_does_not_allow_is_one_line(workspace: Invoke, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = workspace
    me = ("--org", "acme", "--as", "fin@acme.example")
    named = _file(tmp_path, "name: big\ninstructions: x\nmodel: large\n")
    refused = run("agent", "create", named, *me)
    assert refused.code == 2 and refused.stderr.count("\n") == 1
    assert "organization 'acme' does not offer the model 'large'" in refused.stderr
    monkeypatch.setenv("CRISTAL_AGENT_MODELS", '{"acme": ["large"]}')
    monkeypatch.setenv("CRISTAL_AGENT_TOOLS", '{"*": ["search_knowledge"]}')
    assert run("agent", "create", named, *me).code == 0
    operate = _file(tmp_path, "name: filer\ninstructions: x\ntools:\n  - operate: {allow_domains: [apps.example]}\n", "f.yaml")
    refused = run("agent", "create", operate, *me)
    assert refused.code == 2 and "does not allow the tool 'operate' (it allows: search_knowledge)" in refused.stderr
    # Allowed when drafted, no longer when published (or asked).
    monkeypatch.delenv("CRISTAL_AGENT_TOOLS")
    assert run("agent", "create", operate, *me).code == 0
    monkeypatch.setenv("CRISTAL_AGENT_TOOLS", '{"acme": ["search_knowledge"]}')
    refused = run("agent", "publish", "filer", *me)
    assert refused.code == 2 and "does not allow the tool 'operate'" in refused.stderr
