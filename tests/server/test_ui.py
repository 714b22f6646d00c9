"""The web UI in a real headless Chromium: sign in with a key, search, approve, follow the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.conftest import Company, LiveServer, Worker, person, wait_for
from tests.server.test_workflows_http import REVIEW, start, status

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from cristal.operator import chromium

    with chromium() as b:
        yield b


def test_sign_in_search_approve_and_follow_the_run(browser, live: LiveServer, company: Company, client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    fin = client(person("fin", "acme"))
    run_id = start(fin, {"amount": 8}, REVIEW)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(live.url + "/")
        page.get_by_label("API key").fill("cri_bad_key")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("invalid API key").wait_for()

        page.get_by_label("API key").fill(company.key(person("fin", "acme")))
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("fin@acme.example · acme").wait_for()
        page.get_by_role("button", name="Search", exact=True).first.click()  # the tab (chat opens first)
        page.get_by_label("Search query").fill("supplier IBAN")
        page.get_by_role("button", name="Search", exact=True).last.click()
        page.get_by_text("Supplier payments").wait_for()
        assert "bank.md" in page.locator("#hits").inner_text()

        with Worker(company):
            wait_for(lambda: status(fin, run_id)["status"] == "waiting", what="the run to wait for approval")
            page.get_by_role("button", name="Approvals").click()
            page.get_by_text("Approve 16 EUR?").wait_for()
            page.get_by_role("textbox", name="Comment for").fill("fine by me")
            page.get_by_role("button", name="Approve", exact=True).click()
            page.get_by_text("Nothing is waiting for you.").wait_for()
            wait_for(lambda: status(fin, run_id)["status"] == "succeeded", what="the run to finish")
        page.get_by_role("button", name="Runs").click()
        page.get_by_role("link", name=run_id).click()
        page.get_by_text(f"{run_id} — succeeded").wait_for()
        assert '"doubled": 16' in page.locator("#run-detail pre").inner_text()
        assert status(fin, run_id)["steps"][1]["approval"]["status"] == "approved"

        # Signing out forgets the key; reloading does not bring it back.
        page.get_by_role("button", name="Sign out").click()
        page.reload()
        page.get_by_role("button", name="Sign in").wait_for()
        assert page.evaluate("sessionStorage.length") == 0
    finally:
        page.close()
    # The page's own script and style ran under its Content-Security-Policy, and nothing failed but the bad key's 401.
    assert [e for e in errors if "401" not in e] == []


def test_sign_in_with_the_company_account_and_out(browser, providers, live: LiveServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(live.url + "/")
        page.get_by_label("Organization").fill("acme")
        page.get_by_role("button", name="Company sign-in").click()
        # The provider's own login page, then back to Cristal signed in.
        page.get_by_role("heading", name="Company sign-in").wait_for()
        page.get_by_label("E-mail").fill("ana@acme.example")
        page.get_by_label("Password").fill("pw-ana")
        page.get_by_role("button", name="Continue").click()
        page.get_by_text("ana@acme.example · acme").wait_for()
        assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly: no script reads it
        cookie = next(c for c in context.cookies() if c["name"] == "__Host-cristal-session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        # A state-changing request from the page carries the CSRF token.
        page.get_by_role("button", name="Search", exact=True).first.click()  # the tab (chat opens first)
        page.get_by_label("Search query").fill("supplier IBAN")
        page.get_by_role("button", name="Search", exact=True).last.click()
        page.get_by_text("Supplier payments").wait_for()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Company sign-in").wait_for()
        page.reload()
        page.get_by_role("button", name="Company sign-in").wait_for()
        assert page.get_by_text("ana@acme.example · acme").count() == 0
        assert page.get_by_label("Organization").input_value() == "acme"  # remembered for next time
    finally:
        context.close()
    assert errors == []
