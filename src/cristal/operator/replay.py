"""Replaying a recorded run with no model.

Each recorded action that succeeded is repeated in a fresh browser context:
its element is found again by fingerprint, exactly first (same role, name,
tag, DOM path, row context and attributes), then by the best fuzzy match of
the same role with a near-identical name. The replay stops with a clear report
at the first step whose element can no longer be found (or is ambiguous), or
whose action now fails. The run's rules still hold: the recorded allow-list,
and state-changing requests (or links that say they delete) only with ``allow_irreversible``. Secrets
are asked for again (the record holds only their names).
"""

from __future__ import annotations

import difflib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError

from cristal.db import Database
from cristal.errors import AccessDenied, CristalError, InvalidInput
from cristal.identity.principal import Principal
from cristal.operator.browser import BrowserSession, StopRun, Timing, _first_line, chromium
from cristal.operator.guard import Guard
from cristal.operator.observation import Observation, element_line
from cristal.operator.policy import load_org_domains
from cristal.operator.safety import AllowList, Secrets
from cristal.operator.tools import Action

REPLAYED_TOOLS = {"click", "fill", "select_option", "press", "scroll", "goto", "hover", "drag", "wait"}
ELEMENT_TOOLS = {"click", "fill", "select_option", "hover", "drag"}
NAME_SIMILARITY = 0.85  # a fuzzy match needs nearly the same accessible name
MIN_SCORE = 0.7
MARGIN = 0.05  # the best fuzzy candidate must beat the second by this much

# How a step ends the replay: (status, reason, divergence), the divergence being the step where it left the recording.
_Ending = tuple[str, str, dict[str, Any] | None]

Progress = Callable[[str, str], None]


@dataclass
class ReplayResult:
    status: str  # complete | diverged | needs_approval | failed
    reason: str | None
    steps: list[dict[str, Any]]
    replayed: int
    total: int
    final_url: str | None
    recorded_final_url: str | None
    seconds: float
    original_seconds: float | None
    divergence: dict[str, Any] | None = None
    run_id: str = ""

    @property
    def speedup(self) -> float | None:
        if not self.original_seconds or self.seconds <= 0:
            return None
        return self.original_seconds / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "status": self.status, "reason": self.reason, "replayed": self.replayed, "total": self.total,
            "final_url": self.final_url, "recorded_final_url": self.recorded_final_url,
            "final_url_matches": self.final_url == self.recorded_final_url if self.recorded_final_url else None,
            "seconds": round(self.seconds, 3), "original_seconds": self.original_seconds,
            "speedup": round(self.speedup, 2) if self.speedup else None, "divergence": self.divergence, "steps": self.steps,
        }


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _ratio(a: str | None, b: str | None) -> float:
    a, b = _norm(a), _norm(b)
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b).ratio()


def _score(recorded: dict[str, Any], candidate: dict[str, Any]) -> tuple[float, float]:
    """(name similarity, overall score) of ``candidate`` for the recorded element."""
    rfp, cfp = recorded.get("fp") or {}, candidate.get("fp") or {}
    name = _ratio(recorded.get("name"), candidate.get("name"))
    rattrs, cattrs = rfp.get("attrs") or {}, cfp.get("attrs") or {}
    attrs = [k for k in ("id", "name", "type", "href") if rattrs.get(k) or cattrs.get(k)]
    attr_score = sum(rattrs.get(k) == cattrs.get(k) for k in attrs) / len(attrs) if attrs else 1.0
    score = (0.55 * name + 0.1 * (recorded.get("tag") == candidate.get("tag")) + 0.15 * _ratio(rfp.get("path"), cfp.get("path"))
             + 0.1 * _ratio(rfp.get("ctx"), cfp.get("ctx")) + 0.1 * attr_score)
    return name, score


