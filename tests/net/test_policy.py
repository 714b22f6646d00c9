"""The network policy: internal addresses, checked name lookups, pinned connections, domain allow-lists."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from cristal.errors import InvalidInput
from cristal.net.policy import (
    AllowList,
    InternalAddress,
    NetRefused,
    address_kind,
    check_url,
    normalise_domain,
    pinned_connect,
    resolve_checked,
)


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "a loopback"),
    ("::1", "a loopback"),
    ("::ffff:127.0.0.1", "a loopback"),  # IPv4-mapped IPv6 reaches the IPv4 address
    ("169.254.169.254", "a link-local"),  # cloud metadata
    ("fe80::1", "a link-local"),
    ("10.1.2.3", "a private"),
    ("192.168.0.1", "a private"),
    ("172.16.0.1", "a private"),
    ("fd00::1", "a private"),
    ("100.64.0.1", "a private"),  # shared address space (not global)
    ("0.0.0.0", "an unspecified"),
    ("::", "an unspecified"),
    ("224.0.0.1", "a multicast"),
    ("93.184.216.34", None),
    ("2606:4700::1111", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_lookup_refuses_internal_answers_unless_allowed() -> None:
    with pytest.raises(InternalAddress) as caught:
        resolve_checked("localhost", 80, allow_internal=False)
    assert caught.value.kind == "a loopback"
    assert str(caught.value).startswith("localhost (")
    with pytest.raises(InternalAddress, match=r"^127\.0\.0\.1 is a loopback address$"):
        resolve_checked("127.0.0.1", 80, allow_internal=False)
    assert "127.0.0.1" in resolve_checked("localhost", 80, allow_internal=True)


def test_failed_lookup_is_retriable() -> None:
    with pytest.raises(NetRefused, match=r"cannot resolve no-such-host\.invalid") as caught:
        resolve_checked("no-such-host.invalid", 80, allow_internal=False)
    assert caught.value.retriable


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "invalid url 'ftp://example.com/x': use http:// or https://"),
    ("http://example.com:99999/", "invalid port in 'http://example.com:99999/'"),
    ("http:///path", "no host in 'http:///path'"),
])
def test_check_url_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(NetRefused) as caught:
        check_url(url, None, allow_internal=True)
    assert str(caught.value) == message
    assert not caught.value.retriable


def test_organization_list_limits_and_admits_internal_hosts() -> None:
    with pytest.raises(NetRefused, match=r"^localhost is not in the organization's allowed domains \(example\.com\)$"):
        check_url("http://localhost:8080/", ("example.com",), allow_internal=False)
    with pytest.raises(NetRefused, match=r"allowed domains \(none\)"):
        check_url("http://localhost:8080/", (), allow_internal=False)
    # A host the admin listed may be internal: the list is the admin's choice.
    target = check_url("http://localhost:8080/x", ("localhost:8080",), allow_internal=False)
    assert (target.scheme, target.host, target.port) == ("http", "localhost", 8080)
    assert "127.0.0.1" in target.addresses
    with pytest.raises(InternalAddress):
        check_url("https://127.0.0.1/", None, allow_internal=False)


def test_pinned_connection_dials_the_checked_address_whatever_the_name() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[str] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[1][0]), daemon=True)
    thread.start()
    connect = pinned_connect(["127.0.0.1"])
    with connect(("name-that-does-not-resolve.invalid", port), 5):
        thread.join(5)
    server.close()
    assert accepted == ["127.0.0.1"]
    with pytest.raises(OSError):
        pinned_connect([])(("x", port), 1)


def test_allow_list_matches_hosts_subdomains_and_ports() -> None:
    allow = AllowList.build(["example.com", "intranet.example:8443"], "https://example.com/")
    assert allow.allows("https://example.com/a")
    assert allow.allows("https://www.example.com:444/")
    assert not allow.allows("https://badexample.com/")
    assert allow.allows("https://intranet.example:8443/")
    assert not allow.allows("https://intranet.example/")
    assert allow.allows("data:text/plain,hi")  # never leaves the browser
    assert not allow.allows("file:///etc/passwd")
    assert AllowList.build([], "http://127.0.0.1:5000/start").domains == ("127.0.0.1:5000",)


def test_organization_list_intersects_the_run_list() -> None:
    allow = AllowList.build(["example.com", "other.example"], "https://example.com/").within(["example.com"])
    assert allow.allows("https://example.com/")
    assert not allow.allows("https://other.example/")
    assert allow.outside_org() == ["other.example"]
    assert allow.describe() == "example.com, other.example; organization: example.com"


def test_domain_entries_are_normalised_or_refused() -> None:
    assert normalise_domain(" *.Example.COM/ ") == "example.com"
    assert normalise_domain("https://Intranet.example:8443/path") == "intranet.example:8443"
    assert normalise_domain("http://[::1]:8080/") == "[::1]:8080"
    with pytest.raises(InvalidInput, match="not a domain for --allow-domain"):
        normalise_domain("exa mple.com")
