"""A real, headless Chromium driven through Playwright's sync API.

One isolated browser context per run (no cookies, storage or cache shared with
any other run), every request outside the run's allow-list aborted by a route,
service workers blocked, downloads refused. ``BrowserSession`` turns the page
into an :class:`Observation` and carries out the model's actions robustly:
scroll into view, wait for the page to settle (load state, then a quiet DOM and
no requests in flight, within a cap), retry a stale element once by its
fingerprint, and report what changed.

A watchdog bounds every call into the page: a script that keeps the page busy
(an ``onclick`` with ``while(true){}``, a timer that never yields) would
otherwise hang ``page.evaluate`` forever. Past ``Timing.script_s`` the script
is terminated through the DevTools protocol (the page is closed if even that
does not help) and the run stops with ``StopRun`` saying so.

With ``hold_writes`` (a run without ``allow_irreversible``) every request that
may change state on a server (``write_request``: any method but GET, HEAD,
OPTIONS) is held by the route, unanswered, outside the write-allowed hosts: the
action that caused it returns, ``held`` lists the requests, and ``release``
lets them through (approved) or aborts them (rejected) before the page settles.
A click that only changes the page sends nothing and never waits.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, Position, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from cristal.config import Settings, load_settings
from cristal.errors import CristalError
from cristal.operator.distil_js import (
    COVER_JS,
    DISTIL_JS,
    FOCUS_JS,
    LISTENERS_JS,
    OPTION_JS,
    POINT_JS,
    QUIET_JS,
    SELECT_JS,
    SIGNIN_JS,
    TIMERS_INIT_JS,
)
from cristal.operator.observation import Observation, element_line
from cristal.operator.safety import AllowList, Secrets, body_view, write_request

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DEFAULT_CHROMIUM = "/usr/bin/chromium"


class BrowserUnavailable(CristalError):
    """Chromium is not installed or does not start."""

    exit_code = 1


class StopRun(Exception):
    """The browser can no longer be used for this run (crash, a page that never loads)."""


def chromium_path(configured: str | None = None) -> str:
    """The binary: ``configured`` (the ``chromium`` setting, ``CRISTAL_CHROMIUM``) or the default, else the PATH's."""
    path = configured or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        if found and not configured:
            return found
        raise BrowserUnavailable(
            f"Chromium not found at {path}: install it (Debian: apt-get install chromium) or set CRISTAL_CHROMIUM to its path"
        )
    return path


def launch(playwright: Playwright, settings: Settings | None = None) -> Browser:
    binary = chromium_path((settings or load_settings()).chromium)
    try:
        return playwright.chromium.launch(executable_path=binary, headless=True, args=LAUNCH_ARGS)
    except PlaywrightError as exc:
        raise BrowserUnavailable(f"Chromium did not start: {_first_line(exc)}") from None


@contextmanager
def chromium(settings: Settings | None = None) -> Iterator[Browser]:
    """A headless Chromium for as long as the ``with`` lasts (one per process is plenty: runs use contexts).

    ``settings`` name the binary; without them this process's settings are loaded.
    """
    pw = sync_playwright().start()
    try:
        browser = launch(pw, settings)
        try:
            yield browser
        finally:
            try:
                browser.close()
            except PlaywrightError:
                pass
    finally:
        pw.stop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip().strip("=").strip()
        if line and not line.startswith(("Call log", "- ")):
            return line[:300]
    return type(exc).__name__


# ----------------------------------------------------------------------
# Outcomes


@dataclass
class Outcome:
    """What an action did, as the model and the record see it."""

    ok: bool
    message: str
    url_before: str
    url_after: str
    element: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0


@dataclass
class HeldRequest:
    """A state-changing request kept waiting in the browser until a person decides on it."""

    method: str
    url: str  # redacted, as the approver sees it
    body: str  # a bounded, redacted view
    kind: str  # Playwright's resource type: document (a form post), fetch, xhr, ping ...
    route: Any = field(repr=False)
    request: Any = field(repr=False)
    navigation: bool = False  # a form post: aborted at once, sent again by ``release`` when approved

    def shown(self) -> dict[str, str]:
        """What the approver, the record and the audit trail see."""
        return {"method": self.method, "url": self.url, "body": self.body, "kind": self.kind}

    def line(self) -> str:
        body = f" with body {self.body!r}" if self.body else ""  # already bounded by body_view
        return f"{self.method} {self.url}{body}"


@dataclass(frozen=True)
class Timing:
    """Caps for one run; every wait in the browser is bounded by one of these."""

    navigation_s: float = 20.0  # a page's load event
    action_s: float = 5.0  # actionability of one element (visible, enabled, stable)
    settle_s: float = 3.0  # quiet DOM, the action's short timers run, no requests in flight after an action
    quiet_ms: int = 40  # how long the DOM must stay still to count as settled (debounce timers are waited for apart)
    cover_s: float = 1.0  # how long a click waits for something covering its element to go away
    wait_s: float = 10.0  # the longest one wait() may take (the run's time limit bounds it too)
    script_s: float = 10.0  # a call into the page (reading it, an action) that gets no answer: a script loop


