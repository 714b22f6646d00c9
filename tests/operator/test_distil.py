"""The observation on static pages (no server): what a person can operate is listed, with the name and state
assistive technologies would give it, and the visible text reads as the page does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from cristal.operator import AllowList, BrowserSession, Timing
from cristal.operator.observation import Observation, element_line


@pytest.fixture
def session(browser: Browser) -> Iterator[BrowserSession]:
    with BrowserSession(browser, AllowList(("127.0.0.1",))) as s:
        yield s


def _observe(session: BrowserSession, html: str) -> Observation:
    session.page.set_content("<!doctype html><html><body>" + html + "</body></html>")
    return session.observe()


def _lines(obs: Observation) -> list[str]:
    return [element_line(e).split("] ", 1)[1] for e in obs.elements]


SCRIPT_BOUND = """
<style>.pointer { cursor: pointer } .card { cursor: pointer; border: 1px solid }</style>
<span id="prop">Open report</span>
<div id="added">Start</div>
<ul id="delegate"><li>Alpha</li><li>Beta</li><li>Gamma</li></ul>
<span class="pointer">Details</span>
<div class="card"><a href="/a">Card link</a></div>
<label class="pointer"><input type="checkbox"> Remember me</label>
<div id="root"><button>Inside a root listener</button><p>text</p></div>
<span class="pointer" title="Close">\u00d7</span>
<p>Plain text, no handler</p>
<script>
  document.getElementById('prop').onclick = () => {};
  document.getElementById('added').addEventListener('mousedown', () => {});
  document.getElementById('delegate').addEventListener('click', (e) => { e.target.closest('li').dataset.hit = '1'; });
  document.getElementById('root').addEventListener('click', () => {});
  document.body.addEventListener('click', () => {});
  document.addEventListener('click', () => {});
</script>
"""


def test_script_bound_and_pointer_elements_are_listed_once(session: BrowserSession) -> None:
    obs = _observe(session, SCRIPT_BOUND)
    assert _lines(obs) == [
        'clickable "Open report"', 'clickable "Start"', 'listitem "Alpha"', 'listitem "Beta"', 'listitem "Gamma"',
        'clickable "Details"', 'link "Card link" -> /a', 'checkbox "Remember me" unchecked', 'button "Inside a root listener"',
        'clickable "Close"',
    ]
    assert [e.get("via") for e in obs.elements[:6]] == ["listener", "listener", "delegated", "delegated", "delegated", "pointer"]
    beta = next(e for e in obs.elements if e["name"] == "Beta")
    assert session.act("click", {}, beta).ok
    assert session.page.evaluate("document.querySelectorAll('[data-hit]').length") == 1


ACCNAME = """
<span id="lbl">Cost centre</span><input aria-labelledby="lbl">
<input aria-label="Search orders">
<label for="a">Amount</label><input id="a">
<label>Wrapped <input name="w"></label>
<div><label>Unlinked label</label><input name="u" placeholder="e.g. 42"></div>
<div class="row"><span>Preceding text</span><input name="p" placeholder="YYYY-MM-DD"></div>
<table><tr><td>In a cell before:</td><td><input name="c"></td></tr></table>
<h2>A heading is not a label</h2><input name="h" placeholder="Only the placeholder">
<input name="t" title="Only the title">
<button><img src="data:," alt="Print"></button>
"""


def test_names_as_assistive_technologies_give_them_and_unlinked_labels(session: BrowserSession) -> None:
    obs = _observe(session, ACCNAME)
    assert [e["name"] for e in obs.elements] == ["Cost centre", "Search orders", "Amount", "Wrapped", "Unlinked label",
                                                 "Preceding text", "In a cell before", "Only the placeholder", "Only the title",
                                                 "Print"]
    assert obs.elements[5]["hint"] == "YYYY-MM-DD" and "hint" not in obs.elements[4]


STATES = """
<div role="listbox" aria-multiselectable="true">
  <div role="option" aria-selected="true">Red</div><div role="option" aria-selected="false">Blue</div></div>
