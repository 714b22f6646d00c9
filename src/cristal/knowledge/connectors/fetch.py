"""HTTP fetching for the web and API connectors: allowed hosts only, bounded size, redirects and waits.

The hosts a source may reach are the source's own list, given by the admin
who connected it (an intranet is usually on private addresses, so there is
no public-address rule here, unlike workflow ``http`` steps). Every hop of a
redirect must stay on those hosts, so credentials sent from environment
variables never leave them. Bodies are read as a stream and cut at the size
limit (a server that sends 10 GB costs at most the limit); a redirect loop or
chain is stopped after ``max_redirects`` hops; ``429``/``503`` with
``Retry-After`` are waited out when the wait is within ``max_wait_seconds``.
Proxies and ``.netrc`` from the environment are not used.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

import httpx2

_REDIRECTS = {301, 302, 303, 307, 308}


class FetchRefused(Exception):
    """A request that was not made or not finished; the message is one line and says why."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    timeout_seconds: float = 20.0
    max_wait_seconds: float = 60.0
    max_retries: int = 3


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    headers: httpx2.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def normalize_url(url: str) -> str:
    """Scheme and host in lower case, default port and fragment dropped: one spelling per page."""
    url = urldefrag(url.strip())[0]
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def host_key(url: str) -> str:
    """``host`` or ``host:port`` as written in an allowed-hosts list."""
    parts = urlsplit(url)
    return (parts.netloc.rsplit("@", 1)[-1]).lower()


def host_allowed(url: str, allowed: frozenset[str]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    return host in allowed or host_key(url) in allowed


class Fetcher:
    """GET requests to a fixed set of hosts, with the source's headers and limits."""

    def __init__(
        self,
        allowed_hosts: frozenset[str],
        headers: dict[str, str],
        limits: FetchLimits,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.allowed = allowed_hosts
        self.limits = limits
        self.sleep = sleep
        self.client = httpx2.Client(
            headers=headers, timeout=limits.timeout_seconds, follow_redirects=False, trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, headers: dict[str, str] | None = None, *, max_bytes: int | None = None) -> Fetched:
        """The final response after redirects on allowed hosts (any status), or ``FetchRefused``."""
        hops = [url]
        current = url
        while True:
            if not host_allowed(current, self.allowed):
                raise FetchRefused(f"{current} is not on the source's allowed hosts" if len(hops) == 1
                                   else f"redirects to {current}, which is not on the source's allowed hosts")
            response = self._get_with_waits(current, headers or {}, max_bytes or self.limits.max_bytes)
            if response.status not in _REDIRECTS or "location" not in response.headers:
                return response
            target = normalize_url(urljoin(current, response.headers["location"]))
            if target in hops:
                raise FetchRefused(f"redirect loop ({' -> '.join([*hops[hops.index(target):], target])})"[:300])
            hops.append(target)
            if len(hops) - 1 > self.limits.max_redirects:
                raise FetchRefused(f"more than {self.limits.max_redirects} redirects (last: {target})"[:300])
            current = target

    def _get_with_waits(self, url: str, headers: dict[str, str], max_bytes: int) -> Fetched:
        for attempt in range(self.limits.max_retries + 1):
            response = self._get_once(url, headers, max_bytes)
            if response.status not in (429, 503) or attempt == self.limits.max_retries:
                return response
            wait = retry_after(response.headers.get("retry-after"))
            if wait is None:
                return response
            if wait > self.limits.max_wait_seconds:
                raise FetchRefused(f"rate limited (HTTP {response.status}): asked to wait {wait:.0f} s, "
                                   f"more than the {self.limits.max_wait_seconds:.0f} s allowed")
            self.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns on its last attempt

    def _get_once(self, url: str, headers: dict[str, str], max_bytes: int) -> Fetched:
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchRefused(f"response too large: {human_size(int(declared))} > {human_size(max_bytes)} limit")
                body = bytearray()
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > max_bytes:
                        raise FetchRefused(f"response too large: more than the {human_size(max_bytes)} limit")
                return Fetched(normalize_url(url), response.status_code, response.headers, bytes(body))
        except httpx2.TimeoutException:
            raise FetchRefused(f"timed out after {self.limits.timeout_seconds:g} s") from None
        except httpx2.HTTPError as exc:
            detail = " ".join(str(exc).split())[:160]
            raise FetchRefused(f"cannot fetch ({type(exc).__name__}{': ' + detail if detail else ''})") from None


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def human_size(n: int) -> str:
    """``10 GB``, ``1.5 MB``, ``300 KB``, ``120 B`` -- for one-line reasons."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"
