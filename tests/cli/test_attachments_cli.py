"""``cristal ask --attach`` and ``cristal conversation attach|attachments`` as a user types them: the agent reads
the file in that conversation only; a bad file is one line, exit non-zero, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_agents_cli import ASKABLE, _acme, _file, _json, _use_model
from tests.conftest import Invoke


def test_ask_attach_reads_the_file_in_its_conversation_only(cli_in_process: Invoke, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, text

    run = _acme(cli_in_process, ("fin", "--group", "finance"), ("eng", "--group", "engineering"))
    me = ("--org", "acme", "--as", "fin@acme.example")
    eng = ("--org", "acme", "--as", "eng@acme.example")
    assert run("agent", "create", _file(tmp_path, ASKABLE), *me).code == 0
    assert run("agent", "publish", "finance-helper", *me).code == 0
    notes = _file(tmp_path, "<html><body><h1>Offsite</h1><p>Room code HERON-7.</p></body></html>", "notes.html")
    more = _file(tmp_path, "Dinner at eight.", "more.txt")

    with ScriptedModel([text("HERON-7."), text("Eight."), text("No idea.")]) as model:
        _use_model(monkeypatch, model.base_url)
        doc = _json(run("ask", "finance-helper", "Room code?", *me, "--attach", notes, "--attach", more, "--json"))
        cid = doc["conversation_id"]
        listed = _json(run("conversation", "attachments", cid, *me, "--json"))["attachments"]
        assert [a["filename"] for a in listed] == ["notes.html", "more.txt"]
        assert _json(run("conversation", "attach", cid, more, *me, "--json"))["filename"] == "more.txt"
        _json(run("ask", "finance-helper", "When is dinner?", *me, "--conversation", cid, "--json"))
        _json(run("ask", "finance-helper", "Room code?", *eng, "--json"))
        seen = [json.dumps(r.json["messages"]) for r in model.chat_requests]
    assert "HERON-7" in seen[0] and "HERON-7" in seen[1] and "HERON-7" not in seen[2]
    theirs = run("conversation", "attachments", cid, *eng)
    assert theirs.code == 3 and len(theirs.stderr.strip().splitlines()) == 1 and "unknown conversation" in theirs.stderr

    before = _json(run("conversation", "list", *me, "--json"))["conversations"]
    for path, message in ((_file(tmp_path, "MZ", "tool.exe"), "unsupported file type: .exe"),
                          (_file(tmp_path, "%PDF-1.7 broken", "broken.pdf"), "cannot attach broken.pdf"),
                          (str(tmp_path / "missing.txt"), "cannot attach")):
        bad = run("ask", "finance-helper", "Read it", *me, "--attach", path)
        assert bad.code != 0 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    monkeypatch.setenv("CRISTAL_ATTACHMENT_MAX_BYTES", "5")
    big = run("conversation", "attach", cid, more, *me)
    assert big.code != 0 and "attachment_max_bytes" in big.stderr and len(big.stderr.strip().splitlines()) == 1
    assert _json(run("conversation", "list", *me, "--json"))["conversations"] == before
    assert len(_json(run("conversation", "attachments", cid, *me, "--json"))["attachments"]) == 3


def test_chat_attach_sends_the_file_with_the_next_message(cli_in_process: Invoke, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.testing.scripted_model import ScriptedModel, text

    run = _acme(cli_in_process, ("fin", "--group", "finance"), ("eng", "--group", "engineering"))
    me = ("--org", "acme", "--as", "fin@acme.example")
    assert run("agent", "create", _file(tmp_path, ASKABLE), *me).code == 0
    assert run("agent", "publish", "finance-helper", *me).code == 0
    notes = _file(tmp_path, "The locker code is 4711.", "locker.txt")
    with ScriptedModel([text("Hello."), text("4711."), text("Still 4711.")]) as model:
        _use_model(monkeypatch, model.base_url)
        tool = _file(tmp_path, "MZ", "tool.exe")
        lines = ["Hello", f"/attach {tool}", f"/attach {notes}", "Locker code?", "Again?"]
        result = run("chat", "finance-helper", *me, input="".join(f"{line}\n" for line in lines))
        seen = [json.dumps(r.json["messages"]) for r in model.chat_requests]
    assert "unsupported file type: .exe" in result.stderr and result.code != 0  # told at once; the chat went on
    assert "4711" not in seen[0] and "4711" in seen[1] and "4711" in seen[2]
    [conversation] = _json(run("conversation", "list", *me, "--json"))["conversations"]
    attached = _json(run("conversation", "attachments", conversation["conversation_id"], *me, "--json"))["attachments"]
    assert [a["filename"] for a in attached] == ["locker.txt"]
