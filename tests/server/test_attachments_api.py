"""Conversation attachments over real HTTP (``/api/v1/conversations/{id}/attachments``, and ``attachments`` when a
turn is sent): the owner's agent reads the file; a colleague, an admin and another organization's key get the 404
of a conversation that does not exist, and bad files are the documented error body with nothing stored."""

from __future__ import annotations

import base64
import json

from sqlalchemy import func, select

from cristal.db.schema import ConversationAttachment
from cristal.testing.scripted_model import ScriptedModel, text
from tests.server.conftest import Company, error_of
from tests.server.test_agents_api import agent, model, settings
from tests.server.test_conversations_api import ADMIN, AGENT, BASE, ENG, FIN, OUTSIDER

__all__ = ["agent", "model", "settings"]  # fixtures shared with the agents API's tests

NOTE = "Project Osprey: the launch password is KESTREL-99."


def _file(name: str, content: bytes) -> dict[str, str]:
    return {"filename": name, "content_base64": base64.b64encode(content).decode()}


def _attachments(company: Company) -> int:
    with company.db.session() as s:
        return s.scalar(select(func.count()).select_from(ConversationAttachment)) or 0


def test_attachments_are_read_by_the_owners_agent_only(client, company: Company, agent: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                       model: ScriptedModel) -> None:
    fin, eng, admin, outsider = client(FIN), client(ENG), client(ADMIN), client(OUTSIDER)
    model.push(text("Noted."))
    started = fin.post(BASE, json={"agent": AGENT, "message": "Keep this file.",
                                   "attachments": [_file("osprey.md", NOTE.encode())]})
    assert started.status_code == 200, started.text
    cid = started.json()["conversation_id"]
    assert "KESTREL-99" in json.dumps(model.chat_requests[-1].json["messages"])

    added = fin.post(f"{BASE}/{cid}/attachments", json=_file("memo.html", b"<p>Budget: 12 000 EUR.</p>"))
    assert added.status_code == 200, added.text
    assert (added.json()["filename"], added.json()["conversation_id"]) == ("memo.html", cid)
    listed = fin.get(f"{BASE}/{cid}/attachments").json()["attachments"]
    assert [a["filename"] for a in listed] == ["osprey.md", "memo.html"] and "text" not in listed[0]
    assert [a["filename"] for a in fin.get(f"{BASE}/{cid}").json()["attachments"]] == ["osprey.md", "memo.html"]

    model.push(text("KESTREL-99, 12 000 EUR."))
    assert fin.post(f"{BASE}/{cid}/messages", json={"message": "Password and budget?"}).status_code == 200
    seen = json.dumps(model.chat_requests[-1].json["messages"])
    assert "KESTREL-99" in seen and "12 000 EUR" in seen

    # A colleague the agent is shared with, an admin, another organization's key: the 404 of no conversation.
    for other in (eng, admin, outsider):
        for response in (other.get(f"{BASE}/{cid}/attachments"),
                         other.post(f"{BASE}/{cid}/attachments", json=_file("planted.txt", b"planted")),
                         other.get(f"{BASE}/{cid}")):
            assert response.status_code == 404 and error_of(response)["type"] == "not_found", response.text
    model.push(text("Nothing attached here."))
    assert eng.post(BASE, json={"agent": AGENT, "message": "Launch password?"}).status_code == 200
    assert "KESTREL" not in json.dumps(model.chat_requests[-1].json["messages"])
    assert _attachments(company) == 2

    for body, status, kind in ((_file("tool.exe", b"MZ"), 400, "invalid_request"),
                               (_file("broken.pdf", b"%PDF-1.7 broken"), 400, "invalid_request"),
                               ({"filename": "x.txt", "content_base64": "not base64!"}, 400, "invalid_request"),
                               ({"filename": "x.txt", "content_base64": "é"}, 400, "invalid_request"),
                               (_file("big.txt", b"x" * (2 * 1024 * 1024)), 413, "body_too_large")):
        response = fin.post(f"{BASE}/{cid}/attachments", json=body)
        assert response.status_code == status and error_of(response)["type"] == kind, response.text
    before = len(model.chat_requests)
    response = fin.post(f"{BASE}/{cid}/messages", json={"message": "Read it", "attachments": [_file("tool.exe", b"MZ")]})
    assert response.status_code == 400 and "unsupported file type" in error_of(response)["message"]
    assert len(model.chat_requests) == before and _attachments(company) == 2
