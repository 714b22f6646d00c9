"""The sign-in protocol below HTTP, on both backends: a stored sign-in's state works exactly once, even when the same
answer arrives many times at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from cristal.config import Settings
from cristal.db import Database
from cristal.identity import oidc, orgs
from cristal.identity.principal import Principal
from cristal.identity.signin import SignInRefused, begin, finish
from cristal.testing.oidc_provider import OidcProvider

INSTALLATION = Principal.installation("test-operator")
BACKENDS = ("sqlite", "postgres")
CALLBACK = "http://127.0.0.1:9/auth/callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        provider.add_client("cristal", None, [CALLBACK])
        yield provider


def test_a_state_works_once_even_when_its_answer_arrives_many_times_at_once(db: Database, idp: OidcProvider,
                                                                           tmp_path: Path) -> None:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme")
        oidc.configure_oidc(s, INSTALLATION, "acme", issuer=idp.issuer, client_id="cristal")
    settings = Settings(home=tmp_path)
    start = begin(db, settings, "acme", CALLBACK)
    state = parse_qs(urlsplit(start.url).query)["state"][0]

    def answer(_: int) -> SignInRefused:
        try:
            finish(db, settings, state=state, code="not-a-code", error=None, binding=start.binding)
        except SignInRefused as exc:
            return exc
        raise AssertionError("a made-up code signed someone in")

    with ThreadPoolExecutor(6) as pool:
        refusals = list(pool.map(answer, range(6)))
    # One answer got as far as the provider (which does not know the code); the others found the state used.
    assert sorted("invalid_grant" in r.message for r in refusals) == [False] * 5 + [True]
    assert all(r.org_slug == "acme" for r in refusals)  # a replay is still recorded as acme's
    with pytest.raises(SignInRefused, match="unknown or already used") as unknown:
        finish(db, settings, state="made-up", code="x", error=None, binding=start.binding)
    assert unknown.value.org_slug is None