class BrowserSession:
    """One run's browser context and page."""

    def __init__(self, browser: Browser, allow: AllowList, secrets: Secrets | None = None, *, timing: Timing | None = None,
                 viewport: tuple[int, int] = (1280, 900), allow_dialogs: bool = False,
                 files: Mapping[str, Path] | None = None, hold_writes: bool = False,
                 write_hosts: tuple[str, ...] = ()) -> None:
        self.allow = allow
        self.hold_writes = hold_writes
        self.write_hosts = AllowList(tuple(write_hosts))  # writes to these go through without approval
        self.held: list[HeldRequest] = []
        self._writes = "hold"  # hold | pass (approved: follow-up writes go on) | drop (rejected: they are aborted too)
        self._resend: dict[str, Any] = {}  # URL -> an approved form post's request, to send once by navigating there
        self.files = dict(files or {})  # name -> path: the only files upload() may send
        self.viewport = viewport
        self.secrets = secrets or Secrets()
        self.timing = timing or Timing()
        self.allow_dialogs = allow_dialogs
        self.blocked: list[str] = []
        self.dialogs: list[str] = []
        self.ids: dict[str, int] = {}
        self.next_id = 1
        self.last: Observation | None = None
        self.secret_fields: set[int] = set()  # element IDs a secret was typed into (masked in screenshots)
        self._inflight: set[Any] = set()
        self._navigated = False
        self._crashed: str | None = None
        self._stuck: str | None = None  # set by the watchdog: the page stopped answering
        self._cdp: dict[Any, Any] = {}
        self._rescues: set[asyncio.Future[None]] = set()  # the watchdog's tasks: the loop keeps only weak references
        self.context: BrowserContext = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            service_workers="block",
            accept_downloads=False,
            java_script_enabled=True,
            locale="en-US",
        )
        self.context.set_default_timeout(self.timing.action_s * 1000)
        self.context.set_default_navigation_timeout(self.timing.navigation_s * 1000)
        self.context.add_init_script(TIMERS_INIT_JS)
        self.context.route("**/*", self._route)
        try:
            self.context.route_web_socket("**/*", self._route_ws)
        except (AttributeError, PlaywrightError):  # older Playwright: sockets are not routed
            pass
        self.page: Page = self.context.new_page()
        self._watch(self.page)
        self.context.on("page", self._adopt)

    # -- lifecycle

    def close(self) -> None:
        try:
            self.context.close()
        except PlaywrightError:
            pass

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- network and page events

    def _route(self, route: Any) -> None:
        request = route.request
        url = request.url
        if not self.allow.allows(url):
            self.blocked.append(self.secrets.redact(url)[:200])
            route.abort("blockedbyclient")
            return
        if url in self._resend and request.method == "GET" and request.is_navigation_request():
            # release() navigates here to send an approved form post: this request becomes that post, once
            original = self._resend.pop(url)
            route.continue_(method=original.method, post_data=original.post_data_buffer,
                            headers={**request.headers, **original.headers})
            return
        if not self.hold_writes or not write_request(request.method) or (self.write_hosts.domains and self.write_hosts.allows(url)):
            route.continue_()
        elif self._writes == "pass":
            route.continue_()
        elif self._writes == "drop":
            route.abort("blockedbyclient")
        else:  # answered later by release(): the page waits as for a slow server
            navigation = request.is_navigation_request()
            self.held.append(HeldRequest(request.method, self.secrets.redact(url), self.secrets.redact(body_view(request.post_data_buffer)),
                                         request.resource_type, route, request, navigation))
            if navigation:
                # Chromium answers no script of a page whose navigation is paused, so a form post cannot wait
                # like a fetch: it is cancelled (the page stays as it is; "aborted" shows no error page) and sent
                # again, exactly, if approved.
                route.abort("aborted")

    def _pass_sign_ins(self) -> bool:
        """Send at once the held form posts of sign-in forms (``SIGNIN_JS``): signing in needs no approval."""
        sent = False
        for h in [h for h in self.held if h.navigation and h.method == "POST"]:
            try:
                with self._watchdog("looking at the form that was sent"):
                    sign_in = h.request.frame.evaluate(SIGNIN_JS, h.request.url)
            except PlaywrightError:
                continue
            if sign_in:
                self.held.remove(h)
                self._send(h)
                sent = True
        return sent

    def _send(self, h: HeldRequest) -> None:
        """Send a held request: a fetch goes on; a form post (cancelled when held) is sent again by navigating."""
        try:
            if h.navigation:
                self._resend[h.request.url] = h.request
                h.request.frame.goto(h.request.url, wait_until="commit", timeout=self.timing.navigation_s * 1000)
            else:
                h.route.continue_()
        except PlaywrightError:
            pass  # the page went away meanwhile: nothing was sent
        finally:
            self._resend.pop(h.request.url, None)

    def release(self, approved: bool) -> Outcome:
        """Let the held requests through (``approved``) or abort them, then settle and observe: what that changed.

        While the page settles, further writes it makes as a consequence go on (approved) or are aborted as well.
        """
        self._check_alive()
        before = self.last or self.observe()
        url_before = self.page.url
        started = time.perf_counter()
        held, self.held = self.held, []
        self.blocked.clear()
        self.dialogs.clear()
        self._writes = "pass" if approved else "drop"
        try:
            for h in held:
                if approved:
                    self._send(h)
                elif not h.navigation:  # a form post was cancelled when it was held
                    try:
                        h.route.abort("blockedbyclient")
                    except PlaywrightError:
                        pass
            after = self._after()
        finally:
            self._writes = "hold"
        changes = _changes(before, after, self)
        what = "sent" if approved else "did not send"
        message = f"{what} {'; '.join(h.line() for h in held)}. {describe_changes(changes)}"
        return Outcome(True, self.secrets.redact(message), self.secrets.redact(url_before), self.secrets.redact(self.page.url),
                       None, changes, _ms(started))

    def _route_ws(self, ws: Any) -> None:
        if self.allow.allows(ws.url):
            ws.connect_to_server()
        else:
            self.blocked.append(self.secrets.redact(ws.url)[:200])
            ws.close()

    def _watch(self, page: Page) -> None:
        page.on("request", lambda r: self._inflight.add(r))
        page.on("requestfinished", lambda r: self._inflight.discard(r))
        page.on("requestfailed", lambda r: self._inflight.discard(r))
        page.on("framenavigated", lambda f: self._on_navigate(page, f))
        page.on("dialog", self._dialog)
        page.on("crash", lambda _p: setattr(self, "_crashed", "the page crashed"))

    def _on_navigate(self, page: Page, frame: Any) -> None:
        if page is self.page and frame == page.main_frame:
            self._navigated = True

    def _adopt(self, page: Page) -> None:
        """A popup or a new tab: the run follows it (the old page stays open behind it)."""
        if page is self.page:
            return
        self._watch(page)
        self.page = page
        self._navigated = True

    def _dialog(self, dialog: Any) -> None:
        message = self.secrets.redact(f"{dialog.type}: {dialog.message}")[:300]
        self.dialogs.append(message)
        try:
            # With held writes, accepting a confirm() commits nothing: the request it leads to waits for approval.
            if dialog.type == "alert" or (dialog.type == "confirm" and (self.allow_dialogs or self.hold_writes)):
                dialog.accept()
            else:  # confirm() guards destructive actions; prompt() would need input the run has not got
                dialog.dismiss()
        except PlaywrightError:
            pass

    def _check_alive(self) -> None:
        if self._stuck:
            raise StopRun(self._stuck)
        if self._crashed:
            raise StopRun(self._crashed)
        if self.page.is_closed():
            raise StopRun("the page was closed")

    # -- the watchdog

    @contextmanager
    def _watchdog(self, what: str, seconds: float = 0.0) -> Iterator[None]:
        """Bound a call into the page by ``script_s`` (+ ``seconds`` the call may legitimately take).

        The sync API waits by running Playwright's event loop, so a timer on that loop
        fires while the call hangs; it terminates the running script, which frees the call.
        """
        page = self.page
        cdp = self._cdp_session(page)
        limit = self.timing.script_s + seconds
        loop = page._loop  # private: the loop the sync API runs while it waits
        timers = [loop.call_later(limit, self._fire, page, cdp, what, limit),
                  loop.call_later(limit + 3.0, self._close_stuck, page)]  # the script could not be terminated
        try:
            yield
        except Exception:
            if self._stuck:
                raise StopRun(self._stuck) from None
            raise
        finally:
            for timer in timers:
                timer.cancel()
        if self._stuck:
            raise StopRun(self._stuck)

    def _cdp_session(self, page: Page) -> Any:
        if page not in self._cdp:
            try:
                self._cdp[page] = self.context.new_cdp_session(page)
            except PlaywrightError:
                self._cdp[page] = None
        return self._cdp[page]

    def _fire(self, page: Page, cdp: Any, what: str, limit: float) -> None:
        self._stuck = (f"the page stopped responding: {what} got no answer within {limit:g}s "
                       "(a script on the page keeps it busy, e.g. an endless loop)")
        if cdp is not None:
            self._rescue(cdp._impl_obj.send("Runtime.terminateExecution", None, None))

    def _close_stuck(self, page: Page) -> None:
        self._rescue(page._impl_obj.close(run_before_unload=None, reason=None))  # the sync API's defaults

    def _rescue(self, coroutine: Any) -> None:
        # `_impl_obj` is Playwright's private async object: the sync API is blocked waiting on the page.
        task = asyncio.ensure_future(_quietly(coroutine))
        self._rescues.add(task)
        task.add_done_callback(self._rescues.discard)

    # -- observing

    def open(self, url: str) -> Observation:
        """Go to the start URL: ``StopRun`` if it is unreachable, blocked or never loads."""
        if not self.allow.allows(url):
            raise StopRun(f"{url} is outside the run's allow-list ({self.allow.describe()})")
        try:
            response = self.page.goto(url, wait_until="load", timeout=self.timing.navigation_s * 1000)
        except PlaywrightTimeout:
            raise StopRun(f"{url} did not finish loading within {self.timing.navigation_s:g}s") from None
        except PlaywrightError as exc:
            raise StopRun(f"cannot open {url}: {_net_error(exc)}") from None
        self._settle()
        obs = self.observe()
        if response is not None and response.status >= 400:
            obs.notes.append(f"the server answered HTTP {response.status}")
        return obs

    def observe(self) -> Observation:
        """Distil the current page (one ``page.evaluate``); IDs are stable by fingerprint across calls."""
        self._check_alive()
        started = time.perf_counter()
        raw = None
        for _attempt in range(3):
            try:
                # Redacting the JSON text once is much cheaper than every string of the parsed result.
                with self._watchdog("reading the page"):
                    listeners_ms = self._find_listeners()
                    answer = self.page.evaluate(DISTIL_JS, json.dumps({"known": self.ids, "next": self.next_id}))
                raw = json.loads(self.secrets.redact_json(answer))
                break
            except PlaywrightError as exc:
                if not _context_gone(exc):
                    raise
                self._wait_load()  # a navigation replaced the document under us: once it has loaded, again
        if raw is None:
            raise StopRun("the page keeps navigating; it never stayed long enough to be read")
        self.ids.update(raw["assigned"])
        self.next_id = raw["next"]
        obs = Observation.from_raw(raw, self.secrets, total_ms=(time.perf_counter() - started) * 1000)
        obs.listeners_ms = round(listeners_ms, 2)
        if self.blocked:
            obs.blocked = list(self.blocked)
        self.last = obs
        return obs

    def _find_listeners(self) -> float:
        """Mark the elements with click-like listeners (``LISTENERS_JS``); ms taken. Best effort: without the
        DevTools session (or mid-navigation) the observation still has roles, cursors and markup."""
        cdp = self._cdp_session(self.page)
        if cdp is None:
            return 0.0
        started = time.perf_counter()
        try:
            cdp.send("Runtime.evaluate", {"expression": LISTENERS_JS, "includeCommandLineAPI": True,
                                          "returnByValue": True, "silent": True})
        except PlaywrightError as exc:
            if _is_crash(exc):
                raise
        return (time.perf_counter() - started) * 1000

    def screenshot(self, *, full_page: bool = False) -> bytes:
        """PNG of the viewport (for vision models and records); fields holding a secret are masked."""
        self._check_alive()
        mask = [self.locator({"id": i, "frames": self._frames_of(i)}) for i in self.secret_fields if self._frames_of(i) is not None]
        return self.page.screenshot(type="png", full_page=full_page, mask=mask, animations="disabled", caret="hide")

    def _frames_of(self, element_id: int) -> list[str] | None:
        if self.last is None:
            return None
        element = self.last.element(element_id)
        return None if element is None else element.get("frames", [])

    # -- acting

    def locator(self, element: dict[str, Any]) -> Locator:
        scope: Any = self.page
        for mark in element.get("frames") or []:
            scope = scope.frame_locator(f'[data-cristal-frame="{mark}"]')
        found: Locator = scope.locator(f'[data-cristal-id="{element["id"]}"]')
        return found

    def focused(self) -> dict[str, Any] | None:
        self._check_alive()
        try:
            with self._watchdog("reading the focused element"):
                focused: dict[str, Any] | None = self.page.evaluate(FOCUS_JS)  # an object, or null when nothing has focus
                return focused
        except PlaywrightError as exc:
            if _context_gone(exc):
                return None
            raise

    def act(self, tool: str, args: dict[str, Any], element: dict[str, Any] | None = None, *,
            target: dict[str, Any] | None = None, budget_s: float | None = None, approved: bool = False) -> Outcome:
        """Carry out one action (already checked by the run's safety rules) and observe the result.

        ``target`` is where ``drag`` drops its element; ``budget_s`` what is left of the run's time (bounds ``wait``).
        ``approved``: a person allowed this action beforehand, so the writes it sends are not held again.
        State-changing requests it sends are otherwise in ``held`` afterwards, waiting for ``release``.
        """
        if approved:
            self._writes = "pass"
        try:
            return self._act(tool, args, element, target, budget_s)
        finally:
            self._writes = "hold"

    def _act(self, tool: str, args: dict[str, Any], element: dict[str, Any] | None, target: dict[str, Any] | None,
             budget_s: float | None) -> Outcome:
        self._check_alive()
        before = self.last or self.observe()
        url_before = self.page.url
        started = time.perf_counter()
        self._navigated = False
        self.blocked.clear()
        self.dialogs.clear()
        t = self.timing
        if tool == "wait":
            return self._wait(args, before, url_before, started, budget_s)
        self._timers("arm")
        try:
            # an action may wait for a navigation or for its element: those waits have their own caps
            with self._watchdog(f"the {tool} action", t.navigation_s if tool == "goto" else 2 * t.action_s + t.cover_s):
                detail = self._do(tool, args, element, target)
        except _ActionFailed as exc:
            self._timers("disarm")
            after = self._after()
            return Outcome(False, self.secrets.redact(str(exc)), self.secrets.redact(url_before),
                           self.secrets.redact(self.page.url), element, _changes(before, after, self), _ms(started))
        after = self._after()
        changes = _changes(before, after, self)
        message = detail
        summary = describe_changes(changes)
        if summary:
            message = f"{detail}. {summary}" if detail else summary
        return Outcome(True, self.secrets.redact(message), self.secrets.redact(url_before), self.secrets.redact(self.page.url),
                       element, changes, _ms(started))

    def _after(self) -> Observation:
        self._timers("disarm")
        self._settle()
        if self._pass_sign_ins():
            self._settle()
        return self.observe()

    def _timers(self, what: str) -> None:
        """Start (``arm``) or stop (``disarm``) noting the short timers the page schedules (``TIMERS_INIT_JS``)."""
        try:
            with self._watchdog("noting the page's timers"):
                self.page.evaluate(f"() => window.__cristalTimers && window.__cristalTimers.{what}()")
        except PlaywrightError as exc:
            if _is_crash(exc):
                raise StopRun(f"the browser crashed: {_first_line(exc)}") from None

    def _wait(self, args: dict[str, Any], before: Observation, url_before: str, started: float,
              budget_s: float | None) -> Outcome:
        """``wait``: a number of seconds, or until a text or an element appears, within ``wait_s`` and the run's time."""
        limit = self.timing.wait_s if budget_s is None else max(0.0, min(self.timing.wait_s, budget_s))
        seconds = _seconds(args.get("seconds"))
        text = str(args.get("text") or "").strip()
        wanted = str(args.get("element") or "").strip()
        if seconds is None and not text and not wanted:
            raise _ActionFailed("error: wait needs seconds, text or element")
        span = min(limit, seconds) if seconds is not None else limit
        deadline = time.monotonic() + span
        found = None
        while True:
            self._settle()
            obs = self.observe()
            found = _appeared(obs, text, wanted)
            if found or time.monotonic() >= deadline or (not text and not wanted):
                if not text and not wanted:
                    rest = deadline - time.monotonic()
                    if rest > 0:
                        self.page.wait_for_timeout(rest * 1000)
                        self._settle()
                        obs = self.observe()
                break
            self.page.wait_for_timeout(min(250, max(10, (deadline - time.monotonic()) * 1000)))
        waited = time.perf_counter() - started
        changes = _changes(before, obs, self)
        summary = describe_changes(changes)
        if (text or wanted) and not found:
            what = repr(text) if text else f"element {wanted!r}"
            cap = " (the most one wait may take)" if span < (seconds or float("inf")) and span == limit else ""
            return Outcome(False, self.secrets.redact(f"waited {waited:.1f}s{cap}: {what} did not appear. {summary}"),
                           self.secrets.redact(url_before), self.secrets.redact(self.page.url), None, changes, _ms(started))
        detail = f"waited {waited:.1f}s" + (f": {found} appeared" if found else "")
        return Outcome(True, self.secrets.redact(f"{detail}. {summary}"), self.secrets.redact(url_before),
                       self.secrets.redact(self.page.url), None, changes, _ms(started))

    def _do(self, tool: str, args: dict[str, Any], element: dict[str, Any] | None,
            target: dict[str, Any] | None = None) -> str:
        t = self.timing
        if tool == "goto":
            url = urljoin(self.page.url, str(args["url"]))
            try:
                self.page.goto(url, wait_until="load", timeout=t.navigation_s * 1000)
            except PlaywrightTimeout:
                raise StopRun(f"{url} did not finish loading within {t.navigation_s:g}s") from None
            except PlaywrightError as exc:
                if _is_crash(exc):
                    raise StopRun(f"the browser crashed: {_first_line(exc)}") from None
                raise _ActionFailed(f"error: cannot open {url}: {_net_error(exc)}") from None
            return f"went to {url}"
        if tool == "press":
            key = str(args["key"])
            try:
                self.page.keyboard.press(key)
            except PlaywrightError as exc:
                raise _ActionFailed(f"error: cannot press {key!r}: {_first_line(exc)} "
                                    "(use key names such as Enter, Tab, Escape, ArrowDown, Control+A)") from None
            return f"pressed {key}"
        if tool == "scroll":
            direction = str(args.get("direction", "down")).lower()
            script = {
                "down": "window.scrollBy(0, Math.round(window.innerHeight * 0.8))",
                "up": "window.scrollBy(0, -Math.round(window.innerHeight * 0.8))",
                "top": "window.scrollTo(0, 0)",
                "bottom": "window.scrollTo(0, document.documentElement.scrollHeight)",
            }.get(direction)
            if script is None:
                raise _ActionFailed("error: scroll direction must be up, down, top or bottom")
            self.page.evaluate(script)
            return f"scrolled {direction}"
        if tool == "click_point":
            x, y = _coordinate(args.get("x"), self.viewport[0]), _coordinate(args.get("y"), self.viewport[1])
            if x is None or y is None:
                raise _ActionFailed(f"error: click_point needs x and y inside the {self.viewport[0]}x{self.viewport[1]} screenshot")
            hit = self.point(x, y)
            self.page.mouse.click(x, y)
            return f"clicked the point ({x:g}, {y:g})" + (f" on {hit}" if hit else "")
        assert element is not None
        return self._with_element(tool, args, element, target)

    def point(self, x: float, y: float) -> str:
        """What a click at (x, y) of the viewport would hit, in words (for the record and for approvals)."""
        try:
            with self._watchdog("looking at a point"):
                hit = self.page.evaluate(POINT_JS, [x, y])
        except PlaywrightError:
            return ""
        return self._hit_words(hit)

    def element_at(self, x: float, y: float) -> dict[str, Any] | None:
        """The listed element of the latest observation at (x, y), if any."""
        try:
            with self._watchdog("looking at a point"):
                hit = self.page.evaluate(POINT_JS, [x, y])
        except PlaywrightError:
            return None
        if not hit or hit.get("id") is None or self.last is None:
            return None
        return self.last.element(int(hit["id"]))

    def _hit_words(self, hit: dict[str, Any] | None) -> str:
        if not hit:
            return ""
        if hit.get("id") is not None and self.last is not None:
            listed = self.last.element(int(hit["id"]))
            if listed is not None:
                return element_line(listed)
        text = hit.get("text") or ""
        return f"<{hit.get('tag')}>" + (f' "{text[:60]}"' if text else "")

    def _with_element(self, tool: str, args: dict[str, Any], element: dict[str, Any],
                      target: dict[str, Any] | None = None) -> str:
        label = element_line(element)
        for attempt in range(2):
            loc = self.locator(element)
            try:
                if loc.count() == 0:
                    raise _Stale()
                return self._element_action(tool, args, element, loc, label, target)
            except _Stale:
                if attempt == 1:
                    raise _ActionFailed(f"error: element [{element['id']}] is no longer on the page; look at the new observation") from None
                # The page re-rendered the element: observe again and find it by its fingerprint.
                self._settle()
                obs = self.observe()
                again = obs.by_key(element["key"])
                if again is None:
                    raise _ActionFailed(f"error: element [{element['id']}] is no longer on the page; look at the new observation") from None
                element = again
            except PlaywrightTimeout as exc:
                raise _ActionFailed(f"error: {label} could not be used within {self.timing.action_s:g}s ({_reason(exc)})") from None
            except PlaywrightError as exc:
                if _is_crash(exc):
                    raise StopRun(f"the browser crashed: {_first_line(exc)}") from None
                if "not attached" in str(exc) or "detached" in str(exc):
                    if attempt == 0:
                        continue
                raise _ActionFailed(f"error: {label}: {_first_line(exc)}") from None
        raise _ActionFailed(f"error: {label} could not be used")

    def _element_action(self, tool: str, args: dict[str, Any], element: dict[str, Any], loc: Locator, label: str,
                        target: dict[str, Any] | None = None) -> str:
        role = element.get("role")
        if "disabled" in element.get("states", []) and tool != "hover":
            raise _ActionFailed(f"error: {label} is disabled")
        if element.get("inSelect"):  # an <option> of a list box: scrolling or hovering it means nothing
            return self._option(tool, element, loc, label)
        try:
            loc.scroll_into_view_if_needed(timeout=self.timing.action_s * 1000)
        except PlaywrightTimeout:
            pass  # click() scrolls too, and reports properly if it cannot
        at = element.get("clickAt")
        position = Position(x=at["x"], y=at["y"]) if at else None
        if tool == "click":
            if role not in ("checkbox", "radio"):  # a styled control's input sits under its drawing: handled below
                self._uncovered(loc, element, label)
            try:
                # no_wait_after: a held form post is a navigation that starts only once approved; settling waits for loads
                loc.click(timeout=self.timing.action_s * 1000, position=position, no_wait_after=True)
            except PlaywrightTimeout:
                if role in ("checkbox", "radio"):  # a styled control whose input is visually hidden: its label takes the click
                    loc.dispatch_event("click")
                else:
                    raise
            return f"clicked {label}"
        if tool == "hover":
            self._uncovered(loc, element, label)
            loc.hover(timeout=self.timing.action_s * 1000, position=position)
            return f"hovered over {label}"
        if tool == "drag":
            if target is None:
                raise _ActionFailed("error: drag needs a target element to drop on")
            to = self.locator(target)
            if to.count() == 0:
                raise _ActionFailed(f"error: element [{target['id']}] is no longer on the page; look at the new observation")
            self._uncovered(loc, element, label)
            loc.drag_to(to, timeout=self.timing.action_s * 1000, source_position=position, no_wait_after=True)
            return f"dragged {label} onto {element_line(target)}"
        if tool == "upload":
            return self._upload(args, element, loc, label)
        if tool == "fill":
            text = str(args.get("text", ""))
            try:
                value = self.secrets.substitute(text)
            except KeyError as exc:
                raise _ActionFailed(f"error: {exc.args[0]}") from None
            if element.get("file"):
                raise _ActionFailed(f"error: {label} is a file field; use upload")
            if role not in ("textbox", "searchbox", "spinbutton", "combobox", "slider") and element.get("tag") not in ("input", "textarea"):
                raise _ActionFailed(f"error: {label} is not a text field; use click or select_option")
            if element.get("tag") == "select":
                raise _ActionFailed(f"error: {label} is a list; use select_option")
            if "readonly" in element.get("states", []):
                raise _ActionFailed(f"error: {label} is read-only; it is set through the page's own controls "
                                    "(click it, or a picker next to it)")
            loc.fill(value, timeout=self.timing.action_s * 1000)
            if self.secrets.uses(text):
                self.secret_fields.add(int(element["id"]))
            return f"filled {label} with {text!r}"
        if tool == "select_option":
            return self._select(args, element, loc, label)
        raise _ActionFailed(f"error: unknown action {tool!r}")

    def _uncovered(self, loc: Locator, element: dict[str, Any], label: str) -> None:
        """Wait up to ``cover_s`` for whatever covers the element (a suggestion list, a toast) to go away; else say what it is."""
        deadline = time.monotonic() + self.timing.cover_s
        while True:
            try:
                cover = loc.evaluate(COVER_JS, element.get("clickAt"))
            except PlaywrightError:
                return  # gone or not yet there: the action itself reports it
            if not cover:
                return
            if time.monotonic() >= deadline:
                what = self._hit_words(cover)
                raise _ActionFailed(f"error: {label} is covered by {what}; close or use that first (Escape often closes it), "
                                    "or wait for it to go away")
            self.page.wait_for_timeout(100)

    def _option(self, tool: str, element: dict[str, Any], loc: Locator, label: str) -> str:
        if tool not in ("click", "select_option"):
            raise _ActionFailed(f"error: {label} is an option of a list box; "
                                "click it (adds or removes it) or use select_option on the list")
        state = loc.evaluate(OPTION_JS)
        if state == "disabled":
            raise _ActionFailed(f"error: {label} is disabled")
        if state is None:
            raise _ActionFailed(f"error: {label} is not in a list box any more")
        return f"clicked {label}: now {state}"

    def _select(self, args: dict[str, Any], element: dict[str, Any], loc: Locator, label: str) -> str:
        wanted = [str(v) for v in args["values"]] if args.get("values") else [str(args.get("value", ""))]
        if element.get("tag") != "select":
            raise _ActionFailed(f"error: {label} is not a list box (a <select>); click the option instead")
        multiple = "multiselectable" in element.get("states", [])
        if len(wanted) > 1 and not multiple:
            raise _ActionFailed(f"error: {label} takes one option; give value, not several values")
        values, unknown, labels = loc.evaluate(SELECT_JS, wanted)
        if unknown:
            shown = ", ".join(repr(o) for o in labels)
            raise _ActionFailed(f"error: {label} has no option {unknown[0]!r}; its options are {shown}")
        loc.select_option(value=values, timeout=self.timing.action_s * 1000, no_wait_after=True)
        chosen = ", ".join(repr(w) for w in wanted)
        return f"selected {chosen} in {label}" + (" (only these are selected now)" if multiple else "")

    def _upload(self, args: dict[str, Any], element: dict[str, Any], loc: Locator, label: str) -> str:
        name = str(args.get("file", "")).strip()
        path = self.files.get(name)
        if path is None:
            given = ", ".join(sorted(self.files)) or "none"
            raise _ActionFailed(f"error: {name!r} is not a file of this run; it can upload only the files it was given ({given})")
        if element.get("file"):
            loc.set_input_files(str(path), timeout=self.timing.action_s * 1000)
        else:  # a button that opens the file chooser (its <input type=file> hidden)
            self._uncovered(loc, element, label)
            try:
                with self.page.expect_file_chooser(timeout=self.timing.cover_s * 2000) as chooser:
                    loc.click(timeout=self.timing.action_s * 1000, no_wait_after=True)
            except PlaywrightTimeout:
                raise _ActionFailed(f"error: {label} did not open a file chooser; "
                                    "upload to a file field (or the button that opens one)") from None
            chooser.value.set_files(str(path))
        return f"uploaded {name} with {label}"

    # -- settling

    def _wait_load(self) -> None:
        try:
            self.page.wait_for_load_state("load", timeout=self.timing.navigation_s * 1000)
        except PlaywrightTimeout:
            raise StopRun(f"the page did not finish loading within {self.timing.navigation_s:g}s") from None
        except PlaywrightError as exc:
            if _is_crash(exc):
                raise StopRun(f"the browser crashed: {_first_line(exc)}") from None

    def _settle(self) -> bool:
        """Wait for load (after a navigation), then a quiet DOM and no requests in flight; ``False`` at the cap."""
        self._check_alive()
        deadline = time.monotonic() + self.timing.settle_s
        if self._navigated:
            self._wait_load()
            self._navigated = False
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return False
            try:
                with self._watchdog("waiting for the page to settle", min(remaining_ms, 1000) / 1000):
                    quiet = self.page.evaluate(QUIET_JS, [self.timing.quiet_ms, min(remaining_ms, 1000)])
            except PlaywrightError as exc:
                if _is_crash(exc):
                    raise StopRun(f"the browser crashed: {_first_line(exc)}") from None
                if not _context_gone(exc):
                    raise
                self._wait_load()
                continue
            if self._navigated:
                self._wait_load()
                self._navigated = False
                continue
            if quiet and not self._busy():
                return True

    def _busy(self) -> bool:
        # Requests of this page still running (streams and long polls are cut off by the settle cap).
        # A held request waits for a person, not for the server: it does not keep the page from settling.
        held = {id(h.request) for h in self.held}
        return any(_safe_frame_page(r) is self.page and id(r) not in held for r in list(self._inflight))


