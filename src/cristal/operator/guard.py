"""Authorization, audit and the safety rules for each action of a run (or a replay).

``operator.run`` is required to start, ``operator.act`` before every action,
each with an audit record naming the action, the element's fingerprint and the
URL. Actions the run's rules refuse (a domain outside the allow-list, a link
or ``goto`` whose URL says it deletes, without ``allow_irreversible``) are
audited as ``deny`` and never reach the browser; so is a state-changing
request that an action sent and the browser holds (``held``) until it is
approved. The word rules for buttons and keys are only a hint then, named in
the approval's reason: a button's label never pauses a run by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from cristal.audit.log import write_audit
from cristal.db import Database
from cristal.identity.authorize import require
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.operator.browser import BrowserSession
from cristal.operator.safety import AllowList, Secrets, irreversible_click, irreversible_key, irreversible_url
from cristal.operator.tools import Action


@dataclass
class Verdict:
    """``ok``; or ``error`` (back to the model); or ``approval`` (the run pauses)."""

    kind: str
    message: str = ""
    hint: str = ""  # why the action also looks irreversible by its words (shown with any request it sends)


def element_summary(element: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fingerprint of an element as records and audit details carry it."""
    if element is None:
        return None
    fp = element.get("fp") or {}
    return {"id": element.get("id"), "role": element.get("role"), "name": element.get("name"), "tag": element.get("tag"),
            "path": fp.get("path"), "ctx": fp.get("ctx"), "key": element.get("key"), "fp": fp}


class Guard:
    def __init__(self, db: Database, principal: Principal, run_id: str, allow: AllowList, secrets: Secrets, *,
                 allow_irreversible: bool) -> None:
        self.db = db
        self.principal = principal
        self.run_id = run_id
        self.allow = allow
        self.secrets = secrets
        self.allow_irreversible = allow_irreversible
        self.resource = Resource("operator_run", principal.org_id, run_id, org_slug=principal.org_slug)

    def start(self, details: dict[str, Any]) -> None:
        """``operator.run``: raises ``AccessDenied`` (audited) on a refusal."""
        with self.db.session() as s:
            require(s, self.principal, "operator.run", self.resource, request_id=self.run_id, details=self.secrets.redact_all(details))

    def check(self, action: Action, element: dict[str, Any] | None, session: BrowserSession, step: int, *,
              target: dict[str, Any] | None = None) -> Verdict:
        """The run's rules for ``action``; a refusal is audited here. ``target``: where a drag drops."""
        reason = None
        if action.tool == "goto":
            url = urljoin(session.page.url, action.args["url"])
            if not self.allow.allows(url):
                message = f"{self.secrets.redact(url)} is outside this run's allowed domains ({self.allow.describe()})"
                self._deny(action, element, session, step, message)
                return Verdict("error", f"error: {message}; the run cannot go there")
            reason = irreversible_url(url)  # a GET that deletes shows in no method: its words pause it
        hint = None
        if action.tool in ("click", "click_point") and element is not None:  # click_point: what is at the point
            if element.get("role") == "link":
                reason = irreversible_click(element)
            else:
                hint = irreversible_click(element)
        elif action.tool == "drag" and target is not None:  # dropping onto "Delete" is deleting
            hint = irreversible_click(target)
        elif action.tool == "press" and not self.allow_irreversible:
            hint = irreversible_key(action.args["key"], session.focused())
        if reason and not self.allow_irreversible:
            reason = self.secrets.redact(reason)
            self._deny(action, element, session, step, f"needs approval: {reason}")
            return Verdict("approval", reason)
        return Verdict("ok", hint=self.secrets.redact(hint) if hint else "")

    def held(self, action: Action, element: dict[str, Any] | None, session: BrowserSession, step: int,
             requests: list[dict[str, str]], reason: str) -> None:
        """Audit the requests an action sent that wait for approval (``deny`` until a person allows them)."""
        with self.db.session() as s:
            details = self._details(action, element, session.page.url, step)
            details["requests"] = self.secrets.redact_all(requests)
            write_audit(s, principal=self.principal, action="operator.act", resource=self.resource, decision="deny",
                        reason=f"needs approval: {reason}"[:500], request_id=self.run_id, details=details)

    def act(self, action: Action, element: dict[str, Any] | None, url: str, step: int, *, approval_id: str | None = None,
            requests: list[dict[str, str]] | None = None) -> None:
        """``operator.act``, audited with the action, the element's fingerprint, the URL, the approval that allowed it
        and the held requests it let through."""
        details = self._details(action, element, url, step)
        if approval_id is not None:
            details["approval"] = approval_id
        if requests:
            details["requests"] = self.secrets.redact_all(requests)
        with self.db.session() as s:
            require(s, self.principal, "operator.act", self.resource, request_id=self.run_id, details=details)

    def _details(self, action: Action, element: dict[str, Any] | None, url: str, step: int) -> dict[str, Any]:
        summary = element_summary(element)
        if summary is not None:
            summary = {k: summary[k] for k in ("role", "name", "tag", "path", "ctx")}
        return self.secrets.redact_dict({"run": self.run_id, "step": step, "action": action.tool,
                                         "args": {k: str(v)[:300] for k, v in action.args.items()}, "element": summary, "url": url})

    def _deny(self, action: Action, element: dict[str, Any] | None, session: BrowserSession, step: int, reason: str) -> None:
        with self.db.session() as s:
            write_audit(s, principal=self.principal, action="operator.act", resource=self.resource, decision="deny",
                        reason=reason[:500], request_id=self.run_id,
                        details=self._details(action, element, session.page.url, step))
