"""What ``make fuzz`` (scripts/fuzz.py) and the suite's short fuzz test share: a workspace, a model, the checks.

The workspace is real (SQLite, two organizations, documents synced for
search); the model endpoint is a ``ScriptedModel`` on loopback that answers
every call sensibly (a research plan when JSON is asked for, a short cited
sentence otherwise), so the routes that call a model run to their end rather
than stopping at "no model configured". Nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cristal.testing.scripted_model import Reply, ScriptedModel, json_reply, text

# The schemathesis checks the server must pass: no 5xx, every answer as the OpenAPI document says, a request
# without the key refused, and methods a path does not serve refused with the right Allow header.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
          "response_schema_conformance", "ignored_auth", "unsupported_method", "allow_header_conformance")

MEMBER = "member@acme.example"
MODEL = "scripted"


def _answer(request: dict[str, Any]) -> Reply:
    if request.get("response_format"):  # structured output: the only one Cristal asks for is a research plan
        return json_reply({"subquestions": ["What is the hotel cap in Munich?"]})
    return text("The hotel cap in Munich is 150 EUR [1].")


def fuzz_model() -> ScriptedModel:
    """A model endpoint that answers every chat call (start it with ``with``)."""
    return ScriptedModel(default=_answer, models=(MODEL,))


def fuzz_workspace(root: Path) -> tuple[str, str]:
    """Build the workspace under ``root``; returns its database URL and the API key of acme's member."""
    from cristal.db import Database
    from cristal.identity import orgs, users
    from cristal.identity.apikeys import create_api_key
    from cristal.identity.directory import resolve_principal
    from cristal.identity.principal import Principal
    from cristal.knowledge import sources
    from cristal.knowledge.sync import sync_source

    url = f"sqlite:///{root / 'cristal.db'}"
    db = Database(url)
    db.upgrade()
    installation = Principal.installation("fuzz")
    with db.session() as s:
        for org in ("acme", "globex"):
            orgs.create_org(s, installation, org)
            users.add_user(s, installation, org, f"admin@{org}.example", role="admin")
            users.add_user(s, installation, org, f"member@{org}.example", groups=["finance"])
            folder = root / "docs" / org
            (folder / "finance").mkdir(parents=True)
            (folder / ".cristal-acl").write_text("org\n")
            (folder / "travel.md").write_text(f"# Travel\n\nThe hotel cap for {org} in Munich is 150 EUR.\n")
            (folder / "finance" / ".cristal-acl").write_text("group:finance\n")
            (folder / "finance" / "bank.md").write_text(f"# Payments\n\n{org} pays its suppliers within 30 days.\n")
            sources.add_source(s, installation, org, "wiki", "files", str(folder))
    for org in ("acme", "globex"):
        sync_source(db, installation, org, "wiki", embed=False)
    with db.session() as s:
        member = resolve_principal(s, "acme", MEMBER)
        key = create_api_key(s, member, "acme", MEMBER, name="fuzz")[1]
    db.dispose()
    return url, key
