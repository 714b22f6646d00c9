"""What the model sees: the observation format, stable IDs, shadow DOM and iframes, and acting on them."""

from __future__ import annotations

from cristal.operator import AllowList, BrowserSession, Secrets
from cristal.operator.observation import element_line
from tests.operator.site import PASSWORD, USER, SiteServer


def _session(browser, site: SiteServer, secrets: Secrets | None = None) -> BrowserSession:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    return BrowserSession(browser, AllowList.build([], site.url()), secrets)


def test_format_lists_elements_with_role_name_value_and_state(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with _session(browser, site) as s:
        obs = s.open(site.url("/login"))
        text = obs.format()
        assert text.startswith(f"URL: {site.url('/login')}\nTitle: Sign in\nInteractive elements:\n")
        lines = text.split("Interactive elements:\n", 1)[1].split("\nVisible text:\n", 1)[0].splitlines()
        assert lines == [
            '[1] link "Expenses" -> /expenses',
            '[2] link "New expense" -> /expenses/new',
            '[3] textbox "E-mail" (email) value="" required',
            '[4] textbox "Password" (password) value="" required',
            '[5] button "Log in" submits form',
        ]
        visible = text.split("\nVisible text:\n", 1)[1]
        assert visible.splitlines()[:2] == ["[1] Expenses · [2] New expense", "Sign in"]
        assert "E-mail [3] Password [4] [5] Log in" in visible
        assert obs.distil_ms > 0 and obs.total_ms >= obs.distil_ms


def test_ids_are_stable_across_steps_and_pages(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with _session(browser, site, Secrets({"PASSWORD": PASSWORD})) as s:
        first = s.open(site.url("/login"))
        ids = {e["name"]: e["id"] for e in first.elements}
        s.act("fill", {"text": USER}, first.element(ids["E-mail"]))
        after_fill = s.last
        assert {e["name"]: e["id"] for e in after_fill.elements} == ids
        assert 'value="alice@acme.example"' in element_line(after_fill.element(ids["E-mail"]))
        s.act("fill", {"text": "{{PASSWORD}}"}, after_fill.element(ids["Password"]))
        # the password field shows no value, and the secret never appears
        assert PASSWORD not in s.last.format() and "••••••••" in s.last.format()
        outcome = s.act("click", {}, s.last.element(ids["Log in"]))
        assert outcome.ok and outcome.changes["url_changed"] and outcome.url_after == site.url("/expenses")
        listing = s.last
        assert listing.element(ids["Expenses"])["name"] == "Expenses"  # the header links keep their IDs
        deletes = [e for e in listing.elements if e["name"] == "Delete"]
        assert len(deletes) == 2 and deletes[0]["id"] != deletes[1]["id"]
        assert {e["fp"]["ctx"] for e in deletes} == {"Taxi to airport42.00TraveldraftDelete", "Team lunch120.00MealsdraftDelete"}
        # a new page's elements get new IDs; coming back gives the old ones again
        s.act("goto", {"url": "/login"})
        assert {e["name"]: e["id"] for e in s.last.elements} == ids
        assert max(e["id"] for e in deletes) < s.next_id


def test_shadow_dom_and_iframe_content_appear_and_can_be_used(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with _session(browser, site) as s:
        obs = s.open(site.url("/widgets"))
        text = obs.format()
        assert "Text inside the shadow root" in text and "Frame notes here" in text
        shadow = next(e for e in obs.elements if e["name"] == "Shadow approve")
        note = next(e for e in obs.elements if e["name"] == "Note")
        frame_button = next(e for e in obs.elements if e["name"] == "Frame save")
        assert note["frames"] and not shadow["frames"]
        assert note["fp"]["frames"] == "Notes frame"
        assert s.act("fill", {"text": "hello from the operator"}, note).ok
        assert 'value="hello from the operator"' in s.last.format()
        assert s.act("click", {}, shadow).ok and s.act("click", {}, frame_button).ok


def test_unknown_select_option_is_reported_with_the_choices(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with _session(browser, site) as s:
        s.open(site.url("/login"))
        s.page.context.add_cookies([])  # no session: /expenses/new redirects to login
        obs = s.open(site.url("/widgets"))
        outcome = s.act("scroll", {"direction": "sideways"})
        assert not outcome.ok and "up, down, top or bottom" in outcome.message
        outcome = s.act("press", {"key": "NoSuchKey"})
        assert not outcome.ok and "cannot press" in outcome.message
        assert obs.url == s.last.url


def test_a_page_that_keeps_changing_is_observed_after_the_settle_cap(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.operator import Timing

    with BrowserSession(browser, AllowList.build([], site.url()), timing=Timing(settle_s=0.3)) as s:
        obs = s.open(site.url("/ticker"))
        poke = next(e for e in obs.elements if e["name"] == "Poke")
        outcome = s.act("click", {}, poke)
        assert outcome.ok and s.last.title == "clicked"


def test_screenshot_is_png(browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with _session(browser, site) as s:
        s.open(site.url("/login"))
        assert s.screenshot().startswith(b"\x89PNG")
