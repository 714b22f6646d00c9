"""Registering MCP servers per organization: org admins only (audited), tools allowed with effect classes read
from the real SDK test server, another organization's servers do not exist; and the `cristal mcp` commands."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import select

from cristal.agents import mcp_servers
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import AuditRecord
from cristal.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound
from tests.agents.test_mcp_client import SERVER_SCRIPT

ADMIN, FIN, OTHER_ADMIN = "admin@acme.example", "fin@acme.example", "admin@globex.example"
COMMAND = f"{sys.executable} {SERVER_SCRIPT}"


@pytest.fixture
def settings() -> Settings:
    return Settings(mcp_timeout_seconds=20)


def test_admin_registers_allows_and_removes(two_orgs: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_ORG_KEY_TEST", "s3cret")
    added = mcp_servers.add(two_orgs, "acme", ADMIN, "test", command=COMMAND, env=["TOKEN=CRISTAL_ORG_KEY_TEST"])
    assert (added["transport"], added["command"], added["args"]) == ("stdio", sys.executable, [SERVER_SCRIPT])
    assert added["env"] == {"TOKEN": "CRISTAL_ORG_KEY_TEST"} and added["tools"] == {}
    doc = mcp_servers.set_tools(two_orgs, settings, "acme", ADMIN, "test",
                                allow=mcp_servers.parse_allow(["echo=read", "add", "crash=destructive"]))
    # A tool whose class nobody set counts as write.
    assert doc["tools"] == {"add": "write", "crash": "destructive", "echo": "read"}
    listing = {t["name"]: t for t in mcp_servers.describe(two_orgs, settings, "acme", ADMIN, "test")["tools"]}
    assert (listing["echo"]["allowed"], listing["echo"]["effect"]) == (True, "read")
    assert (listing["hang"]["allowed"], listing["hang"]["effect"]) == (False, None)
    doc = mcp_servers.set_tools(two_orgs, settings, "acme", ADMIN, "test", deny=["crash"],
                                allow=mcp_servers.parse_allow(["add=read"]))
    assert doc["tools"] == {"add": "read", "echo": "read"}
    # A member sees the servers and their tools (to write agent files), not how to reach them.
    [seen] = mcp_servers.list_servers(two_orgs, "acme", FIN)
    assert seen == {"name": "test", "org": "acme", "transport": "stdio", "tools": {"add": "read", "echo": "read"}}
    assert mcp_servers.remove(two_orgs, "acme", ADMIN, "test")["removed"] is True
    assert mcp_servers.list_servers(two_orgs, "acme", ADMIN) == []


def test_members_and_other_organizations_cannot_manage(two_orgs: Database, settings: Settings) -> None:
    with pytest.raises(AccessDenied, match="requires the admin role"):
        mcp_servers.add(two_orgs, "acme", FIN, "test", command=COMMAND)
    mcp_servers.add(two_orgs, "acme", ADMIN, "test", command=COMMAND)
    for attempt in (lambda: mcp_servers.remove(two_orgs, "acme", FIN, "test"),
                    lambda: mcp_servers.set_tools(two_orgs, settings, "acme", FIN, "test", allow={"echo": "read"})):
        with pytest.raises(AccessDenied):
            attempt()
    # Another organization's admin: the server does not exist, it cannot be listed, changed or removed.
    assert mcp_servers.list_servers(two_orgs, "globex", OTHER_ADMIN) == []
    for attempt in (lambda: mcp_servers.remove(two_orgs, "globex", OTHER_ADMIN, "test"),
                    lambda: mcp_servers.describe(two_orgs, settings, "globex", OTHER_ADMIN, "test"),
                    lambda: mcp_servers.set_tools(two_orgs, settings, "globex", OTHER_ADMIN, "test", deny=["echo"])):
        with pytest.raises(NotFound, match="unknown MCP server 'test' in organization 'globex'"):
            attempt()
    # Its own server of the same name is its own.
    mcp_servers.add(two_orgs, "globex", OTHER_ADMIN, "test", url="https://mcp.example.com/mcp")
    with two_orgs.session() as s:
        records = [(r.actor, r.decision) for r in s.scalars(select(AuditRecord).where(AuditRecord.action == "mcp.manage"))]
    assert any(FIN in actor and decision == "deny" for actor, decision in records)
    assert any(ADMIN in actor and decision == "allow" for actor, decision in records)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of --command"),
    ({"command": "x", "url": "https://a.example/mcp"}, "exactly one of --command"),
    ({"command": "  "}, "--command is empty"),
    ({"command": "tool 'unclosed"}, "invalid --command"),
    ({"url": "ftp://a.example/mcp"}, "http:// or https://"),
    ({"command": "x", "env": ["TOKEN=DATABASE_URL"]}, "must start with CRISTAL_ORG_KEY_"),
    ({"command": "x", "env": ["=CRISTAL_ORG_KEY_A"]}, "invalid --env"),
    ({"url": "https://a.example/mcp", "headers": ["Authorization=CRISTAL_DATABASE_URL"]}, "CRISTAL_ORG_KEY_"),
])
def test_bad_registrations_are_one_line_errors(two_orgs: Database, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        mcp_servers.add(two_orgs, "acme", ADMIN, "test", **kwargs)
    assert "\n" not in err.value.message
    assert mcp_servers.list_servers(two_orgs, "acme", ADMIN) == []


def test_bad_tool_choices_are_errors_and_change_nothing(two_orgs: Database, settings: Settings) -> None:
    mcp_servers.add(two_orgs, "acme", ADMIN, "test", command=COMMAND)
    with pytest.raises(AlreadyExists):
        mcp_servers.add(two_orgs, "acme", ADMIN, "test", command=COMMAND)
    with pytest.raises(InvalidInput, match="invalid effect 'harmless'"):
        mcp_servers.parse_allow(["echo=harmless"])
    with pytest.raises(InvalidInput, match=r"has no tool 'teleport' \(it has: .*echo"):
        mcp_servers.set_tools(two_orgs, settings, "acme", ADMIN, "test", allow={"teleport": None})
    with pytest.raises(InvalidInput, match="is not allowed, so it cannot be denied"):
        mcp_servers.set_tools(two_orgs, settings, "acme", ADMIN, "test", deny=["echo"])
    assert mcp_servers.list_servers(two_orgs, "acme", ADMIN)[0]["tools"] == {}


def test_the_cli(two_orgs: Database, cli_in_process) -> None:  # type: ignore[no-untyped-def]  # fixture
    as_admin = ("--org", "acme", "--as", ADMIN)
    added = cli_in_process("mcp", "add", "test", "--command", COMMAND, *as_admin, "--json")
    assert added.code == 0, added.stderr
    assert json.loads(added.stdout)["name"] == "test"
    allowed = cli_in_process("mcp", "tools", "test", "--allow", "echo=read", "--allow", "add", *as_admin, "--json")
    assert allowed.code == 0, allowed.stderr
    assert json.loads(allowed.stdout)["tools"] == {"add": "write", "echo": "read"}
    shown = cli_in_process("mcp", "tools", "test", *as_admin)
    assert shown.code == 0 and "hang" in shown.stdout
    listed = cli_in_process("mcp", "list", "--org", "acme", "--as", FIN, "--json")
    assert json.loads(listed.stdout)["servers"][0]["tools"] == {"add": "write", "echo": "read"}
    for args, code in ((("mcp", "add", "x", "--org", "acme", "--as", FIN, "--url", "https://a.example/mcp"), 5),
                       (("mcp", "add", "x", *as_admin), 2),
                       (("mcp", "tools", "test", "--allow", "echo=sometimes", *as_admin), 2),
                       (("mcp", "remove", "test", "--org", "globex", "--as", OTHER_ADMIN), 3),
                       (("mcp", "add", "test", "--command", COMMAND, *as_admin), 4)):
        result = cli_in_process(*args)
        assert result.code == code, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    removed = cli_in_process("mcp", "remove", "test", *as_admin)
    assert removed.code == 0 and "removed" in removed.stdout
