"""Where Cristal may connect: internal addresses and domain allow-lists, in one place.

Two callers today, more to come (agent tools that call out):

* ``http`` workflow steps refuse loopback, private, link-local (cloud
  metadata), multicast and unspecified addresses unless the installation or the
  organization's allow-list says otherwise; every answer of the name lookup is
  checked, and the connection is pinned to the checked addresses
  (``resolve_checked``, ``pinned_connect``), so DNS cannot answer differently
  between the check and the connection;
* the Operator's browser may only reach the domains of its run's allow-list,
  intersected with the organization's (``AllowList``, ``org_domains``).

An organization's list (``organizations.operator_allowed_domains``, set with
``cristal operator policy``) limits both: a run or a step can narrow it, never
widen it.

This module sits just above the spine (it reads the organization row) and
below every layer that makes requests; it raises ``NetRefused`` with a
one-line reason that the caller prefixes with its own context.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cristal.db import Database
from cristal.db.schema import Organization
from cristal.errors import CristalError, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetRefused(CristalError):
    """A request may not go where it was meant to go; ``retriable``: a later attempt may succeed (a failed lookup)."""

    def __init__(self, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class InternalAddress(NetRefused):
    """The host resolved to an internal address (``kind``: "a loopback", "a private", ...)."""

    def __init__(self, shown: str, kind: str) -> None:
        super().__init__(f"{shown} is {kind} address")
        self.shown = shown
        self.kind = kind


# ---------------------------------------------------------------------------
# Addresses


def address_kind(ip: IPAddress) -> str | None:
    """Why a request may not reach ``ip`` by default (``None``: a public address)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    if ip.is_unspecified:
        return "an unspecified"
    if ip.is_loopback:
        return "a loopback"
    if ip.is_link_local:  # 169.254.169.254: cloud metadata with instance credentials
        return "a link-local"
    if ip.is_multicast:
        return "a multicast"
    if ip.is_private or not ip.is_global:  # RFC 1918, ULA, shared and reserved ranges
        return "a private"
    return None


def resolve_checked(host: str, port: int, *, allow_internal: bool) -> list[str]:
    """The addresses of ``host``, each checked (unless ``allow_internal``); connect to these, never to a second lookup.

    Any internal answer refuses the host: a name that mixes public and
    internal addresses is not one to reach.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetRefused(f"cannot resolve {host}: {exc}", retriable=True) from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not allow_internal:
        for address in addresses:
            kind = address_kind(ipaddress.ip_address(address))
            if kind:
                raise InternalAddress(address if address == host else f"{host} ({address})", kind)
    return addresses


def pinned_connect(addresses: list[str]) -> Callable[..., socket.socket]:
    """A ``socket.create_connection`` that ignores the host name and dials the checked addresses.

    ``http.client`` still sends the name in ``Host`` and, for https, in SNI and the certificate
    check; only the TCP connection is pinned, so DNS cannot answer differently (rebinding) between
    the check and the connection.
    """
    # socket._GLOBAL_DEFAULT_TIMEOUT is the sentinel create_connection itself defaults to (not in the stubs).
    def connect(address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]  # see above
                source_address: Any = None) -> socket.socket:
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError("no address")
    return connect


@dataclass(frozen=True)
class Target:
    """One request's destination after the checks: connect to ``addresses`` only."""

    scheme: str
    host: str
    port: int
    addresses: list[str]


