"""Organizations, users, groups and API keys through their public functions,
including every attempt to cross an organization or permission boundary."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.db.schema import ApiKey
from cristal.errors import AccessDenied, AlreadyExists, InvalidInput, NotFound
from cristal.identity import apikeys, orgs, users
from cristal.identity.directory import member, resolve_principal
from cristal.identity.principal import Principal

BACKENDS = ("sqlite", "postgres")
INSTALLATION = Principal.installation("test-operator")


def as_user(db: Database, org: str, email: str) -> Principal:
    with db.session() as s:
        return resolve_principal(s, org, email)


def test_users_and_groups(two_orgs: Database) -> None:
    db = two_orgs
    with db.session() as s:
        listed = users.list_users(s, INSTALLATION, "acme")
        assert [u.email for u in listed] == ["admin@acme.example", "eng@acme.example", "fin@acme.example"]
        groups = {g.name: g.members for g in users.list_groups(s, INSTALLATION, "acme")}
        assert groups == {"engineering": ("eng@acme.example",), "finance": ("fin@acme.example",)}


def test_emails_are_normalised_and_validated(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        info = users.add_user(s, INSTALLATION, "acme", "New.Person@ACME.example")
    assert info.email == "new.person@acme.example"
    for bad in ("", "no-at-sign", "a@", "a b@c.d"):
        with pytest.raises(InvalidInput):
            with two_orgs.session() as s:
                users.add_user(s, INSTALLATION, "acme", bad)


def test_duplicates_and_unknowns(two_orgs: Database) -> None:
    db = two_orgs
    with pytest.raises(AlreadyExists):
        with db.session() as s:
            orgs.create_org(s, INSTALLATION, "acme")
    with pytest.raises(AlreadyExists):
        with db.session() as s:
            users.add_user(s, INSTALLATION, "acme", "fin@acme.example")
    with pytest.raises(NotFound, match="unknown organization"):
        with db.session() as s:
            users.add_user(s, INSTALLATION, "nope", "x@y.example")
    with pytest.raises(NotFound, match="unknown user"):
        as_user(db, "acme", "ghost@acme.example")
    with pytest.raises(InvalidInput):
        with db.session() as s:
            users.add_user(s, INSTALLATION, "acme", "x@acme.example", role="owner")
    with pytest.raises(InvalidInput):
        with db.session() as s:
            orgs.create_org(s, INSTALLATION, "Not A Slug")


def test_same_email_in_two_orgs_is_two_people(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        users.add_user(s, INSTALLATION, "acme", "shared@group.example", groups=["finance"])
        users.add_user(s, INSTALLATION, "globex", "shared@group.example", role="admin")
    a = as_user(two_orgs, "acme", "shared@group.example")
    g = as_user(two_orgs, "globex", "shared@group.example")
    assert a.org_id != g.org_id and a.role == "member" and g.role == "admin"


def test_member_is_the_organization_and_the_employee_in_it(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        org, principal = member(s, "acme", "fin@acme.example")
        assert (org.slug, principal.org_id, principal.email) == ("acme", org.id, "fin@acme.example")
        with pytest.raises(NotFound, match="unknown user"):
            member(s, "globex", "fin@acme.example")
        with pytest.raises(NotFound, match="unknown organization"):
            member(s, "nope", "fin@acme.example")


def test_group_changes_take_effect_on_the_next_lookup(two_orgs: Database) -> None:
    db = two_orgs
    assert as_user(db, "acme", "eng@acme.example").groups == {"engineering"}
    with db.session() as s:
        users.join_group(s, INSTALLATION, "acme", "eng@acme.example", "finance")
    assert as_user(db, "acme", "eng@acme.example").groups == {"engineering", "finance"}
    with db.session() as s:
        users.leave_group(s, INSTALLATION, "acme", "eng@acme.example", "engineering")
    assert as_user(db, "acme", "eng@acme.example").groups == {"finance"}


def test_org_admin_manages_own_org(two_orgs: Database) -> None:
    admin = as_user(two_orgs, "acme", "admin@acme.example")
    with two_orgs.session() as s:
        users.add_user(s, admin, "acme", "hire@acme.example", groups=["sales"])
        users.set_role(s, admin, "acme", "hire@acme.example", "admin")
        users.remove_user(s, admin, "acme", "fin@acme.example")
    with two_orgs.session() as s:
        assert {u.email for u in users.list_users(s, admin, "acme")} == {"admin@acme.example", "eng@acme.example", "hire@acme.example"}


CROSSING_CALLS = {
    "add_user": lambda s, p: users.add_user(s, p, "globex", "intruder@acme.example", role="admin"),
    "remove_user": lambda s, p: users.remove_user(s, p, "globex", "fin@globex.example"),
    "set_role": lambda s, p: users.set_role(s, p, "globex", "fin@globex.example", "admin"),
    "list_users": lambda s, p: users.list_users(s, p, "globex"),
    "list_groups": lambda s, p: users.list_groups(s, p, "globex"),
    "join_group": lambda s, p: users.join_group(s, p, "globex", "fin@globex.example", "engineering"),
    "leave_group": lambda s, p: users.leave_group(s, p, "globex", "fin@globex.example", "finance"),
    "configure_llm": lambda s, p: orgs.configure_llm(s, p, "globex", model="x"),
    "delete_org": lambda s, p: orgs.delete_org(s, p, "globex"),
    "create_org": lambda s, p: orgs.create_org(s, p, "newco"),
    "create_api_key": lambda s, p: apikeys.create_api_key(s, p, "globex", "fin@globex.example"),
    "list_api_keys": lambda s, p: apikeys.list_api_keys(s, p, "globex", "fin@globex.example"),
}


@pytest.mark.parametrize("call", sorted(CROSSING_CALLS))
def test_admin_of_one_org_cannot_touch_another(two_orgs: Database, call: str) -> None:
    intruder = as_user(two_orgs, "acme", "admin@acme.example")
    with pytest.raises(AccessDenied):
        with two_orgs.session() as s:
            CROSSING_CALLS[call](s, intruder)
    with two_orgs.session() as s:
        # Nothing changed in globex...
        listed = users.list_users(s, INSTALLATION, "globex")
        assert {u.email: u.role for u in listed} == {
            "admin@globex.example": "admin", "eng@globex.example": "member", "fin@globex.example": "member"
        }
        assert {g.name: g.members for g in users.list_groups(s, INSTALLATION, "globex")}["finance"] == ("fin@globex.example",)
        # ...and the refusal is on record, committed despite the rollback.
        denials = [r for r in query_audit(s, "globex", decision="deny") if r.actor == intruder.label]
        if call != "create_org":
            assert denials, "a refused cross-organization attempt must be audited"


@pytest.mark.parametrize("call", ["add_user", "remove_user", "set_role", "list_users", "join_group", "configure_llm"])
def test_members_cannot_administer_their_own_org(two_orgs: Database, call: str) -> None:
    member = as_user(two_orgs, "globex", "fin@globex.example")
    with pytest.raises(AccessDenied, match="admin"):
        with two_orgs.session() as s:
            CROSSING_CALLS[call](s, member)


def test_api_keys_are_hashed_shown_once_and_revocable(two_orgs: Database) -> None:
    db = two_orgs
    owner = as_user(db, "acme", "fin@acme.example")
    with db.session() as s:
        info, secret = apikeys.create_api_key(s, owner, "acme", "fin@acme.example", "laptop")
    with db.session() as s:
        stored = s.scalars(select(ApiKey)).one()
        assert secret not in (stored.key_hash, stored.prefix) and stored.key_hash != secret
        assert resolve_principal(s, "acme", "fin@acme.example") == apikeys.principal_from_api_key(s, secret)
        listed = apikeys.list_api_keys(s, owner, "acme", "fin@acme.example")
        assert [k.prefix for k in listed] == [info.prefix] and listed[0].last_used_at is not None
    # A colleague may not create keys for someone else or revoke theirs; the admin may revoke but never mint one.
    colleague = as_user(db, "acme", "eng@acme.example")
    for minter in (colleague, as_user(db, "acme", "admin@acme.example")):
        with pytest.raises(AccessDenied, match="only the user themself"):
            with db.session() as s:
                apikeys.create_api_key(s, minter, "acme", "fin@acme.example")
    with pytest.raises(AccessDenied):
        with db.session() as s:
            apikeys.revoke_api_key(s, colleague, "acme", info.prefix)
    with db.session() as s:
        apikeys.revoke_api_key(s, as_user(db, "acme", "admin@acme.example"), "acme", info.prefix)
    with pytest.raises(AccessDenied, match="revoked"):
        with db.session() as s:
            apikeys.principal_from_api_key(s, secret)


def test_forged_api_keys_are_refused(two_orgs: Database) -> None:
    db = two_orgs
    with db.session() as s:
        info, secret = apikeys.create_api_key(s, as_user(db, "acme", "fin@acme.example"), "acme", "fin@acme.example")
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    with pytest.raises(AccessDenied, match="invalid API key"):
        with db.session() as s:
            apikeys.principal_from_api_key(s, forged)
    with pytest.raises(InvalidInput):
        with db.session() as s:
            apikeys.principal_from_api_key(s, "not-a-key")
    # A globex admin cannot revoke an acme key even knowing its prefix.
    with pytest.raises((AccessDenied, NotFound)):
        with db.session() as s:
            apikeys.revoke_api_key(s, as_user(db, "globex", "admin@globex.example"), "globex", info.prefix)
    with pytest.raises(AccessDenied):
        with db.session() as s:
            apikeys.revoke_api_key(s, as_user(db, "globex", "admin@globex.example"), "acme", info.prefix)


def test_the_operator_cannot_mint_keys_to_act_as_someone(two_orgs: Database) -> None:
    with pytest.raises(AccessDenied, match="operator"):
        with two_orgs.session() as s:
            apikeys.create_api_key(s, INSTALLATION, "acme", "fin@acme.example")


def test_a_user_sees_only_their_own_org_in_listings(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        assert [o.slug for o in orgs.list_orgs(s, INSTALLATION)] == ["acme", "globex"]
        assert [o.slug for o in orgs.list_orgs(s, as_user(two_orgs, "acme", "fin@acme.example"))] == ["acme"]


def test_configure_llm_validates(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        info = orgs.configure_llm(s, INSTALLATION, "acme", base_url="http://127.0.0.1:9/v1", model="m", monthly_budget_usd=5)
        assert (info.llm_base_url, info.llm_model, info.llm_monthly_budget_usd) == ("http://127.0.0.1:9/v1", "m", 5)
    for kwargs in ({"base_url": "ftp://x"}, {"monthly_budget_usd": -1}, {"api_key_env": "NOT VALID"},
                   {"api_key_env": "CRISTAL_DATABASE_URL"}, {"api_key_env": "CRISTAL_ORG_KEY_A B"}):
        with pytest.raises(InvalidInput):
            with two_orgs.session() as s:
                orgs.configure_llm(s, INSTALLATION, "acme", **kwargs)