async def _quietly(coroutine: Any) -> None:
    try:
        await coroutine
    except Exception:  # noqa: BLE001 - the page may be gone already; the run stops either way
        pass


class _ActionFailed(Exception):
    """An action that could not be done; the message goes back to the model."""


class _Stale(Exception):
    pass


def _safe_frame_page(request: Any) -> Any:
    try:
        return request.frame.page
    except PlaywrightError:
        return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _context_gone(exc: PlaywrightError) -> bool:
    text = str(exc)
    return "Execution context was destroyed" in text or ("navigation" in text.lower() and "context" in text.lower())


def _is_crash(exc: PlaywrightError) -> bool:
    text = str(exc)
    return any(s in text for s in ("Target crashed", "Target page, context or browser has been closed", "Browser has been closed",
                                   "browser has disconnected", "Connection closed"))


def _net_error(exc: PlaywrightError) -> str:
    text = str(exc)
    for code, meaning in (("ERR_CONNECTION_REFUSED", "connection refused"), ("ERR_NAME_NOT_RESOLVED", "unknown host"),
                          ("ERR_BLOCKED_BY_CLIENT", "blocked: outside the run's allow-list"),
                          ("ERR_ADDRESS_UNREACHABLE", "address unreachable"), ("ERR_CONNECTION_RESET", "connection reset"),
                          ("ERR_EMPTY_RESPONSE", "the server closed the connection without answering"),
                          ("ERR_TIMED_OUT", "timed out"), ("ERR_CONNECTION_TIMED_OUT", "connection timed out"),
                          ("ERR_ABORTED", "the navigation was aborted")):
        if code in text:
            return meaning
    return _first_line(exc)