def check_url(url: str, org_list: tuple[str, ...] | None, *, allow_internal: bool) -> Target:
    """Scheme, host, port and checked addresses of one HTTP request (the first or a redirect).

    An organization allow-list names hosts an admin chose, internal ones included; without one,
    only ``allow_internal`` (an installation setting) lets the request reach internal addresses.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise NetRefused(f"invalid url {url[:200]!r}: use http:// or https://")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise NetRefused(f"invalid port in {url[:200]!r}") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise NetRefused(f"no host in {url[:200]!r}")
    if org_list is not None and not AllowList(org_list).allows(url):
        raise NetRefused(f"{host} is not in the organization's allowed domains ({', '.join(org_list) or 'none'})")
    return Target(scheme, host, port, resolve_checked(host, port, allow_internal=allow_internal or org_list is not None))


# ---------------------------------------------------------------------------
# Domains


# Schemes that never leave the browser.
_LOCAL_SCHEMES = {"data", "blob", "about"}
_NETWORK_SCHEMES = {"http", "https", "ws", "wss"}
_DOMAIN = re.compile(r"^(?:\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)(?::[0-9]{1,5})?$")


def _host_port(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower().rstrip("."), port


def normalise_domain(entry: str) -> str:
    """``example.com``, ``intranet.example:8443`` or a URL (only its host and port are kept)."""
    raw = entry.strip().lower()
    if "://" in raw:
        _scheme, host, port = _host_port(raw)
        raw = f"[{host}]" if ":" in host else host
        if port is not None:
            raw += f":{port}"
    raw = raw.rstrip("/").removeprefix("*.")
    if not raw or not _DOMAIN.match(raw):
        raise InvalidInput(f"not a domain for --allow-domain: {entry!r} "
                           "(use a host name such as intranet.example.com, optionally with :PORT)")
    return raw


@dataclass(frozen=True)
class AllowList:
    """Hosts a run may reach. ``example.com`` admits it and its subdomains on any port; ``host:port`` only that port.

    ``org_domains`` is the organization's own list (``None``: no organization-wide
    limit). A URL must pass both, so the effective list is the intersection of the two.
    """

    domains: tuple[str, ...]
    org_domains: tuple[str, ...] | None = None

    @classmethod
    def build(cls, entries: Iterable[str], start_url: str, org_domains: Iterable[str] | None = None) -> AllowList:
        domains = tuple(dict.fromkeys(normalise_domain(e) for e in entries))
        if not domains:  # nothing given: only the start URL's own host and port
            domains = (normalise_domain(start_url),)
        return cls(domains, None if org_domains is None else tuple(org_domains))

    def within(self, org_domains: Iterable[str] | None) -> AllowList:
        """This list limited by an organization's list (``None`` leaves it as it is)."""
        return AllowList(self.domains, None if org_domains is None else tuple(org_domains))

    def allows(self, url: str) -> bool:
        return _matches(self.domains, url) and (self.org_domains is None or _matches(self.org_domains, url))

    def outside_org(self) -> list[str]:
        """Entries of the run's list that the organization's list does not reach at all."""
        if self.org_domains is None:
            return []
        return [d for d in self.domains if not any(_overlap(d, o) for o in self.org_domains)]

    def describe(self) -> str:
        text = ", ".join(self.domains)
        if self.org_domains is not None:
            text += f"; organization: {', '.join(self.org_domains) or 'none'}"
        return text


def _matches(entries: tuple[str, ...], url: str) -> bool:
    scheme, host, port = _host_port(url)
    if scheme in _LOCAL_SCHEMES:
        return True
    if scheme not in _NETWORK_SCHEMES or not host:
        return False
    default = 443 if scheme in ("https", "wss") else 80
    bracketed = f"[{host}]" if ":" in host else host
    for entry in entries:
        name, entry_port = _split(entry)
        if entry_port is not None and entry_port != (port or default):
            continue
        if bracketed == name or (not name.startswith("[") and not _is_ip(name) and bracketed.endswith("." + name)):
            return True
    return False


def _split(entry: str) -> tuple[str, int | None]:
    if _has_port(entry):
        name, _, port = entry.rpartition(":")
        return name, int(port)
    return entry, None


def _overlap(a: str, b: str) -> bool:
    """Whether some URL is admitted by both entries (one name within the other, compatible ports)."""
    (name_a, port_a), (name_b, port_b) = _split(a), _split(b)
    if port_a is not None and port_b is not None and port_a != port_b:
        return False
    if name_a == name_b:
        return True
    if _is_ip(name_a) or _is_ip(name_b) or name_a.startswith("[") or name_b.startswith("["):
        return False
    return name_a.endswith("." + name_b) or name_b.endswith("." + name_a)


def _has_port(entry: str) -> bool:
    return bool(re.search(r":[0-9]{1,5}$", entry)) and not (entry.startswith("[") and entry.endswith("]"))


def _is_ip(name: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+", name))


def org_domains(session: Session, org_id: int | None) -> tuple[str, ...] | None:
    """The organization's allow-list as stored (``None``: no organization-wide limit)."""
    if org_id is None:
        return None
    org = session.get(Organization, org_id)
    if org is None or org.operator_allowed_domains is None:
        return None
    return tuple(str(d) for d in org.operator_allowed_domains)


def load_org_domains(db: Database, org_id: int | None) -> tuple[str, ...] | None:
    with db.session() as s:
        return org_domains(s, org_id)