<nav><a href="/1" aria-current="page">1</a><a href="/2">2</a></nav>
<button aria-expanded="true">Menu</button><details><summary>More</summary>hidden</details>
<div role="checkbox" aria-checked="mixed">All</div><input type="checkbox" checked aria-label="Mine">
<fieldset disabled><input aria-label="Off"></fieldset>
<input aria-label="Fixed" readonly value="7"><button aria-pressed="true">Bold</button>
<ul role="tree"><li role="treeitem" aria-expanded="true"><span>Parent</span><ul role="group"><li role="treeitem">Child</li></ul></li></ul>
<select multiple aria-label="Regions"><option selected>North</option><option>South</option><option selected>East</option></select>
"""


def test_states_selected_current_expanded_checked_disabled_readonly(session: BrowserSession) -> None:
    obs = _observe(session, STATES)
    assert _lines(obs) == [
        'listbox "" multiselectable', 'option "Red" selected', 'option "Blue"', 'link "1" current -> /1', 'link "2" -> /2',
        'button "Menu" expanded', 'button "More" collapsed', 'checkbox "All" mixed', 'checkbox "Mine" checked',
        'textbox "Off" value="" disabled', 'textbox "Fixed" value="7" readonly', 'button "Bold" pressed',
        'treeitem "Parent" expanded', 'treeitem "Child"',
        'listbox "Regions" value="North, East" multiselectable', 'option "North" selected', 'option "South"',
        'option "East" selected',
    ]
    parent = next(e for e in obs.elements if e["name"] == "Parent")
    assert parent["clickAt"]["y"] < 25  # its own line, not the middle of the box that holds its child
    south = next(e for e in obs.elements if e["name"] == "South")
    assert session.act("click", {}, south).ok
    assert 'listbox "Regions" value="North, South, East"' in session.last.format()


def test_text_has_no_spaces_inside_words_and_cells_stay_apart(session: BrowserSession) -> None:
    obs = _observe(session, '<p>Dear <b>Bern</b>ardine, “<i>quoted</i>” <span>word</span>s and <a href="/x">li<b>nk</b></a>.</p>'
                            '<table><tr><td>a</td><td>b</td></tr></table>'
                            '<div style="display:flex"><span>Left</span><span>Right</span></div>'
                            '<p>one<span style="display:inline-block">chip</span>two</p>')
    assert obs.text.splitlines() == ["Dear Bernardine, “quoted” words and [1] link.", "a | b", "Left Right", "one chip two"]
    assert obs.elements[0]["name"] == "link"


DEBOUNCED = """
<input aria-label="City"><ul id="out"></ul>
<script>
  let t = null;
  document.querySelector('input').addEventListener('input', (e) => {
    clearTimeout(t);
    t = setTimeout(() => { document.getElementById('out').innerHTML = '<li>Suggestion for ' + e.target.value + '</li>'; }, 450);
  });
  setInterval(() => {}, 100);  // the page's own timer: never waited for
</script>
"""


def test_settling_waits_for_the_debounce_an_action_started(session: BrowserSession) -> None:
    obs = _observe(session, DEBOUNCED)
    outcome = session.act("fill", {"text": "Bern"}, obs.elements[0])
    assert outcome.ok and "Suggestion for Bern" in session.last.text


COVERED = """
<button id="under" style="position:absolute;left:10px;top:10px;width:120px;height:30px">Save</button>
<div style="position:absolute;left:0;top:0;width:300px;height:100px;background:#eee">A toast covers it</div>
<button id="start" style="position:absolute;left:10px;top:150px">Start</button>
<button id="later" style="position:absolute;left:10px;top:200px">Later</button>
<script>
  document.getElementById('later').onclick = () => { document.title = 'later clicked'; };
  document.getElementById('start').onclick = () => {  // a "working…" overlay for longer than settling waits
    const veil = document.createElement('div');
    veil.style.cssText = 'position:absolute;left:0;top:190px;width:300px;height:60px;background:#eee';
    veil.textContent = 'Working…';
    document.body.appendChild(veil);
    setTimeout(() => veil.remove(), 2500);
  };
</script>
"""


def test_a_covered_target_waits_for_the_cover_to_go_or_says_what_covers_it(browser: Browser) -> None:
    with BrowserSession(browser, AllowList(("127.0.0.1",)), timing=Timing(cover_s=4.0)) as session:
        obs = _observe(session, COVERED)
        named = {e["name"]: e for e in obs.elements}
        assert session.act("click", {}, named["Start"]).ok and "Working…" in session.last.text
        assert session.act("click", {}, session.last.by_key(named["Later"]["key"])).ok  # waited until the veil was gone
        assert session.page.title() == "later clicked"
        outcome = session.act("click", {}, session.last.by_key(named["Save"]["key"]))
        assert not outcome.ok and "is covered by <div>" in outcome.message and "A toast covers it" in outcome.message


def test_click_point_clicks_what_no_listing_reaches(session: BrowserSession) -> None:
    _observe(session, '<canvas width="200" height="100" style="display:block"></canvas>'
                      '<script>document.addEventListener("click", (e) => { if (e.clientX < 200 && e.clientY < 100) '
                      'document.title = "hit " + e.clientX + "," + e.clientY; });</script>')
    outcome = session.act("click_point", {"x": 40, "y": 30})
    assert outcome.ok and session.page.title() == "hit 40,30"
    assert not session.act("click_point", {"x": -1, "y": 30}).ok


def test_large_page_stays_compact(session: BrowserSession) -> None:
    rows = "".join(f"<tr class=r><td>Item {i}</td><td>{i * 3.5:.2f}</td></tr>" for i in range(300))
    obs = _observe(session, "<style>.r{cursor:pointer}</style><table>" + rows + "</table>")
    assert len(obs.elements) == 300 and all(e["role"] == "row" for e in obs.elements)
    assert len(obs.format()) < 40_000
