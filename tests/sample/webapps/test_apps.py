"""The Expenses and Customers apps over real HTTP: sign-in, isolation, forms, pagination, state changes."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import urllib.request
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cristal.sample.webapps import AppState, WebApps, seed_database
from cristal.sample.webapps.forms import validate_address

from .conftest import Client, created_id, new_client

JONAS = "jonas.becker@aozora-de.example"  # 8 ERP claims + 3 drafts (101-103) = 11 claims
ANNA = "anna.schmidt@aozora-de.example"
DAIKI = "daiki.kobayashi@aozora.example"
GOOD_CLAIM = {"date": "2025-10-02", "category": "travel", "amount": "42.50", "currency": "EUR",
              "description": "Taxi Hauptbahnhof to Klinikum Rheinland"}
GOOD_ADDRESS = {"street": "Hohenzollernring 55", "postal_code": "50672", "city": "Köln", "country": "DE"}


# --- seed ---


def test_seed_matches_the_erp_and_every_address_is_valid(tmp_path: Path) -> None:
    state = AppState(seed_database(tmp_path / "a.db"))
    assert len(state.claims("aozora-de")) == 18 + 5 and len(state.claims("aozora-jp")) == 17 + 1
    assert [c.id for c in state.claims("aozora-de", JONAS) if c.status == "draft"] == [101, 102, 103]
    assert state.claim("aozora-jp", 30).amount == Decimal(312000)
    keller = state.customer("aozora-de", 6)
    assert keller and (keller.street, keller.postal_code, keller.city) == ("Aachener Straße 210", "50931", "Köln")
    for org in ("aozora-de", "aozora-jp", "aozora-us"):
        customers = state.customers(org)
        assert len(customers) > 10  # two pages each
        for c in customers:
            assert validate_address(c.__dict__)[1] == {}, c
    assert state.changes().empty and state.events() == []
    seed_database(tmp_path / "a.db")  # an existing database is kept
    assert state.changes().empty


# --- sign-in ---


@pytest.mark.parametrize("path", ["/", "/expenses/", "/expenses/new", "/expenses/101", "/customers/",
                                  "/customers/6", "/customers/6/edit"])
def test_every_page_requires_sign_in(client: Client, path: str) -> None:
    reply = client.get(path)
    assert reply.status == 303 and reply.location.startswith("/login?next=")


def test_posts_without_a_session_change_nothing(client: Client, state: AppState) -> None:
    for path, form in [("/expenses/new", GOOD_CLAIM), ("/expenses/101/submit", {}), ("/expenses/102/delete", {}),
                       ("/customers/6/edit", GOOD_ADDRESS)]:
        reply = client.post(path, form)
        assert reply.status == 303 and reply.location == "/login"
    assert state.changes().empty


def test_sign_in_redirects_back_and_sign_out_ends_the_session(client: Client) -> None:
    reply = client.get("/expenses/?status=draft")
    form = client.get(reply.location)
    assert 'name="next" value="/expenses/?status=draft"' in form.text
    reply = client.post("/login", {"email": "Jonas.Becker@aozora-de.example", "next": "/expenses/?status=draft"})
    assert reply.status == 303 and reply.location == "/expenses/?status=draft"
    page = client.follow(reply)
    assert page.status == 200 and "Jonas Becker" in page.text and page.rows() == 3
    assert client.post("/logout").status == 303
    assert client.get("/expenses/").status == 303


def test_sign_in_errors_and_no_open_redirect(client: Client) -> None:
    reply = client.post("/login", {"email": "nobody@example.com"})
    assert reply.status == 422 and "No employee has this e-mail address." in reply.text
    assert client.post("/login", {"email": ""}).status == 422
    reply = client.post("/login", {"email": JONAS, "next": "//evil.example/"})
    assert reply.location == "/"


def test_session_cookie_helper(apps: WebApps) -> None:
    c = Client(apps.base_url)
    name, value = apps.session_cookie(ANNA)
    c.cookies[name] = value
    assert "Anna Schmidt" in c.get("/expenses/").text
    with pytest.raises(ValueError):
        apps.session_cookie("nobody@example.com")


# --- isolation ---


def test_other_organizations_and_colleagues_records_are_not_found(apps: WebApps, state: AppState) -> None:
    anna = new_client(apps, ANNA)
    for path in ["/expenses/19", "/expenses/106", "/expenses/101", "/customers/7", "/customers/7/edit",
                 "/customers/12", "/expenses/9999"]:
        assert anna.get(path).status == 404, path
    assert anna.post("/expenses/106/submit").status == 404  # another org's draft
    assert anna.post("/expenses/101/delete").status == 404  # a colleague's draft
    assert anna.post("/customers/7/edit", {**GOOD_ADDRESS, "country": "JP", "postal_code": "170-0013"}).status == 404
    assert state.changes().empty
    customers = anna.get("/customers/?q=").text + anna.get("/customers/?page=2").text
    assert "Stadt Krefeld" in customers and "ハヤテ" not in customers and "Lakeview" not in customers
    daiki = new_client(apps, DAIKI)
    assert "ハヤテ電機株式会社" in daiki.get("/customers/").text and daiki.get("/customers/6").status == 404


# --- expenses ---


def test_claims_are_paginated_and_filtered(apps: WebApps) -> None:
    jonas = new_client(apps, JONAS)
    first = jonas.get("/expenses/")
    assert first.rows() == 10 and "Page 1 of 2" in first.text and 'rel="next">Next page</a>' in first.text
    second = jonas.get("/expenses/?page=2")
    assert second.rows() == 1 and "Previous page" in second.text and "Next page" not in second.text
    assert jonas.get("/expenses/?page=99").rows() == 1  # clamped to the last page
    assert jonas.get("/expenses/?page=abc").rows() == 10
    drafts = jonas.get("/expenses/?status=draft")
    assert drafts.rows() == 3 and "Pagination" not in drafts.text
    assert jonas.get("/expenses/?status=approved").rows() == 3
    assert jonas.get("/expenses/?status=bogus").rows() == 10
    assert "No claims" in new_client(apps, "sakura.yamamoto@aozora.example").get("/expenses/?status=draft").text


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"amount": "0"}, "amount", "The amount must be greater than 0."),
    ({"amount": "-5"}, "amount", "The amount must be greater than 0."),
    ({"amount": "10000.01"}, "amount", "The amount cannot be more than 10,000 EUR."),
    ({"amount": "abc"}, "amount", "Enter the amount as a number"),
    ({"amount": "1.234"}, "amount", "Enter the amount as a number"),
    ({"amount": ""}, "amount", "Enter an amount."),
    ({"amount": "12.50", "currency": "JPY"}, "amount", "Yen amounts have no decimals."),
    ({"amount": "1500001", "currency": "JPY"}, "amount", "The amount cannot be more than 1,500,000 JPY."),
    ({"date": "2025-10-26"}, "date", "The date cannot be in the future."),
    ({"date": "02.10.2025"}, "date", "Enter the date as YYYY-MM-DD"),
    ({"date": "2025-02-30"}, "date", "Enter the date as YYYY-MM-DD"),
    ({"date": ""}, "date", "Enter the date of the expense."),
    ({"description": "   "}, "description", "Enter a description."),
    ({"description": "x" * 501}, "description", "at most 500 characters"),
    ({"category": ""}, "category", "Choose a category."),
    ({"currency": "GBP"}, "currency", "Choose a currency."),
])
def test_claim_validation_errors_are_shown_next_to_the_field(apps: WebApps, state: AppState, change: dict,
                                                             field: str, message: str) -> None:
    jonas = new_client(apps, JONAS)
    reply = jonas.post("/expenses/new", {**GOOD_CLAIM, **change})
    assert reply.status == 422
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', reply.text)
    assert error and message in html.unescape(error.group(1))
    assert re.search(rf'id="{field}" name="{field}" aria-invalid="true" aria-describedby="{field}-error"', reply.text)
    assert 'role="alert"' in reply.text and "please correct 1 error." in reply.text
    if field != "description":
        assert "Taxi Hauptbahnhof to Klinikum Rheinland</textarea>" in reply.text  # values are kept
    assert state.changes().empty


def test_several_errors_at_once(apps: WebApps) -> None:
    reply = new_client(apps, JONAS).post("/expenses/new", {**GOOD_CLAIM, "date": "", "amount": "0", "description": ""})
    assert reply.status == 422 and "please correct 3 errors." in reply.text


def test_boundaries_are_accepted(apps: WebApps, state: AppState) -> None:
    jonas = new_client(apps, JONAS)
    assert jonas.post("/expenses/new", {**GOOD_CLAIM, "amount": "10000", "date": "2025-10-25"}).status == 303
    assert jonas.post("/expenses/new", {**GOOD_CLAIM, "amount": "0.01"}).status == 303
    assert sorted(c.amount for c in state.claims("aozora-de", JONAS) if c.id > 103) == [Decimal("0.01"), 10000]


def test_create_then_submit_a_claim(apps: WebApps, state: AppState) -> None:
    lukas = new_client(apps, "lukas.weber@aozora-de.example")
    form = lukas.get("/expenses/new")
    assert form.status == 200 and '<option value="EUR" selected>' in form.text
    reply = lukas.post("/expenses/new", GOOD_CLAIM)
    claim_id = created_id(reply)
    assert claim_id > 107  # never reuses seeded ids
    detail = lukas.follow(reply)
    assert f"Claim {claim_id} was saved as a draft." in detail.text and 'role="status"' in detail.text
    assert "Submit for approval</button>" in detail.text and "<dialog" in detail.text
    claim = state.claim("aozora-de", claim_id)
    assert claim and (claim.status, claim.amount, claim.currency, claim.category, claim.date) == (
        "draft", Decimal("42.50"), "EUR", "travel", "2025-10-02")
    assert "was saved as a draft" not in lukas.get(f"/expenses/{claim_id}").text  # the flash shows once

    reply = lukas.post(f"/expenses/{claim_id}/submit")
    assert reply.status == 303 and reply.location == f"/expenses/{claim_id}"
    page = lukas.follow(reply)
    assert "was submitted for approval" in page.text and "Pending approval" in page.text
    assert "Submit for approval</button>" not in page.text and "<dialog" not in page.text
    assert state.claim("aozora-de", claim_id).status == "pending"
    # irreversible: neither a second submission nor a deletion is possible
    assert lukas.post(f"/expenses/{claim_id}/submit").status == 409
    assert lukas.post(f"/expenses/{claim_id}/delete").status == 409
    assert lukas.post("/expenses/1/delete").status == 409  # an approved ERP claim
    assert [(e.action, e.target) for e in state.events("aozora-de")] == [
        ("claim.created", claim_id), ("claim.submitted", claim_id)]


def test_delete_a_draft(apps: WebApps, state: AppState) -> None:
    jonas = new_client(apps, JONAS)
    reply = jonas.post("/expenses/102/delete")
    assert reply.status == 303 and reply.location == "/expenses/"
    assert "Draft claim 102 was deleted." in jonas.follow(reply).text
    assert state.claim("aozora-de", 102) is None and jonas.get("/expenses/102").status == 404
    assert set(state.changes().claims) == {102}


def test_wrong_method_and_unknown_pages(apps: WebApps) -> None:
    jonas = new_client(apps, JONAS)
    assert jonas.get("/expenses/101/submit").status == 405  # GET never changes anything
    assert jonas.get("/nowhere").status == 404
    assert jonas.get("/expenses").location == "/expenses/"


# --- customers ---


def test_customers_search_and_pagination(apps: WebApps) -> None:
    felix = new_client(apps, "felix.wagner@aozora-de.example")
    first = felix.get("/customers/")
    assert first.rows() == 10 and "All customers: 15" in first.text and "Page 1 of 2" in first.text
    second = felix.get("/customers/?page=2")
    assert second.rows() == 5 and "Zahnarztpraxis Dr. Keller" in second.text
    found = felix.get("/customers/?q=k%C3%96LN")  # case-insensitive, also for umlauts
    assert found.rows() == 2 and "Zahnarztpraxis Dr. Keller" in found.text and "Physiotherapie Vogel" in found.text
    assert felix.get("/customers/?q=Aachener").rows() == 1  # street
    assert felix.get("/customers/?q=gmbh&page=2").text.count("Page 1 of 1") == 0  # no pager for one page
    assert "No customers match" in felix.get("/customers/?q=%25").text  # % is not a wildcard
    detail = felix.get("/customers/6")
    assert "Aachener Straße 210" in detail.text and "2,697.00 EUR" in detail.text and "Edit address" in detail.text


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"postal_code": "5067"}, "postal_code", "A German postal code has 5 digits"),
    ({"postal_code": "50672a"}, "postal_code", "A German postal code has 5 digits"),
    ({"postal_code": "１２３４５"}, "postal_code", "A German postal code has 5 digits"),  # full-width digits
    ({"country": "JP", "postal_code": "1760012"}, "postal_code", "A Japanese postal code looks like 123-4567."),
    ({"country": "JP"}, "postal_code", "A Japanese postal code looks like 123-4567."),
    ({"country": "US", "postal_code": "9803"}, "postal_code", "A US ZIP code has 5 digits"),
    ({"country": "US", "postal_code": "98033-1234"}, "postal_code", "A US ZIP code has 5 digits"),
    ({"postal_code": ""}, "postal_code", "Enter the postal code."),
    ({"street": ""}, "street", "Enter the street and number."),
    ({"city": " "}, "city", "Enter the city."),
    ({"country": "FR"}, "country", "Choose a country."),
])
def test_address_validation(apps: WebApps, state: AppState, change: dict, field: str, message: str) -> None:
    felix = new_client(apps, "felix.wagner@aozora-de.example")
    reply = felix.post("/customers/6/edit", {**GOOD_ADDRESS, **change})
    assert reply.status == 422
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', reply.text)
    assert error and message in html.unescape(error.group(1))
    assert state.changes().empty


def test_edit_address_saves_and_shows_a_flash(apps: WebApps, state: AppState) -> None:
    felix = new_client(apps, "felix.wagner@aozora-de.example")
    form = felix.get("/customers/6/edit")
    assert 'value="Aachener Straße 210"' in form.text and '<option value="DE" selected>' in form.text
    reply = felix.post("/customers/6/edit", {**GOOD_ADDRESS, "street": "  Hohenzollernring 55 "})
    assert reply.status == 303 and reply.location == "/customers/6"
    page = felix.follow(reply)
    assert '<p class="flash" role="status">The address of Zahnarztpraxis Dr. Keller was saved.</p>' in page.text
    assert "Hohenzollernring 55" in page.text and "was saved" not in felix.get("/customers/6").text
    c = state.customer("aozora-de", 6)
    assert (c.street, c.postal_code, c.city, c.country) == ("Hohenzollernring 55", "50672", "Köln", "DE")
    assert set(state.changes().customers) == {6} and state.events()[0].action == "customer.address_updated"
    # moving a customer to another country uses that country's format
    assert felix.post("/customers/6/edit", {"street": "1-1 Marunouchi", "postal_code": "100-0005",
                                            "city": "Tokyo", "country": "JP"}).status == 303


# --- HTML safety and accessibility ---


def test_stored_and_reflected_html_is_escaped(apps: WebApps, state: AppState) -> None:
    jonas = new_client(apps, JONAS)
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    claim_id = created_id(jonas.post("/expenses/new", {**GOOD_CLAIM, "description": payload}))
    assert state.claim("aozora-de", claim_id).description == payload  # stored as typed ...
    for page in (jonas.get(f"/expenses/{claim_id}"), jonas.get("/expenses/")):
        assert "<script>alert" not in page.text and "<img src=x" not in page.text  # ... shown escaped
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert jonas.post("/customers/6/edit", {**GOOD_ADDRESS, "street": payload}).status == 303
    assert "<script>alert" not in jonas.get("/customers/6").text
    reflected = jonas.get("/customers/?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in reflected.text and "&lt;script&gt;" in reflected.text
    invalid = jonas.post("/expenses/new", {**GOOD_CLAIM, "amount": "<b>1</b>"})
    assert invalid.status == 422 and 'value="&lt;b&gt;1&lt;/b&gt;"' in invalid.text


def test_pages_are_self_contained_with_a_strict_policy(apps: WebApps) -> None:
    jonas = new_client(apps, JONAS)
    for path in ["/expenses/", "/expenses/new", "/expenses/101", "/customers/", "/customers/6", "/customers/6/edit",
                 "/inbox/", "/inbox/211", "/travel/", "/travel/new", "/files/"]:
        page = jonas.get(path)
        assert not re.search(r'(src|href|action)="(https?:)?//', page.text), path
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'nonce-" in policy
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert page.text.count("<script") == page.text.count(f'<script nonce="{nonce}">') == 1
        assert " onclick=" not in page.text


class _Controls(HTMLParser):
    """Collect interactive elements and whether each has an accessible name."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.controls: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[tuple[str, dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append((tag, a))
        if tag in ("a", "button"):
            self.open.append((tag, a, []))

    def handle_data(self, data: str) -> None:
        for _, _, text in self.open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("a", "button") and self.open:
            t, a, text = self.open.pop()
            self.controls.append((t, {**a, "_text": "".join(text).strip()}))


@pytest.mark.parametrize("path", ["/login", "/", "/expenses/", "/expenses/new", "/expenses/101", "/customers/",
                                  "/customers/?page=2", "/customers/6", "/customers/6/edit"])
def test_every_control_has_an_accessible_name(apps: WebApps, path: str) -> None:
    client = Client(apps.base_url) if path == "/login" else new_client(apps, JONAS)
    parser = _Controls()
    parser.feed(client.get(path).text)
    assert parser.controls
    for tag, a in parser.controls:
        if tag in ("input", "select", "textarea"):
            assert a.get("id") in parser.labels or a.get("aria-label"), (path, tag, a)
        else:
            assert a.get("_text") or a.get("aria-label"), (path, tag, a)


def test_module_entry_point(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cristal.sample.webapps", "--db", str(tmp_path / "m.db"),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        url = first.split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/expenses/")
        with urllib.request.urlopen(url) as response:  # redirected to the sign-in form
            assert response.url.startswith(url.replace("/expenses/", "/login")) and "Sign in" in response.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