def find_element(observation: Observation, recorded: dict[str, Any]) -> tuple[dict[str, Any] | None, str, list[dict[str, Any]]]:
    """The element matching a recorded fingerprint: ``(element, "exact"|"fuzzy"|why not, closest candidates)``."""
    exact = observation.by_key(recorded.get("key", ""))
    if exact is not None:
        return exact, "exact", []
    scored = []
    for e in observation.elements:
        if e.get("role") != recorded.get("role"):
            continue
        name, score = _score(recorded, e)
        scored.append((score, name, e))
    scored.sort(key=lambda t: -t[0])
    closest = [{"element": element_line(e), "score": round(s, 3)} for s, _n, e in scored[:3]]
    good = [(s, n, e) for s, n, e in scored if n >= NAME_SIMILARITY and s >= MIN_SCORE]
    if not good:
        return None, "no element with the same role and name", closest
    if len(good) > 1 and good[0][0] - good[1][0] < MARGIN:
        return None, "several elements match equally well", closest
    return good[0][2], "fuzzy", closest


def required_secrets(trajectory: dict[str, Any]) -> list[str]:
    return [str(n) for n in trajectory.get("secrets") or []]


def replay_trajectory(db: Database, principal: Principal, trajectory: dict[str, Any], *, secrets: Secrets | None = None,
                      allow_irreversible: bool = False, browser: Browser | None = None, timing: Timing | None = None,
                      progress: Progress | None = None) -> ReplayResult:
    """Repeat a recorded run in a fresh browser context, as ``principal``, with no model."""
    secrets = secrets or Secrets()
    missing = [n for n in required_secrets(trajectory) if n not in secrets.names]
    if missing:
        flags = " ".join(f"--secret {n}=..." for n in missing)
        raise InvalidInput(f"the recording types secret(s) {', '.join(missing)}: pass them again ({flags})")
    if browser is not None:
        return _Replay(db, principal, trajectory, secrets, allow_irreversible, browser, timing, progress).run()
    with chromium() as own:
        return _Replay(db, principal, trajectory, secrets, allow_irreversible, own, timing, progress).run()


