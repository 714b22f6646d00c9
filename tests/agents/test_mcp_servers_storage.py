"""The ``mcp_servers`` table on SQLite and PostgreSQL: one name per organization, JSON kept as written, removed with
its organization."""

from __future__ import annotations

import pytest

from cristal.agents import mcp_servers
from cristal.db import Database
from cristal.errors import AlreadyExists, NotFound
from cristal.identity import orgs
from tests.conftest import INSTALLATION

BACKENDS = ("sqlite", "postgres")


def test_storage(two_orgs: Database) -> None:
    mcp_servers.add(two_orgs, "acme", "admin@acme.example", "tickets", command="tickets-mcp --readonly 'a b'",
                    env=["CRISTAL_ORG_KEY_TICKETS"])
    mcp_servers.add(two_orgs, "globex", "admin@globex.example", "tickets", url="https://mcp.example.com/mcp",
                    headers=["Authorization=CRISTAL_ORG_KEY_WIKI"])
    with pytest.raises(AlreadyExists):
        mcp_servers.add(two_orgs, "acme", "admin@acme.example", "tickets", command="other")
    [acme] = mcp_servers.list_servers(two_orgs, "acme", "admin@acme.example")
    assert (acme["command"], acme["args"], acme["env"]) == ("tickets-mcp", ["--readonly", "a b"],
                                                            {"CRISTAL_ORG_KEY_TICKETS": "CRISTAL_ORG_KEY_TICKETS"})
    [globex] = mcp_servers.list_servers(two_orgs, "globex", "admin@globex.example")
    assert (globex["url"], globex["headers"]) == ("https://mcp.example.com/mcp", {"Authorization": "CRISTAL_ORG_KEY_WIKI"})
    with two_orgs.session() as s:
        orgs.delete_org(s, INSTALLATION, "globex")
    with pytest.raises(NotFound):
        mcp_servers.list_servers(two_orgs, "globex", "admin@globex.example")
    assert [d["name"] for d in mcp_servers.list_servers(two_orgs, "acme", "admin@acme.example")] == ["tickets"]
