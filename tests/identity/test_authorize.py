"""The policy itself: every rule, and organization isolation, with no database."""

from __future__ import annotations

import pytest

from cristal.identity.authorize import POLICY, decide
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

ACME, GLOBEX = 1, 2


def user(role: str = "member", groups: tuple[str, ...] = (), org: int = ACME, uid: int = 10, email: str = "u@acme.example") -> Principal:
    return Principal("user", email, org_id=org, org_slug=f"org{org}", user_id=uid, role=role, groups=frozenset(groups))


INSTALLATION = Principal.installation("ops")


def test_unknown_action_is_denied_for_everyone() -> None:
    for who in (INSTALLATION, user("admin"), user()):
        assert not decide(who, "launch.missiles", Resource("x", ACME))


@pytest.mark.parametrize("action", sorted(POLICY))
def test_no_action_crosses_organizations(action: str) -> None:
    admin_of_globex = user("admin", ("finance",), org=GLOBEX)
    resource = Resource("thing", ACME, "1", acl=("org", "group:finance"), owner_user_id=admin_of_globex.user_id)
    decision = decide(admin_of_globex, action, resource)
    assert not decision.allowed


def test_operator_manages_but_never_reads_company_data() -> None:
    assert decide(INSTALLATION, "org.create", Resource("org", None, "acme"))
    assert decide(INSTALLATION, "user.manage", Resource("user", ACME, "x"))
    assert decide(INSTALLATION, "audit.read", Resource("audit", ACME))
    doc = Resource("document", ACME, "d1", acl=("org",))
    assert not decide(INSTALLATION, "document.read", doc)
    assert not decide(INSTALLATION, "knowledge.search", Resource("knowledge", ACME))
    assert not decide(INSTALLATION, "llm.call", Resource("llm", ACME))


def test_only_the_operator_creates_organizations() -> None:
    assert not decide(user("admin"), "org.create", Resource("org", None, "new"))


def test_admin_actions_need_the_admin_role() -> None:
    res = Resource("user", ACME, "x")
    assert decide(user("admin"), "user.manage", res)
    assert not decide(user("member"), "user.manage", res)
    assert not decide(user("member"), "audit.read", Resource("audit", ACME))


def test_owner_actions() -> None:
    key = Resource("apikey", ACME, "k", owner_user_id=10)
    assert decide(user(uid=10), "apikey.revoke", key)
    assert not decide(user(uid=11), "apikey.revoke", key)
    assert decide(user("admin", uid=12), "apikey.revoke", key)
    assert not decide(user(uid=10), "apikey.revoke", Resource("apikey", ACME, "k", owner_user_id=None))


def test_only_the_owner_mints_their_key_not_an_admin_nor_the_operator() -> None:
    # Issue 16, finding 12: a key minted for someone else would let its minter act as them.
    key = Resource("apikey", ACME, "laptop", owner_user_id=10)
    assert decide(user(uid=10), "apikey.create", key)
    refused = decide(user("admin", uid=12), "apikey.create", key)
    assert not refused and "not an admin" in refused.reason
    assert not decide(user(uid=11), "apikey.create", key)
    assert not decide(INSTALLATION, "apikey.create", key)
    assert not decide(user(uid=10), "apikey.create", Resource("apikey", ACME, "k", owner_user_id=None))
    # Listing and revoking stay open to an admin: neither lets anyone act as the owner.
    assert decide(user("admin", uid=12), "apikey.list", key) and decide(user("admin", uid=12), "apikey.revoke", key)


@pytest.mark.parametrize(
    ("acl", "groups", "allowed"),
    [
        (None, ("finance",), False),  # nobody granted: default deny
        ((), ("finance",), False),
        (("org",), (), True),
        (("group:finance",), ("finance",), True),
        (("group:finance",), ("engineering",), False),
        (("user:u@acme.example",), (), True),
        (("user:other@acme.example",), (), False),
        (("group:Finance",), ("finance",), False),  # names are exact
    ],
)
def test_data_reads_follow_access_rules(acl: tuple[str, ...] | None, groups: tuple[str, ...], allowed: bool) -> None:
    doc = Resource("document", ACME, "d", acl=acl)
    assert decide(user(groups=groups), "document.read", doc).allowed is allowed


def test_admins_read_documents_nobody_was_granted() -> None:
    assert decide(user("admin"), "document.read", Resource("document", ACME, "d", acl=None))


def test_acl_matchers() -> None:
    p = user(groups=("a", "b"))
    assert p.acl_matchers() == {"org", "user:u@acme.example", "group:a", "group:b"}
    assert INSTALLATION.acl_matchers() == frozenset()
