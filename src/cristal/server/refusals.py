"""Refusals that leave an audit record although no ``authorize`` call saw them: wrong API keys and probing.

* A request with an API key that authenticates nobody (malformed, unknown,
  wrong secret, revoked) is recorded as ``apikey.authenticate`` / ``deny``,
  with the source address. When the key's prefix names a real key, the record
  goes to that key's organization (its admins see someone holding, or
  guessing at, one of their keys); otherwise to the installation's records
  (``cristal audit`` without ``--org``). A request with no key at all is not
  recorded: that is every browser before sign-in.
* A sign-in to the web app that does not go through (a bad or reused state,
  another browser's answer, a code the provider refuses, an id token that
  fails its checks) is recorded as ``session.create`` / ``deny`` in the
  organization the sign-in was for (the installation's, when the state names
  none), with the source address and the reason, under the failed-key limits.
* A request by an authenticated employee for something their organization
  does not have (another organization's run or approval, an unknown
  deployment) is answered 404 as before and recorded as ``http.not_found`` /
  ``deny`` in the caller's organization, naming the caller and the path. The
  answer does not say whether the thing exists elsewhere, and neither does
  the record the caller's admins read.

Both are rate-limited with ``AuditThrottle`` (counts in the database, shared
by all server processes): past the limits in ``Limits`` an event is only
counted, and one summary record per window says how many were left out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from fastapi import Request

from cristal.audit.throttle import AuditThrottle, Bucket, Event
from cristal.db import Database
from cristal.errors import CristalError
from cristal.identity.apikeys import ApiKeyRefused
from cristal.identity.principal import Principal
from cristal.identity.signin import SignInRefused

log = logging.getLogger("cristal.server")

FAILED_KEY = "apikey.authenticate"
FAILED_SIGNIN = "session.create"
NOT_FOUND = "http.not_found"


def source_of(request: Request) -> tuple[str, str]:
    """The caller's address, and what it is counted under: the address, or its /64 for IPv6 (one host's range)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100], host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return host, str(address.ipv4_mapped)
        return host, str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host, str(address)


class Refusals:
    """Records the refusals above for one server app (the app's ``ServerState`` owns it)."""

    def __init__(self, db: Database, *, window_seconds: int, failed_keys_per_source: int, failed_keys_per_org: int,
                 not_found_per_caller: int) -> None:
        self.throttle = AuditThrottle(db, window_seconds=window_seconds)
        self.failed_keys_per_source = failed_keys_per_source
        self.failed_keys_per_org = failed_keys_per_org
        self.not_found_per_caller = not_found_per_caller

    def failed_key(self, request: Request, exc: CristalError, request_id: str) -> None:
        """Record a key that authenticated nobody (``exc`` says why; an ``ApiKeyRefused`` names the key's org)."""
        refused = exc if isinstance(exc, ApiKeyRefused) else None
        org_id, org_slug = (refused.org_id, refused.org_slug) if refused else (None, None)
        prefix = refused.prefix if refused else None
        self._anonymous(request, FAILED_KEY, org_id, org_slug, f"apikey:{prefix}" if prefix else "apikey", "apikey",
                        exc.message, request_id, {"method": request.method})

    def failed_signin(self, request: Request, exc: SignInRefused, request_id: str) -> None:
        """Record a sign-in that did not go through, in the organization it was for."""
        self._anonymous(request, FAILED_SIGNIN, exc.org_id, exc.org_slug, "session", "session", exc.message, request_id, {})

    def _anonymous(self, request: Request, action: str, org_id: int | None, org_slug: str | None, resource: str,
                   counted: str, reason: str, request_id: str, details: dict[str, str]) -> None:
        """Record a refusal of someone not signed in, limited per source address and per organization."""
        host, counted_as = source_of(request)
        where = f"org:{org_id}" if org_id is not None else "installation"
        event = Event(org_id=org_id, org_slug=org_slug, actor=f"anonymous:{host}", action=action, resource=resource,
                      reason=reason, request_id=request_id,
                      details={"source": host, **details, "path": request.url.path[:200]})
        buckets = [
            Bucket(f"{action}|{where}|source:{counted_as}", self.failed_keys_per_source, f"anonymous:{counted_as}",
                   counted, "per source address"),
            # Addresses are cheap to change (and a local proxy's X-Forwarded-For is trusted): a ceiling for all of them.
            Bucket(f"{action}|{where}", self.failed_keys_per_org, "anonymous", counted,
                   "for this organization" if org_id is not None else "for the installation"),
        ]
        self._record(event, buckets)

    def not_found(self, request: Request, principal: Principal, message: str, request_id: str) -> None:
        """Record an authenticated caller's request for something their organization does not have."""
        host, _ = source_of(request)
        event = Event(org_id=principal.org_id, org_slug=principal.org_slug, actor=principal.label, action=NOT_FOUND,
                      resource=f"{request.method} {request.url.path}", reason=message, request_id=request_id,
                      details={"source": host})
        bucket = Bucket(f"{NOT_FOUND}|org:{principal.org_id}|user:{principal.user_id}", self.not_found_per_caller,
                        principal.label, "api", "per caller")
        self._record(event, [bucket])

    def _record(self, event: Event, buckets: list[Bucket]) -> None:
        try:
            self.throttle.record(event, buckets)
        except Exception:  # the refusal itself must still be answered; the log keeps the failure
            log.exception("could not record %s by %s in the audit trail", event.action, event.actor)

    def sweep(self) -> None:
        """Write the summaries of windows that are over (any server process may; each summary is written once)."""
        try:
            self.throttle.sweep()
        except Exception:  # the next sweep tries again
            log.exception("could not write the audit summaries of suppressed refusals")

    async def sweep_periodically(self) -> None:
        """Sweep once per window for as long as the server runs (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(self.throttle.window_seconds)
            await asyncio.to_thread(self.sweep)