def _seconds(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise _ActionFailed(f"error: seconds must be a number, not {str(value)[:40]!r}") from None
    if seconds < 0 or seconds != seconds:
        raise _ActionFailed("error: seconds must not be negative")
    return seconds


def _coordinate(value: Any, size: int) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if 0 <= v < size else None


def _appeared(obs: Observation, text: str, wanted: str) -> str | None:
    """What ``wait`` was waiting for, if it is on the page now: a text, an element by ID, or by ``role "name"``."""
    if text:
        folded = text.casefold()
        if folded in obs.text.casefold() or any(folded in (e.get("name") or "").casefold() for e in obs.elements):
            return repr(text)
        return None
    if wanted:
        if wanted.strip("[] ").isdigit():
            element = obs.element(int(wanted.strip("[] ")))
            return element_line(element) if element is not None and "disabled" not in element.get("states", []) else None
        folded = wanted.casefold()
        for e in obs.elements:
            line = element_line(e).split("] ", 1)[1]
            if folded in line.casefold():
                return element_line(e)
    return None


def _reason(exc: PlaywrightError) -> str:
    text = str(exc)
    for needle, meaning in (("intercepts pointer events", "another element covers it"), ("not visible", "it is not visible"),
                            ("not enabled", "it is disabled"), ("not editable", "it is not editable"), ("not stable", "it keeps moving")):
        if needle in text:
            return meaning
    return "timed out"


# ----------------------------------------------------------------------
# What changed


def _changes(before: Observation, after: Observation, session: BrowserSession) -> dict[str, Any]:
    old_keys = {e["key"] for e in before.elements}
    new_keys = {e["key"] for e in after.elements}
    old_lines = set(before.text_lines())
    added_lines = [line for line in after.text_lines() if line not in old_lines]
    new_lines = set(after.text_lines())
    removed_lines = [line for line in before.text_lines() if line not in new_lines]
    old_state = {e["key"]: (e.get("value"), tuple(e.get("states") or ())) for e in before.elements}
    changed = [e for e in after.elements if e["key"] in old_state and old_state[e["key"]] != (e.get("value"), tuple(e.get("states") or ()))]
    return {
        "url_changed": before.url != after.url,
        "elements_changed": [element_line(e) for e in changed[:4]],
        "url": after.url,
        "elements_added": len(new_keys - old_keys),
        "elements_removed": len(old_keys - new_keys),
        "text_added": added_lines[:6],
        "text_removed": removed_lines[:3],
        "blocked": list(session.blocked),
        "dialogs": list(session.dialogs),
        "similarity": round(difflib.SequenceMatcher(None, before.text[:3000], after.text[:3000]).quick_ratio(), 3),
    }


def describe_changes(changes: dict[str, Any]) -> str:
    parts = []
    if changes.get("url_changed"):
        parts.append(f"URL is now {_short_url(changes['url'])}")
    added, removed = changes.get("elements_added", 0), changes.get("elements_removed", 0)
    if added or removed:
        parts.append(f"{added} new and {removed} removed element(s)")
    if changes.get("elements_changed"):
        parts.append("now " + "; ".join(changes["elements_changed"]))
    if changes.get("text_added"):
        shown = " | ".join(line[:120] for line in changes["text_added"][:4])
        parts.append(f"new text: {shown}")
    if not parts:
        parts.append("nothing visible changed")
    for url in changes.get("blocked", [])[:3]:
        parts.append(f"BLOCKED a request to {url} (outside the run's allow-list)")
    for dialog in changes.get("dialogs", [])[:2]:
        parts.append(f"a dialog appeared and was answered automatically ({dialog})")
    return "; ".join(parts)


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return url if len(url) < 100 else f"{parts.scheme}://{parts.netloc}{parts.path[:60]}…"
