"""Web sign-in against real OpenID Connect providers on loopback (Authlib's server components), over real HTTP.

Two providers: acme's (a confidential client, groups from the ``groups``
claim) and globex's (a public client, PKCE alone). Each test drives the flow
the way a browser does: ``/auth/login`` -> the provider's login page -> its
redirect back -> ``/auth/callback`` -> a session cookie, carried by hand
(``Browser``) because the cookies are ``Secure`` and the test server is plain
HTTP on loopback.
"""

from __future__ import annotations

import re
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from sqlalchemy import select

from cristal.db.schema import AuditRecord
from cristal.identity import oidc
from tests.server.conftest import INSTALLATION, Company, LiveServer, error_of, person

SESSION = "__Host-cristal-session"
SIGNIN = "__Host-cristal-signin"


class Browser:
    """An HTTP client that keeps cookies the way a browser on a secure origin does (``Secure`` ones included)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}
        self.set_cookies: dict[str, Any] = {}  # name -> the Morsel last set, to check its attributes

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        target = url if url.startswith("http") else self.base_url + url
        r = httpx.request(method, target, headers=headers, follow_redirects=False, timeout=30, **kwargs)
        for raw in r.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                self.set_cookies[name] = morsel
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return r

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def at_provider(login_url: str, email: str, password: str) -> str:
    """Sign in on the provider's login page; the URL it redirects back to (the callback with code and state)."""
    page = httpx.get(login_url, timeout=30)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    r = httpx.post(urlsplit(login_url)._replace(path="/authorize", query="").geturl(),
                   data={**fields, "email": email, "password": password}, timeout=30)
    assert r.status_code == 302, r.text
    return r.headers["location"]


def start(browser: Browser, org: str) -> str:
    r = browser.get("/auth/login", params={"org": org})
    assert r.status_code == 303, r.text
    return r.headers["location"]


def sign_in(live: LiveServer, org: str, email: str, password: str) -> Browser:
    browser = Browser(live.url)
    back = at_provider(start(browser, org), email, password)
    r = browser.get(back)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"
    return browser


def csrf(browser: Browser) -> str:
    r = browser.get("/api/v1/me")
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def audit(company: Company, action: str, org: str | None = "acme") -> list[AuditRecord]:
    with company.db.session() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action, AuditRecord.org_slug == org)
                              .order_by(AuditRecord.id)))


def refused(company: Company, live: LiveServer, back: str, browser: Browser) -> str:
    """Deliver the provider's answer ``back``; assert the sign-in is refused (401, audited) and return the message."""
    before = len([r for r in audit(company, "session.create") if r.decision == "deny"])
    r = browser.get(back)
    assert r.status_code == 401, r.text
    error = error_of(r)
    assert error["type"] == "signin_failed"
    assert SESSION not in browser.cookies
    denied = [r for r in audit(company, "session.create") if r.decision == "deny"]
    assert len(denied) == before + 1 and denied[-1].actor.startswith("anonymous:127.0.0.1")
    return error["message"]


# -- sign-in that works


