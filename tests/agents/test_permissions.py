"""The ``shared`` rule of ``authorize``: owner, admin or a grant, and never across organizations."""

from __future__ import annotations

from cristal.identity.authorize import POLICY, Rule, decide
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource


def _user(name: str, *, org_id: int = 1, user_id: int = 10, role: str = "member", groups: tuple[str, ...] = ()) -> Principal:
    return Principal(kind="user", name=name, org_id=org_id, org_slug="acme", user_id=user_id, role=role,
                     groups=frozenset(groups))


AGENT = Resource(kind="agent", org_id=1, id="helper", acl=("group:finance", "user:lena@acme.example"), owner_user_id=7)


def test_use_and_edit_are_shared_and_sharing_is_the_owners() -> None:
    assert POLICY["agent.use"] is Rule.SHARED and POLICY["agent.edit"] is Rule.SHARED
    assert POLICY["agent.share"] is Rule.OWNER and POLICY["agent.remove"] is Rule.OWNER
    assert decide(_user("owner@acme.example", user_id=7), "agent.use", AGENT).reason == "owner"
    assert decide(_user("boss@acme.example", role="admin"), "agent.edit", AGENT).allowed
    assert decide(_user("fin@acme.example", groups=("finance",)), "agent.use", AGENT).reason == "shared with group:finance"
    assert decide(_user("lena@acme.example"), "agent.use", AGENT).allowed
    assert not decide(_user("eng@acme.example", groups=("engineering",)), "agent.use", AGENT)
    assert not decide(_user("fin@acme.example", groups=("finance",)), "agent.share", AGENT)
    # No grants at all: only the owner and admins.
    private = Resource(kind="agent", org_id=1, id="p", acl=(), owner_user_id=7)
    assert not decide(_user("fin@acme.example", groups=("finance",)), "agent.use", private)


def test_nothing_crosses_organizations_not_even_for_an_admin_or_the_same_user_id() -> None:
    for who in (_user("fin@globex.example", org_id=2, groups=("finance",)),
                _user("admin@globex.example", org_id=2, role="admin"),
                _user("owner@globex.example", org_id=2, user_id=7)):
        for action in ("agent.use", "agent.edit", "agent.share", "agent.remove"):
            decision = decide(who, action, AGENT)
            assert not decision and decision.reason == "resource belongs to another organization"
    assert not decide(Principal.installation("ops"), "agent.use", AGENT)
