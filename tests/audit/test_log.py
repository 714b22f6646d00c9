"""Audit records: what is written, when it survives, and how it is read."""

from __future__ import annotations

import pytest

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.errors import AccessDenied
from cristal.identity.authorize import authorize, require
from cristal.identity.directory import in_org, org_by_slug, resolve_principal
from cristal.identity.principal import Principal

BACKENDS = ("sqlite", "postgres")


def test_allowed_decision_commits_with_the_work(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        p = resolve_principal(s, "acme", "fin@acme.example")
        doc = in_org(org_by_slug(s, "acme"), "document", "d1", acl=("group:finance",))
        assert authorize(s, p, "document.read", doc, request_id="req-1", details={"why": "test"})
    with two_orgs.session() as s:
        (record,) = query_audit(s, "acme", action="document.read")
    assert (record.actor, record.resource, record.decision, record.request_id) == (
        "user:fin@acme.example@acme", "document:d1", "allow", "req-1")
    assert record.details == {"why": "test"} and record.reason == "access rule group:finance"


def test_allowed_decision_is_rolled_back_with_abandoned_work(two_orgs: Database) -> None:
    with pytest.raises(RuntimeError):
        with two_orgs.session() as s:
            p = resolve_principal(s, "acme", "admin@acme.example")
            require(s, p, "user.manage", in_org(org_by_slug(s, "acme"), "user", "x"))
            raise RuntimeError("the change failed")
    with two_orgs.session() as s:
        assert not [r for r in query_audit(s, "acme") if r.resource == "user:x"]


def test_refusal_survives_the_rollback(two_orgs: Database) -> None:
    with pytest.raises(AccessDenied):
        with two_orgs.session() as s:
            p = resolve_principal(s, "acme", "eng@acme.example")
            require(s, p, "document.read", in_org(org_by_slug(s, "acme"), "document", "secret", acl=("group:finance",)))
    with two_orgs.session() as s:
        (record,) = query_audit(s, "acme", decision="deny")
    assert record.resource == "document:secret" and record.reason == "no access rule matches"


def test_records_stay_in_their_organization(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        acme = query_audit(s, "acme")
        globex = query_audit(s, "globex")
    assert acme and globex
    assert all(r.org_slug == "acme" for r in acme) and all(r.org_slug == "globex" for r in globex)
    assert acme[0].id > acme[-1].id  # newest first


def test_operator_changes_are_audited(two_orgs: Database) -> None:
    with two_orgs.session() as s:
        records = query_audit(s, "acme", action="user.manage")
    assert len(records) == 3
    assert {r.actor for r in records} == {Principal.installation("test-operator").label}
    assert {r.details["op"] for r in records} == {"add"}