class _Replay:
    def __init__(self, db: Database, principal: Principal, trajectory: dict[str, Any], secrets: Secrets, allow_irreversible: bool,
                 browser: Browser, timing: Timing | None, progress: Progress | None) -> None:
        self.t = trajectory
        self.secrets = secrets
        self.browser = browser
        self.timing = timing or Timing()
        self.progress = progress or (lambda kind, message: None)
        self.run_id = "rp_" + uuid.uuid4().hex[:16]
        # The recorded list, within the organization's list as it is now (an admin may have narrowed it since).
        self.allow = AllowList(tuple(str(d) for d in trajectory["allow_domains"])).within(load_org_domains(db, principal.org_id))
        if not self.allow.domains:
            raise InvalidInput("the recording has an empty allow-list")
        self.guard = Guard(db, principal, self.run_id, self.allow, secrets, allow_irreversible=allow_irreversible)
        self.steps = [s for s in trajectory["steps"] if s.get("ok") and (s.get("action") or {}).get("tool") in REPLAYED_TOOLS]

    def run(self) -> ReplayResult:
        started = time.monotonic()
        results: list[dict[str, Any]] = []
        status, reason, divergence = "complete", None, None
        session: BrowserSession | None = None
        final_url = None
        try:
            self.guard.start({"replay_of": self.t.get("run_id"), "start_url": self.t["start_url"],
                              "allow_domains": list(self.allow.domains), "steps": len(self.steps)})
            session = BrowserSession(self.browser, self.allow, self.secrets, timing=self.timing,
                                     allow_dialogs=self.guard.allow_irreversible, hold_writes=not self.guard.allow_irreversible,
                                     write_hosts=tuple(self.t.get("allow_writes") or ()))
            self.progress("open", self.t["start_url"])
            session.open(self.t["start_url"])
            for step in self.steps:
                ending = self._step(session, step, results)
                if ending is not None:
                    status, reason, divergence = ending
                    break
        except StopRun as exc:
            status, reason = "failed", self.secrets.redact(str(exc))
        except AccessDenied as exc:
            status, reason = "failed", exc.message
        except PlaywrightError as exc:
            status, reason = "failed", self.secrets.redact(f"the browser failed: {_first_line(exc)}")
        except CristalError as exc:
            status, reason = "failed", exc.message
        finally:
            if session is not None:
                try:
                    final_url = self.secrets.redact(session.page.url)
                except PlaywrightError:
                    final_url = None
                session.close()
        seconds = time.monotonic() - started
        if status != "complete":
            self.progress(status, reason or status)
        return ReplayResult(status, reason, results, sum(1 for r in results if r["ok"]), len(self.steps), final_url,
                            self.t.get("final_url"), seconds, self.t.get("seconds"), divergence, self.run_id)

    def _step(self, session: BrowserSession, step: dict[str, Any], results: list[dict[str, Any]]) -> _Ending | None:
        n = step["n"]
        tool = step["action"]["tool"]
        args = dict(step["action"].get("args") or {})
        obs = session.last or session.observe()
        element = None
        how = ""
        recorded = step.get("element")
        if tool in ELEMENT_TOOLS:
            if not recorded:
                return "diverged", f"step {n}: the recording has no element for {tool}", {"step": n}
            element, how, closest = find_element(obs, recorded)
            if element is None:
                report = {"step": n, "tool": tool, "expected": element_line({**recorded, "id": recorded.get("id", "?")}),
                          "problem": how, "closest": closest, "url": obs.url, "recorded_url": step.get("url_before")}
                results.append({"n": n, "tool": tool, "ok": False, "match": None, "outcome": how})
                return "diverged", (f"step {n} ({tool} {recorded.get('role')} {recorded.get('name')!r}): {how} on {obs.url}"), report
            args["element"] = element["id"]
        target = None
        if tool == "drag":
            target, how_target, _closest = find_element(obs, step.get("target") or {})
            if target is None:
                results.append({"n": n, "tool": tool, "ok": False, "match": None, "outcome": how_target})
                return "diverged", f"step {n} (drag): the element to drop on: {how_target} on {obs.url}", {"step": n}
            args["to"] = target["id"]
        action = Action(tool, args, element["id"] if element else None)
        verdict = self.guard.check(action, element, session, n, target=target)
        if verdict.kind == "approval":
            results.append({"n": n, "tool": tool, "ok": False, "match": how or None, "outcome": "needs approval"})
            return ("needs_approval", f"step {n}: {verdict.message} (replay with --allow-irreversible to permit it)",
                    {"step": n, "reason": verdict.message})
        if verdict.kind == "error":
            results.append({"n": n, "tool": tool, "ok": False, "match": how or None, "outcome": verdict.message})
            return "diverged", f"step {n}: {verdict.message}", {"step": n}
        self.guard.act(action, element, obs.url, n)
        self.progress("act", f"step {n}: {tool} " + (element_line(element) if element else str(args)[:80]))
        outcome = session.act(tool, args, element, target=target)
        if session.held:  # the step sends a change to a server: a replay has nobody to ask, so it is not sent
            sent = "; ".join(h.line() for h in session.held)
            requests = [h.shown() for h in session.held]
            session.release(False)
            results.append({"n": n, "tool": tool, "ok": False, "match": how or None, "outcome": "needs approval"})
            reason = self.secrets.redact(f"it sends {sent}" + (f"; and {verdict.hint}" if verdict.hint else ""))
            self.guard.held(action, element, session, n, requests, reason)
            return ("needs_approval", f"step {n}: {reason} (replay with --allow-irreversible to permit it)",
                    {"step": n, "reason": reason})
        entry = {"n": n, "tool": tool, "ok": outcome.ok, "match": how or None, "outcome": outcome.message, "ms": outcome.ms,
                 "url_after": outcome.url_after, "recorded_url_after": step.get("url_after")}
        results.append(entry)
        if not outcome.ok:
            return "diverged", f"step {n} ({tool}): {outcome.message}", {"step": n, "outcome": outcome.message}
        return None
