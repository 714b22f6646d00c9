"""Chat in the web app, in a real headless Chromium against the live server and a scripted model on loopback.

A person signs in, picks an agent, asks, watches the tool call and the streamed
answer, opens citation [1], and works with the conversation list (search,
regenerate, rename, export, delete, stop). A model answer full of markup renders
as inert text. The interface speaks Japanese and German, and Enter while an
input method is composing does not send.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cristal.testing.scripted_model import Reply, ScriptedModel, text
from tests.server.conftest import IBAN, Company, LiveServer, person, wait_for
from tests.server.test_agents_api import QUESTION, SEARCH, _cited_answer, agent, model, settings

__all__ = ["agent", "model", "settings"]  # fixtures shared with the agents API's tests

playwright = pytest.importorskip("playwright.sync_api")

FIN = person("fin", "acme")
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Set to 1 to write the screenshot docs/web-app.md shows (the command is in docs/web-app.md).
SCREENSHOTS = os.environ.get("CRISTAL_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from cristal.operator import chromium

    with chromium() as b:
        yield b


class Page:
    """A signed-in browser page in its own context, collecting the page's errors."""

    def __init__(self, browser: Any, live: LiveServer, key: str, locale: str = "en-US") -> None:
        self.context = browser.new_context(locale=locale, accept_downloads=True, viewport={"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(live.url + "/")
        self.page.locator("#key").fill(key)
        self.page.locator("#signin-form button").click()
        self.page.get_by_text(f"{FIN} · acme").wait_for()

    def ask(self, question: str) -> None:
        self.page.locator("#chat-input").fill(question)
        self.page.locator("#send").click()

    def close(self) -> None:
        self.context.close()
        # Before sign-in the page asks /api/v1/me for a session cookie; without one that is a 401, logged by Chromium.
        assert [e for e in self.errors if "status of 401" not in e] == []


def _conversations(company: Company) -> list[str]:
    from cristal.agents import conversations

    return [c["conversation_id"] for c in conversations.list_conversations(company.db, "acme", FIN, None, None)]


def test_ask_an_agent_see_the_tool_call_open_the_citation_and_manage_the_conversation(  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
        browser, live: LiveServer, company: Company, agent: str, model: ScriptedModel) -> None:
    p = Page(browser, live, company.key(FIN))
    page = p.page
    try:
        wait_for(lambda: page.get_by_label("Agent").input_value() == agent, timeout=10, what="the agent picker")
        model.push(SEARCH, _cited_answer)
        p.ask(QUESTION)
        page.get_by_text("Tool search_knowledge: done").wait_for()
        answer = page.locator(".msg.assistant .body")
        answer.get_by_text(IBAN["acme"]).wait_for()
        page.get_by_text(re.compile(r"\d+ tokens")).wait_for()  # the done event: the turn is stored
        # The tool call is collapsed; opened, it shows its arguments.
        assert not page.locator("details.tool pre").is_visible()
        page.locator("details.tool summary").click()
        assert "supplier IBAN" in page.locator("details.tool pre").inner_text()

        page.get_by_role("button", name=re.compile(r"^Citation 1: .*bank\.md$")).click()
        quote = page.locator("#citation mark")
        assert IBAN["acme"] in quote.inner_text()
        assert page.locator("#citation").get_by_text(re.compile(r"bank\.md$")).is_visible()
        if SCREENSHOTS:
            page.screenshot(path=str(DOCS / "web-app-chat.png"))
        page.keyboard.press("Escape")  # closes the passage and goes back to the marker
        assert page.locator("#citation").is_hidden()
        assert page.evaluate("document.activeElement.textContent") == "[1]"

        conv_list = page.locator("#conv-list")
        conv_list.get_by_text(QUESTION).wait_for()
        page.get_by_label("Search conversations").fill("nothing like this")
        page.get_by_text("No conversation matches.").wait_for()
        page.get_by_label("Search conversations").fill("SUPPLIER")
        conv_list.get_by_text(QUESTION).wait_for()

        model.push(text("Asked again: still the same IBAN."))
        page.get_by_role("button", name="Regenerate").click()
        page.get_by_text("Asked again: still the same IBAN.").wait_for()

        page.get_by_role("button", name="Rename").click()
        page.get_by_label("New title").fill("Supplier questions")
        page.get_by_role("button", name="Save").click()
        conv_list.get_by_text("Supplier questions").wait_for()
        with page.expect_download() as download:
            page.get_by_role("button", name="Export Markdown").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        assert "Asked again: still the same IBAN." in exported and IBAN["acme"] in exported

        # The open conversation is in the address: a reload opens it again, both turns and the citation included.
        assert re.search(r"#conversation=[\w-]+$", page.url)
        page.reload()
        page.get_by_text("Asked again: still the same IBAN.").wait_for()
        assert page.locator(".msg.user").count() == 2
        page.get_by_role("button", name=re.compile(r"^Citation 1: ")).click()
        assert IBAN["acme"] in page.locator("#citation mark").inner_text()

        page.get_by_role("button", name="Delete", exact=True).click()
        page.get_by_role("button", name="Delete for good").click()
        page.get_by_text("No conversations yet.").wait_for()
        assert _conversations(company) == []

        # Stop aborts the stream; the turn still finishes on the server and is kept.
        released = threading.Event()

        def slow(request: dict[str, Any]) -> Reply:
            released.wait(10)
            return text("Finished after all.")

        model.push(slow)
        asked = len(model.chat_requests)
        p.ask("Take your time")
        wait_for(lambda: len(model.chat_requests) > asked, timeout=10, what="the turn to reach the model")
        page.get_by_role("button", name="Stop").click()
        page.get_by_text("Stopped.", exact=False).wait_for()
        released.set()
        wait_for(lambda: len(_conversations(company)) == 1, timeout=10, what="the stopped turn to be stored")
        page.get_by_role("button", name="New chat").click()
        conv_list.get_by_text("Take your time").click()
        page.get_by_text("Finished after all.").wait_for()
    finally:
        p.close()


MARKUP = ('<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> '
          '**bold** [click](javascript:window.pwned=3) <a href="https://evil.example">a</a> '
          '*em* __init__ [docs](https://docs.example/x)')


def test_markup_in_a_model_answer_renders_inert(browser, live: LiveServer, company: Company, agent: str,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                model: ScriptedModel) -> None:
    p = Page(browser, live, company.key(FIN))
    page = p.page
    try:
        model.push(text(MARKUP + "\n\n- one\n- two\n\n`<b>code</b>`"))
        p.ask("Show me some markup")
        body = page.locator(".msg.assistant .body")
        body.locator("li").nth(1).wait_for()
        shown = body.inner_text()
        assert '<img src=x onerror="window.pwned=1">' in shown and "<script>window.pwned=2</script>" in shown
        assert "[click](javascript:window.pwned=3)" in shown and "<b>code</b>" in shown
        assert "__init__" in shown
        assert body.locator("img, script, b").count() == 0
        assert body.locator("strong").inner_text() == "bold" and body.locator("code").inner_text() == "<b>code</b>"
        assert body.locator("em").inner_text() == "em"
        [link] = body.locator("a").all()  # only the https link is a link
        assert (link.get_attribute("href"), link.get_attribute("rel")) == ("https://docs.example/x", "noopener noreferrer")
        assert page.evaluate("window.pwned") is None

        # A stream cut before its last event: what came is shown, marked incomplete, never passed off as whole.
        page.get_by_role("button", name="New chat").click()
        page.route("**/api/v1/conversations", lambda route: route.fulfill(
            status=200, content_type="text/event-stream", body='event: text\ndata: {"text": "Half an ans", "step": 0}\n\n'))
        p.ask("Are you there?")
        page.get_by_text("The connection was lost: this answer is incomplete.", exact=False).wait_for()
        assert page.locator(".msg.assistant .body").inner_text() == "Half an ans"
        page.unroute("**/api/v1/conversations")
        page.locator("#conv-list button").first.click()
        page.locator(".msg.assistant .body li").nth(1).wait_for()

        # Someone else's (or no one's) conversation typed into the address bar: the API's 404, said on the page,
        # and the conversation that was open stays open.
        opened = page.url
        page.goto(opened.split("#")[0] + "#conversation=0123456789abcdef")
        page.get_by_text("unknown conversation").wait_for()
        assert page.locator(".msg").count() == 2 and page.url == opened
        p.errors.remove("Failed to load resource: the server responded with a status of 404 (Not Found)")
    finally:
        p.close()


def test_japanese_and_german_interface_and_input_method_enter(browser, live: LiveServer, company: Company,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                              agent: str, model: ScriptedModel) -> None:
    p = Page(browser, live, company.key(FIN), locale="ja-JP")
    page = p.page
    try:
        assert page.evaluate("document.documentElement.lang") == "ja"
        page.get_by_role("button", name="新しいチャット").wait_for()
        assert page.get_by_role("button", name="送信").is_visible()
        page.get_by_text("会話はまだありません。").wait_for()

        # Enter that confirms an input method's conversion is not a send.
        box = page.get_by_label("メッセージ")
        box.fill("ミュンヘンのホテル上限は")
        requests = len(model.chat_requests)
        page.evaluate("""() => document.getElementById("chat-input").dispatchEvent(
            new KeyboardEvent("keydown", {key: "Enter", isComposing: true, bubbles: true, cancelable: true}))""")
        assert box.input_value() == "ミュンヘンのホテル上限は" and page.locator(".msg.user").count() == 0

        model.push(text("ミュンヘンのホテル上限は1泊150ユーロです。"))
        box.press("Enter")  # no composition: sends
        page.get_by_text("ミュンヘンのホテル上限は1泊150ユーロです。").wait_for()
        assert len(model.chat_requests) == requests + 1
        assert model.chat_requests[-1].json["messages"][-1]["content"] == "ミュンヘンのホテル上限は"
        page.get_by_text(re.compile(r"\d+ トークン")).wait_for()
        page.get_by_label("会話を検索").fill("ホテル")
        page.locator("#conv-list").get_by_text("ミュンヘンのホテル上限は").wait_for()

        # German, picked in the header, is remembered; dates follow the locale.
        page.get_by_label("言語").select_option("de")
        page.get_by_role("button", name="Neuer Chat").wait_for()
        page.reload()
        page.get_by_role("button", name="Senden").wait_for()
        assert page.evaluate("document.documentElement.lang") == "de"
        item = page.locator("#conv-list li").first.inner_text()
        expected = page.evaluate("""() => new Intl.DateTimeFormat("de", {year: "numeric"}).format(new Date())""")
        assert expected in item
        page.get_by_role("button", name="Läufe").click()
        page.get_by_role("columnheader", name="Eigentümer").wait_for()
    finally:
        p.close()


def test_chat_signed_in_with_the_company_account(browser, providers, live: LiveServer, company: Company,  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
                                                 agent: str, model: ScriptedModel) -> None:
    # The session cookie and its CSRF token carry the streamed turn, the rename and the delete.
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(live.url + "/")
        page.get_by_label("Organisation", exact=True).fill("acme")
        page.get_by_role("button", name="Firmen-Anmeldung").click()
        page.get_by_label("E-mail").fill(FIN)
        page.get_by_label("Password").fill("pw-fin")
        page.get_by_role("button", name="Continue").click()
        page.get_by_text(f"{FIN} · acme").wait_for()
        model.push(SEARCH, _cited_answer)
        page.get_by_label("Nachricht").fill(QUESTION)
        page.get_by_role("button", name="Senden").click()
        page.get_by_text("Werkzeug search_knowledge: erledigt").wait_for()
        page.get_by_role("button", name=re.compile(r"^Quelle 1: ")).click()
        assert IBAN["acme"] in page.locator("#citation mark").inner_text()
        page.get_by_text(re.compile(r"\d+ Tokens")).wait_for()
        page.get_by_role("button", name="Umbenennen").click()
        page.get_by_label("Neuer Titel").fill("Lieferant")
        page.get_by_label("Neuer Titel").press("Enter")
        page.locator("#conv-list").get_by_text("Lieferant").wait_for()
        page.get_by_role("button", name="Löschen", exact=True).click()
        page.get_by_role("button", name="Endgültig löschen").click()
        page.get_by_text("Noch keine Unterhaltungen.").wait_for()
        assert _conversations(company) == []
        # The session is gone (expired, or ended elsewhere): the next request goes back to sign-in, saying why.
        context.clear_cookies()
        page.get_by_role("button", name="Neuer Chat").click()
        page.get_by_role("button", name="Firmen-Anmeldung").wait_for()
        assert page.locator("#signin-error").inner_text().strip() != ""
    finally:
        context.close()
    assert errors == []
