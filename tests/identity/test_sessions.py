"""Browser sessions below HTTP: they resolve to the person as of now, end at expiry, at sign-out and with the provider."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cristal.db import Database
from cristal.errors import AccessDenied
from cristal.identity import oidc, orgs, users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.identity.sessions import create_session, csrf_matches, csrf_token, end_session, principal_from_session

INSTALLATION = Principal.installation("test-operator")
HOUR = timedelta(hours=1)
BACKENDS = ("sqlite", "postgres")


@pytest.fixture
def acme(db: Database) -> Database:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        users.add_user(s, INSTALLATION, "acme", "ana@acme.example", groups=["finance"])
        oidc.configure_oidc(s, INSTALLATION, "acme", issuer="https://login.acme.example", client_id="cristal")
    return db


def session_for(db: Database, lifetime: timedelta = HOUR) -> str:
    with db.session() as s:
        token, _ = create_session(s, resolve_principal(s, "acme", "ana@acme.example"), issuer="https://login.acme.example",
                                  subject="ana", lifetime=lifetime)
    return token


def test_a_session_is_the_person_with_their_groups_as_of_now(acme: Database) -> None:
    token = session_for(acme)
    with acme.session() as s:
        assert principal_from_session(s, token).groups == frozenset({"finance"})
        users.leave_group(s, INSTALLATION, "acme", "ana@acme.example", "finance")
    with acme.session() as s:
        assert principal_from_session(s, token).groups == frozenset()
    assert csrf_matches(token, csrf_token(token)) and not csrf_matches(token, None)
    assert not csrf_matches(session_for(acme), csrf_token(token))  # each session has its own


@pytest.mark.parametrize("ending", ["expiry", "sign-out", "provider replaced", "provider removed", "user removed"])
def test_a_session_ends(acme: Database, ending: str) -> None:
    token = session_for(acme, -timedelta(seconds=1) if ending == "expiry" else HOUR)
    with acme.session() as s:
        if ending == "sign-out":
            end_session(s, principal_from_session(s, token), token)
        elif ending == "provider replaced":
            oidc.configure_oidc(s, INSTALLATION, "acme", issuer="https://login2.acme.example", client_id="cristal")
        elif ending == "provider removed":
            oidc.remove_oidc(s, INSTALLATION, "acme")
        elif ending == "user removed":
            users.remove_user(s, INSTALLATION, "acme", "ana@acme.example")
    with acme.session() as s, pytest.raises(AccessDenied, match="sign in again"):
        principal_from_session(s, token)


def test_only_the_person_signs_themself_out(acme: Database) -> None:
    token = session_for(acme)
    with acme.session() as s:
        users.add_user(s, INSTALLATION, "acme", "boss@acme.example", role="admin")
    with acme.session() as s, pytest.raises(AccessDenied, match="only the user themself"):
        end_session(s, resolve_principal(s, "acme", "boss@acme.example"), token)
    with acme.session() as s:
        assert principal_from_session(s, token).email == "ana@acme.example"
    with acme.session() as s, pytest.raises(AccessDenied, match="not signed in"):
        principal_from_session(s, "cri_not_a_session")