def test_first_sign_in_creates_the_member_with_the_claims_groups(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    idp, _ = providers
    browser = sign_in(live, "acme", "ana@acme.example", "pw-ana")
    cookie = browser.set_cookies[SESSION]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"].lower() == "lax" and cookie["path"] == "/"
    assert not cookie["domain"]  # __Host-: for this host only
    assert SIGNIN not in browser.cookies  # the sign-in cookie is spent
    me = browser.get("/api/v1/me").json()
    assert {k: me[k] for k in ("email", "org", "role", "groups")} == {
        "email": "ana@acme.example", "org": "acme", "role": "member", "groups": ["finance", "ops"]}
    # The session authorizes as the person, through authorize: finance's document is theirs to read now.
    hits = browser.post("/api/v1/search", json={"query": "supplier IBAN"}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert hits.status_code == 200 and any("bank.md" in h["uri"] for h in hits.json()["hits"])
    created = audit(company, "user.manage")[-1]
    assert created.actor == "operator:oidc-sign-in" and created.details["op"] == "add"
    session_made = audit(company, "session.create")[-1]
    assert (session_made.decision, session_made.actor) == ("allow", "user:ana@acme.example@acme")
    assert session_made.details["first_sign_in"] is True and session_made.details["issuer"] == idp.issuer

    # Groups follow the provider at every sign-in: leaving finance there takes the document away here.
    idp.users["ana@acme.example"].groups = ["ops"]
    try:
        again = sign_in(live, "acme", "ana@acme.example", "pw-ana")
    finally:
        idp.users["ana@acme.example"].groups = ["finance", "ops"]
    me = again.get("/api/v1/me").json()
    assert me["groups"] == ["ops"]
    hits = again.post("/api/v1/search", json={"query": "supplier IBAN"}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert not any("bank.md" in h["uri"] for h in hits.json()["hits"])
    synced = audit(company, "group.manage")[-1]
    assert synced.details == {"op": "sync", "added": [], "removed": ["finance"]}
    assert audit(company, "session.create")[-1].details["first_sign_in"] is False
    # The first browser signing in again: its old session ends rather than lingering.
    old = dict(browser.cookies)
    assert browser.get(at_provider(start(browser, "acme"), "ana@acme.example", "pw-ana")).status_code == 303
    assert browser.cookies[SESSION] != old[SESSION]
    stale = Browser(live.url)
    stale.cookies = old
    assert stale.get("/api/v1/me").status_code == 401
    assert audit(company, "session.revoke")[-1].details == {"replaced": True}


def test_the_providers_documents_are_kept_and_rotated_keys_fetched_again(providers, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    idp, _ = providers
    before = dict(idp.requests)
    for _ in range(2):
        sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    fetched = {path: idp.requests[path] - before.get(path, 0) for path in ("/.well-known/openid-configuration", "/jwks", "/token")}
    assert fetched == {"/.well-known/openid-configuration": 1, "/jwks": 1, "/token": 2}
    idp.rotate_key()  # the kept keys no longer verify its tokens: they are fetched again, once
    browser = sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    assert browser.get("/api/v1/me").status_code == 200
    assert idp.requests["/jwks"] - before.get("/jwks", 0) == 2


def test_an_existing_employee_keeps_their_account_and_role(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    me = browser.get("/api/v1/me").json()
    assert (me["email"], me["org"], me["groups"]) == (person("fin", "acme"), "acme", ["finance"])
    # Their API key and their session are the same person.
    keyed = httpx.get(live.url + "/api/v1/me", headers={"Authorization": f"Bearer {company.key(person('fin', 'acme'))}"})
    assert keyed.json() == {k: v for k, v in me.items() if k != "csrf_token"}


def test_a_public_client_signs_in_with_pkce_alone_and_stays_in_its_organization(providers, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = sign_in(live, "globex", "bo@globex.example", "pw-bo")
    me = browser.get("/api/v1/me").json()
    assert (me["email"], me["org"], me["groups"]) == ("bo@globex.example", "globex", [])  # no groups claim configured
    hits = browser.post("/api/v1/search", json={"query": "hotel cap"}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert hits.status_code == 200
    assert hits.json()["hits"] and all("/globex/" in h["uri"] for h in hits.json()["hits"])


# -- CSRF and sign-out


def test_state_changing_requests_with_the_cookie_need_the_csrf_token(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    token = csrf(browser)
    body = {"query": "hotel cap"}
    missing = browser.post("/api/v1/search", json=body)
    assert missing.status_code == 403 and error_of(missing)["type"] == "csrf_failed"
    wrong = browser.post("/api/v1/search", json=body, headers={"X-CSRF-Token": token[:-1] + ("0" if token[-1] != "0" else "1")})
    assert wrong.status_code == 403 and error_of(wrong)["type"] == "csrf_failed"
    assert browser.post("/api/v1/search", json=body, headers={"X-CSRF-Token": token}).status_code == 200
    assert browser.get("/api/v1/runs").status_code == 200  # reads need no token
    # An API key needs none, and a request with an Authorization header is the key's, whatever cookie comes with it.
    eng = {"Authorization": f"Bearer {company.key(person('eng', 'acme'))}"}
    with_key = browser.post("/api/v1/search", json=body, headers=eng)
    assert with_key.status_code == 200
    assert browser.get("/api/v1/me", headers=eng).json()["email"] == person("eng", "acme")


def test_sign_out_ends_the_session_everywhere(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    token = csrf(browser)
    stolen = dict(browser.cookies)  # a copy of the cookie, as another tab (or a thief) would hold it
    no_token = browser.post("/auth/logout")
    assert no_token.status_code == 403 and error_of(no_token)["type"] == "csrf_failed"
    assert browser.post("/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert SESSION not in browser.cookies and browser.set_cookies[SESSION]["max-age"] == "0"
    replay = Browser(live.url)
    replay.cookies = stolen
    r = replay.get("/api/v1/me")
    assert r.status_code == 401 and "ended" in error_of(r)["message"]
    revoked = audit(company, "session.revoke")[-1]
    assert (revoked.decision, revoked.actor) == ("allow", f"user:{person('fin', 'acme')}@acme")


# -- sign-ins that must fail


@pytest.mark.parametrize(("tamper", "expected"), [
    ({"aud": "some-other-client"}, "wrong audience"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ({"nonce": "not-the-one-sent"}, "wrong nonce"),
    ("foreign key", "signature"),
])
def test_an_id_token_that_fails_a_check_signs_nobody_in(providers, live: LiveServer, company: Company,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                      tamper, expected: str) -> None:
    idp, _ = providers
    if tamper == "foreign key":
        idp.sign_with_foreign_key = True
    else:
        idp.claims_override = dict(tamper)
    browser = Browser(live.url)
    back = at_provider(start(browser, "acme"), "ana@acme.example", "pw-ana")
    message = refused(company, live, back, browser)
    assert expected in message, message
    assert message.startswith("sign-in refused: the id token")
    with company.db.session() as s:  # nobody was created
        from cristal.db.schema import User
        assert s.scalar(select(User).where(User.email == "ana@acme.example")) is None


def test_a_replayed_answer_or_code_is_refused(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = Browser(live.url)
    back = at_provider(start(browser, "acme"), person("fin", "acme"), "pw-fin")
    assert browser.get(back).status_code == 303
    # The same answer again: its state has been used.
    again = Browser(live.url)
    again.cookies = {SIGNIN: browser.set_cookies[SIGNIN].value or "x"}
    assert "already used" in refused(company, live, back, again)
    # The old code with a fresh sign-in's state: the provider redeems a code once (and PKCE ties it to its verifier).
    fresh = Browser(live.url)
    new_state = parse_qs(urlsplit(start(fresh, "acme")).query)["state"][0]
    old_code = parse_qs(urlsplit(back).query)["code"][0]
    message = refused(company, live, f"{live.url}/auth/callback?state={new_state}&code={old_code}", fresh)
    assert "refused the code (invalid_grant)" in message


def test_a_bad_state_or_another_browsers_answer_is_refused(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = Browser(live.url)
    back = at_provider(start(browser, "acme"), person("fin", "acme"), "pw-fin")
    forged = re.sub(r"state=[^&]+", "state=forged", back)
    r = browser.get(forged)
    assert r.status_code == 401 and "unknown or already used" in error_of(r)["message"]
    # A state that names no sign-in names no organization either: the installation's trail has it.
    assert [a for a in audit(company, "session.create", None) if a.decision == "deny"]
    # The genuine answer, delivered to a browser that did not start the sign-in (a link sent to a victim).
    victim = Browser(live.url)
    assert "another browser" in refused(company, live, back, victim)
    # The provider's own refusal.
    other = Browser(live.url)
    state = parse_qs(urlsplit(start(other, "acme")).query)["state"][0]
    assert "access_denied" in refused(company, live, f"{live.url}/auth/callback?state={state}&error=access_denied", other)


def test_another_organizations_provider_cannot_sign_anyone_in_here(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    idp_acme, idp_globex = providers
    # A code globex's provider issued, delivered to acme's sign-in: acme's provider does not know it.
    browser = Browser(live.url)
    acme_login = start(browser, "acme")
    globex_back = at_provider(start(Browser(live.url), "globex"), "bo@globex.example", "pw-bo")
    acme_state = parse_qs(urlsplit(acme_login).query)["state"][0]
    code = parse_qs(urlsplit(globex_back).query)["code"][0]
    assert "invalid_grant" in refused(company, live, f"{live.url}/auth/callback?state={acme_state}&code={code}", browser)
    # An id token made out by globex's provider for globex's client, handed over by acme's token endpoint.
    idp_acme.claims_override = {"iss": idp_globex.issuer, "aud": "cristal-globex"}
    browser = Browser(live.url)
    back = at_provider(start(browser, "acme"), "ana@acme.example", "pw-ana")
    message = refused(company, live, back, browser)
    assert "another issuer" in message or "wrong audience" in message, message


@pytest.mark.parametrize(("entry", "value", "expected"), [
    ("issuer", "https://login.evil.example", "names issuer 'https://login.evil.example', not the configured"),
    ("token_endpoint", "http://login.acme.example/token", "no https:// token_endpoint"),
])
def test_a_discovery_document_that_is_not_the_providers_own_is_refused(providers, live: LiveServer, entry: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                                      value: str, expected: str) -> None:
    idp, _ = providers
    idp.discovery_override = {entry: value}
    r = httpx.get(live.url + "/auth/login", params={"org": "acme"})
    assert r.status_code == 502 and error_of(r)["type"] == "provider_unavailable"
    assert expected in error_of(r)["message"]


def test_no_provider_and_unknown_organizations(providers, live: LiveServer, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with company.db.session() as s:
        oidc.remove_oidc(s, INSTALLATION, "globex")
    r = httpx.get(live.url + "/auth/login", params={"org": "globex"})
    assert r.status_code == 404 and "sign in with an API key" in error_of(r)["message"]
    r = httpx.get(live.url + "/auth/login", params={"org": "nope"})
    assert r.status_code == 404 and error_of(r)["type"] == "not_found"
    assert httpx.get(live.url + "/auth/login").status_code == 400


def test_every_state_changing_route_refuses_the_cookie_without_the_csrf_token(providers, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    browser = sign_in(live, "acme", person("fin", "acme"), "pw-fin")
    paths = browser.get("/api/v1/openapi.json").json()["paths"]
    routes = [(m.upper(), p) for p, methods in paths.items() for m in methods if m not in ("get", "head", "options")]
    routes.append(("POST", "/auth/logout"))  # the one state-changing route outside the API document
    for method, path in routes:
        r = browser.request(method, re.sub(r"\{[^}]+\}", "x", path), json={})
        assert r.status_code == 403 and error_of(r)["type"] == "csrf_failed", (method, path, r.text)
    assert ("POST", "/api/v1/search") in routes and ("POST", "/v1/chat/completions") in routes
    assert browser.get("/api/v1/me").status_code == 200  # still signed in: nothing above went through


def test_the_redirect_uri_is_the_public_url_when_one_is_set(providers, company: Company, settings) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    behind_a_proxy = settings.model_copy(update={"public_url": "https://cristal.acme.example"})
    with LiveServer(company.db, behind_a_proxy) as server:
        r = httpx.get(server.url + "/auth/login", params={"org": "acme"})
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["redirect_uri"] == ["https://cristal.acme.example/auth/callback"]
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["cristal-acme"]
