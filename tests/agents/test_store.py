"""Stored agents: versions, rollback, pins, and who may see, use, edit, share and remove them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cristal.agents import store
from cristal.agents.definition import load_agent_text
from cristal.db import Database
from cristal.db.schema import AuditRecord
from cristal.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound
from cristal.identity import users
from tests.conftest import INSTALLATION

BACKENDS = ("sqlite", "postgres")

ADMIN, FIN, ENG = "admin@acme.example", "fin@acme.example", "eng@acme.example"


def definition(instructions: str = "Answer from the policies.", sharing: str | None = None, name: str = "helper"):  # type: ignore[no-untyped-def]  # a test helper
    text = f"name: {name}\ninstructions: {instructions}\ntools: [search_knowledge]\n"
    if sharing is not None:
        text += f"sharing: {sharing}\n"
    return load_agent_text(text)


def test_publish_versions_rollback_and_pin(two_orgs: Database) -> None:
    db = two_orgs
    created = store.create(db, definition("first"), "acme", FIN)
    assert created["published_version"] is None and created["created_by"] == FIN
    with pytest.raises(AlreadyExists):
        store.create(db, definition("again"), "acme", ENG)
    # Before its first publication only those who may edit it see it: the draft.
    assert store.show(db, "acme", FIN, "helper")["version"] is None

    assert store.publish(db, "acme", FIN, "helper", note="v1")["version"] == 1
    store.edit(db, "acme", FIN, "helper", definition("second"))
    assert store.show(db, "acme", FIN, "helper")["spec"]["instructions"] == "first"  # the draft is not served
    store.publish(db, "acme", FIN, "helper")
    assert store.show(db, "acme", FIN, "helper")["spec"]["instructions"] == "second"
    assert store.show(db, "acme", FIN, "helper@1")["spec"]["instructions"] == "first"
    with pytest.raises(NotFound, match="no version 9"):
        store.show(db, "acme", FIN, "helper@9")
    with pytest.raises(InvalidInput):
        store.show(db, "acme", FIN, "helper@latest")

    back = store.rollback(db, "acme", FIN, "helper", 1)
    assert (back["version"], back["rolled_back_to"]) == (3, 1)
    shown = store.show(db, "acme", FIN, "helper")
    assert (shown["version"], shown["spec"]["instructions"]) == (3, "first")
    assert shown["draft"]["instructions"] == "first"
    listed = store.versions(db, "acme", FIN, "helper")
    assert [(v["version"], v["note"], v["current"]) for v in listed] == [
        (1, "v1", False), (2, "", False), (3, "rollback to version 1", True)]
    with pytest.raises(NotFound):
        store.rollback(db, "acme", FIN, "helper", 7)
    with pytest.raises(InvalidInput, match="does not change"):
        store.edit(db, "acme", FIN, "helper", definition(name="other"))


def test_a_private_agent_is_invisible_to_another_member(two_orgs: Database) -> None:
    db = two_orgs
    store.create(db, definition(), "acme", FIN)
    store.publish(db, "acme", FIN, "helper")
    assert [a["agent"] for a in store.list_agents(db, "acme", ENG)] == []
    for call in (lambda: store.show(db, "acme", ENG, "helper"), lambda: store.versions(db, "acme", ENG, "helper"),
                 lambda: store.publish(db, "acme", ENG, "helper"), lambda: store.remove(db, "acme", ENG, "helper"),
                 lambda: store.share(db, "acme", ENG, "helper", f"user:{ENG}"),
                 lambda: store.edit(db, "acme", ENG, "helper", definition())):
        with pytest.raises(NotFound, match="unknown agent 'helper'"):
            call()
    # The organization's admin sees every agent of it, as every other kind of resource.
    assert [a["agent"] for a in store.list_agents(db, "acme", ADMIN)] == ["helper"]
    with db.session() as s:
        denied = s.scalars(select(AuditRecord).where(AuditRecord.action == "agent.use",
                                                     AuditRecord.decision == "deny")).all()
    assert denied, "refusals are audited"


def test_shared_with_a_group_only_its_members_and_only_while_they_are(two_orgs: Database) -> None:
    db = two_orgs
    store.create(db, definition(sharing="[group:engineering]"), "acme", FIN)
    store.publish(db, "acme", FIN, "helper")
    with db.session() as s:
        users.add_user(s, INSTALLATION, "acme", "other@acme.example", groups=["sales"])
    eng = store.list_agents(db, "acme", ENG)
    assert [(a["agent"], a["relation"]) for a in eng] == [("helper", "shared")]
    assert store.show(db, "acme", ENG, "helper")["can_edit"] is False
    with pytest.raises(NotFound):
        store.show(db, "acme", "other@acme.example", "helper")
    # use is not edit
    with pytest.raises(AccessDenied):
        store.publish(db, "acme", ENG, "helper")
    with pytest.raises(AccessDenied):
        store.share(db, "acme", ENG, "helper", "user:other@acme.example")

    with db.session() as s:
        users.leave_group(s, INSTALLATION, "acme", ENG, "engineering")
    with pytest.raises(NotFound):
        store.show(db, "acme", ENG, "helper")
    assert store.list_agents(db, "acme", ENG) == []


def test_edit_grant_lets_edit_and_publish_but_not_share_or_remove(two_orgs: Database) -> None:
    db = two_orgs
    store.create(db, definition(), "acme", FIN)
    store.share(db, "acme", FIN, "helper", f"user:{ENG}", edit=True)
    store.edit(db, "acme", ENG, "helper", definition("edited by eng"))
    assert store.publish(db, "acme", ENG, "helper")["published_by"] == ENG
    with pytest.raises(AccessDenied):
        store.share(db, "acme", ENG, "helper", "group:finance")
    with pytest.raises(AccessDenied):
        store.remove(db, "acme", ENG, "helper")
    # A file whose sharing differs changes the grants, which only the creator or an admin may do.
    with pytest.raises(AccessDenied):
        store.edit(db, "acme", ENG, "helper", definition(sharing="[org]"))
    store.unshare(db, "acme", FIN, "helper", f"user:{ENG}")
    with pytest.raises(NotFound):
        store.show(db, "acme", ENG, "helper")
    assert store.remove(db, "acme", FIN, "helper") == {"agent": "helper", "removed": True}
    with pytest.raises(NotFound):
        store.show(db, "acme", FIN, "helper")


def test_sharing_names_real_people_and_groups_and_org_wide_needs_the_policy(two_orgs: Database) -> None:
    db = two_orgs
    store.create(db, definition(), "acme", FIN)
    with pytest.raises(NotFound, match="unknown group 'nobody'"):
        store.share(db, "acme", FIN, "helper", "group:nobody")
    with pytest.raises(NotFound, match="unknown user"):
        store.share(db, "acme", FIN, "helper", "user:ghost@acme.example")
    # A person of the other organization is not someone to share with.
    with pytest.raises(NotFound, match="unknown user"):
        store.share(db, "acme", FIN, "helper", "user:fin@globex.example")
    with pytest.raises(InvalidInput, match="invalid grantee"):
        store.share(db, "acme", FIN, "helper", "everyone")
    with pytest.raises(NotFound, match="unknown group"):
        store.create(db, definition(name="two", sharing="[group:nobody]"), "acme", FIN)
    assert [a["agent"] for a in store.list_agents(db, "acme", FIN)] == ["helper"]  # nothing half-written

    with pytest.raises(AccessDenied, match="admin"):
        store.share(db, "acme", FIN, "helper", "org")
    with pytest.raises(AccessDenied):
        store.sharing_policy(db, "acme", FIN, members_share_org=True)
    assert store.sharing_policy(db, "acme", ADMIN, members_share_org=True)["members_share_org"] is True
    store.share(db, "acme", FIN, "helper", "org")
    store.publish(db, "acme", FIN, "helper")
    assert [(a["agent"], a["relation"]) for a in store.list_agents(db, "acme", ENG)] == [("helper", "org")]
    # Sharing the agent never shares the creator's access: the grant names the agent only.
    assert store.show(db, "acme", ENG, "helper")["sharing"] == ["org"]


def test_another_organizations_agent_does_not_exist(two_orgs: Database) -> None:
    db = two_orgs
    store.create(db, definition(sharing="[group:finance]"), "acme", FIN)
    store.publish(db, "acme", FIN, "helper")
    store.sharing_policy(db, "acme", ADMIN, members_share_org=True)
    store.share(db, "acme", FIN, "helper", "org")
    outsider, outsider_admin = "fin@globex.example", "admin@globex.example"
    calls = {
        "show": lambda who: store.show(db, "globex", who, "helper"),
        "pinned": lambda who: store.show(db, "globex", who, "helper@1"),
        "versions": lambda who: store.versions(db, "globex", who, "helper"),
        "edit": lambda who: store.edit(db, "globex", who, "helper", definition()),
        "publish": lambda who: store.publish(db, "globex", who, "helper"),
        "rollback": lambda who: store.rollback(db, "globex", who, "helper", 1),
        "share": lambda who: store.share(db, "globex", who, "helper", "org"),
        "unshare": lambda who: store.unshare(db, "globex", who, "helper", "org"),
        "remove": lambda who: store.remove(db, "globex", who, "helper"),
    }
    for who in (outsider, outsider_admin):
        assert store.list_agents(db, "globex", who) == []
        for name, call in calls.items():
            with pytest.raises(NotFound, match="unknown agent"):
                call(who)
            assert name
        # Naming the other organization with one's own e-mail is no way in either.
        with pytest.raises(NotFound, match="unknown user"):
            store.show(db, "acme", who, "helper")
    # globex may have its own agent of the same name.
    store.create(db, definition(), "globex", outsider)
    assert store.show(db, "acme", FIN, "helper")["created_by"] == FIN
