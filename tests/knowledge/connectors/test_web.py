"""The web connector against real local sites: crawl limits, robots.txt, auth from the environment,
conditional requests, access from the site's own headers, and sites that misbehave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity import users
from cristal.knowledge import sources
from cristal.knowledge.schema import Document, Source
from cristal.knowledge.sync import SyncReport, sync_source

from ..conftest import INSTALLATION
from .conftest import found
from .site import Page, Site

BACKENDS = ("sqlite", "postgres")


def add(db: Database, site: Site, config: dict | None = None, acl: str | None = "org", name: str = "intranet") -> None:
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", name, "web", site.url + "/", acl=acl, config=config)


def sync(db: Database, name: str = "intranet") -> SyncReport:
    return sync_source(db, INSTALLATION, "acme", name, embed=False)


def indexed(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Document.uri)))


def reasons(report: SyncReport) -> dict[str, str]:
    return {p["id"]: p["reason"] for p in report.skipped}


def company_site(site: Site, other: Site) -> None:
    site.html("/", "Intranet home", "Welcome to the Acme intranet.", ("/travel", "/private/salaries", other.url + "/elsewhere",
                                                                     "/travel#meals", "mailto:it@acme.example"))
    site.html("/travel", "Travel policy", "Hotels in Munich may cost up to 150 EUR per night.", ("/",))
    site.html("/private/salaries", "Salaries", "Senior engineers earn 105000 EUR.")
    site.html("/from-sitemap", "Garantie", "Die Garantiezeit beträgt drei Jahre.")
    site.pages["/robots.txt"] = Page(b"User-agent: *\nDisallow: /private/\nSitemap: " + site.url.encode() + b"/sitemap.xml\n",
                                     "text/plain")
    site.pages["/sitemap.xml"] = Page(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url}/from-sitemap</loc></url></urlset>".encode(), "application/xml")
    site.pages["/logo.png"] = Page(b"\x89PNG....", "image/png")
    other.html("/elsewhere", "Elsewhere", "Another host entirely.")


def test_crawls_seeds_and_sitemaps_within_allowed_hosts_and_honours_robots(two_orgs: Database, site: Site, other_site: Site) -> None:
    company_site(site, other_site)
    add(two_orgs, site)
    report = sync(two_orgs)
    assert indexed(two_orgs) == {site.url + "/", site.url + "/travel", site.url + "/from-sitemap"}
    assert report.added == 3 and report.skipped == []
    assert "/private/salaries" not in site.paths()  # disallowed by robots.txt: never requested
    assert other_site.paths() == []  # not an allowed host: never requested
    assert found(two_orgs, "eng@acme.example", "Munich hotels") == {site.url + "/travel"}
    assert found(two_orgs, "eng@acme.example", "Garantiezeit") == {site.url + "/from-sitemap"}


def test_unchanged_pages_are_answered_304_and_not_reparsed(two_orgs: Database, site: Site, other_site: Site) -> None:
    company_site(site, other_site)
    add(two_orgs, site)
    sync(two_orgs)
    assert site.full["/travel"] == 1
    again = sync(two_orgs)
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 3, 0)
    assert site.full["/travel"] == 1  # the second sync sent If-None-Match and got 304: no body
    conditional = [h for p, h in site.requests if p == "/travel"][-1]
    assert conditional.get("If-None-Match")

    site.html("/travel", "Travel policy", "Hotels in Munich may cost up to 180 EUR per night.", ("/",))
    del site.pages["/from-sitemap"]
    changed = sync(two_orgs)
    assert (changed.updated, changed.unchanged, changed.deleted) == (1, 1, 1)
    assert found(two_orgs, "eng@acme.example", "180 EUR") == {site.url + "/travel"}
    assert site.url + "/from-sitemap" not in indexed(two_orgs)


def test_a_new_etag_with_the_same_body_is_not_reparsed(two_orgs: Database, site: Site) -> None:
    site.html("/", "Home", "Same text every time.", headers={"ETag": '"v1"'})
    add(two_orgs, site)
    sync(two_orgs)
    site.pages["/"].headers["ETag"] = '"v2"'
    report = sync(two_orgs)
    assert (report.updated, report.unchanged) == (0, 1)


def test_auth_headers_come_from_the_environment_and_are_never_stored(
    two_orgs: Database, site: Site, other_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    company_site(site, other_site)
    site.require_auth = "Bearer s3cret-token"
    add(two_orgs, site, {"headers_from_env": {"Authorization": "INTRANET_AUTH"}})
    with two_orgs.session() as s:
        stored = s.scalar(select(Source.options))
    assert "s3cret" not in str(stored) and stored["config"]["headers_from_env"] == {"Authorization": "INTRANET_AUTH"}

    missing = sync(two_orgs)
    assert missing.added == 0
    assert reasons(missing) == {site.url + "/": "environment variable INTRANET_AUTH (header Authorization) is not set"}

    monkeypatch.setenv("INTRANET_AUTH", "Bearer s3cret-token")
    assert sync(two_orgs).added == 3
    assert other_site.requests == []  # the token is never sent to another host

    monkeypatch.delenv("INTRANET_AUTH")
    again = sync(two_orgs)
    assert again.deleted == 0 and len(indexed(two_orgs)) == 3  # a missing credential deletes nothing


def test_access_rules_come_from_the_site_through_the_mapping(two_orgs: Database, site: Site) -> None:
    with two_orgs.session() as s:
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    site.html("/", "Home", "Welcome.", ("/hr/bands", "/legal/contract", "/news"))
    site.html("/hr/bands", "Salary bands", "Salary bands for senior engineers.", headers={"X-Access-Groups": "hr-staff"})
    site.html("/legal/contract", "Contract", "Nimbus acquisition contract.", headers={"X-Access-Groups": "legal-team"})
    site.html("/news", "News", "Company news about the salary review.", head='<meta name="access" content="everyone">')
    add(two_orgs, site, {"acl_header": "X-Access-Groups", "acl_meta": "access",
                         "principals": {"hr-staff": "group:hr", "everyone": "org"}}, acl=None)
    report = sync(two_orgs)
    assert reasons(report) == {"(principals)": "source principals without a mapping grant nothing: legal-team"}

    assert found(two_orgs, "hr@acme.example", "salary") == {site.url + "/hr/bands", site.url + "/news"}
    assert found(two_orgs, "fin@acme.example", "salary") == {site.url + "/news"}  # not in the mapped group
    assert found(two_orgs, "fin@acme.example", "Nimbus") == set()  # unmapped principal: grants nothing
    assert found(two_orgs, "hr@acme.example", "Nimbus") == set()
    assert found(two_orgs, "admin@acme.example", "Nimbus") == {site.url + "/legal/contract"}
    assert found(two_orgs, "fin@acme.example", "Welcome") == set()  # names no one, no --acl: admins only

    # The site changes who may read a section; the page itself is unchanged.
    site.pages["/hr/bands"].headers["X-Access-Groups"] = "hr-staff, everyone"
    site.pages["/legal/contract"].headers["X-Access-Groups"] = "hr-staff"
    changed = sync(two_orgs)
    assert (changed.access_changed, changed.updated) == (2, 0)
    assert found(two_orgs, "fin@acme.example", "salary") == {site.url + "/hr/bands", site.url + "/news"}
    assert found(two_orgs, "hr@acme.example", "Nimbus") == {site.url + "/legal/contract"}
    site.pages["/hr/bands"].headers["X-Access-Groups"] = "hr-staff"
    sync(two_orgs)
    assert found(two_orgs, "fin@acme.example", "salary") == {site.url + "/news"}  # revoked at the source: gone at once


def test_misbehaving_pages_get_a_reason_and_the_rest_completes(two_orgs: Database, site: Site) -> None:
    site.html("/", "Home", "Welcome.", ("/ok", "/loop-a", "/chain/0", "/huge", "/endless", "/broken", "/outside"))
    site.html("/ok", "Travel", "Hotels in Munich cost 150 EUR.")
    site.pages["/loop-a"] = Page(status=302, headers={"Location": "/loop-b"})
    site.pages["/loop-b"] = Page(status=302, headers={"Location": "/loop-a"})
    for n in range(10):
        site.pages[f"/chain/{n}"] = Page(status=301, headers={"Location": f"/chain/{n + 1}"})
    site.pages["/huge"] = Page(declared_length=10 * 1024**3)
    site.pages["/endless"] = Page(endless=True)
    site.pages["/broken"] = Page(b"oops", "text/plain", status=500)
    site.pages["/outside"] = Page(status=302, headers={"Location": "http://127.0.0.2:9/secret"})
    add(two_orgs, site, {"max_page_bytes": 1024 * 1024, "max_redirects": 5})
    report = sync(two_orgs)
    got = reasons(report)
    assert got[site.url + "/loop-a"] == f"redirect loop ({site.url}/loop-a -> {site.url}/loop-b -> {site.url}/loop-a)"
    assert got[site.url + "/chain/0"] == f"more than 5 redirects (last: {site.url}/chain/6)"
    assert got[site.url + "/huge"] == "response too large: 10 GB > 1 MB limit"
    assert got[site.url + "/endless"] == "response too large: more than the 1 MB limit"
    assert got[site.url + "/broken"] == "HTTP 500"
    assert got[site.url + "/outside"] == "redirects to http://127.0.0.2:9/secret, which is not on the source's allowed hosts"
    assert indexed(two_orgs) == {site.url + "/", site.url + "/ok"}


def test_a_page_that_starts_failing_keeps_its_indexed_version(two_orgs: Database, site: Site) -> None:
    site.html("/", "Home", "Welcome.", ("/policy",))
    site.html("/policy", "Policy", "The per diem for meals is 28 EUR.", ("/deep",))
    site.html("/deep", "Deep", "Only linked from the policy page: Osaka office.")
    add(two_orgs, site)
    sync(two_orgs)
    site.pages["/policy"] = Page(status=302, headers={"Location": "/policy"})
    report = sync(two_orgs)
    assert reasons(report) == {site.url + "/policy": f"redirect loop ({site.url}/policy -> {site.url}/policy)"}
    assert report.deleted == 0
    # The failing page is kept, and so is what only it linked to (its links are remembered).
    assert found(two_orgs, "eng@acme.example", "per diem") == {site.url + "/policy"}
    assert found(two_orgs, "eng@acme.example", "Osaka") == {site.url + "/deep"}


def test_page_limit_stops_the_crawl_and_deletes_nothing(two_orgs: Database, site: Site) -> None:
    site.html("/", "Home", "Welcome.", tuple(f"/p{n}" for n in range(6)))
    for n in range(6):
        site.html(f"/p{n}", f"Page {n}", f"Page number {n}.")
    add(two_orgs, site)
    assert sync(two_orgs).added == 7
    with two_orgs.session() as s:
        source = s.scalar(select(Source))
        source.options = {"config": {**source.options["config"], "max_pages": 3}}
    report = sync(two_orgs)
    assert reasons(report) == {site.url + "/p2": "crawl stopped after 3 pages (max_pages); 4 pages not visited, nothing deleted"}
    assert report.deleted == 0 and len(indexed(two_orgs)) == 7


def test_robots_and_meta_robots(two_orgs: Database, site: Site) -> None:
    site.html("/", "Home", "Welcome.", ("/hidden", "/nofollow"))
    site.html("/hidden", "Hidden", "Not for the index.", head='<meta name="robots" content="noindex">')
    site.html("/nofollow", "Nofollow", "Indexed, links not followed.", ("/behind",), head='<meta name="robots" content="nofollow">')
    site.html("/behind", "Behind", "Only reachable through a nofollow page.")
    site.pages["/robots.txt"] = Page(b"User-agent: CristalBot\nDisallow: /\n", "text/plain")
    add(two_orgs, site)
    assert sync(two_orgs).added == 0  # the site forbids this crawler entirely
    site.pages["/robots.txt"] = Page(b"User-agent: *\nAllow: /\n", "text/plain")
    sync(two_orgs)
    assert indexed(two_orgs) == {site.url + "/", site.url + "/nofollow"}
    site.pages["/robots.txt"] = Page(b"oops", "text/plain", status=503)
    report = sync(two_orgs)
    assert reasons(report) == {site.url + "/robots.txt": "robots.txt unreadable (HTTP 503); host not crawled"}
    assert report.deleted == 0 and len(indexed(two_orgs)) == 2


@pytest.mark.parametrize(("config", "message"), [
    ({"seeds": ["ftp://x"]}, "web source settings: seeds: 'ftp://x' is not an http(s) URL"),
    ({"max_pages": 0}, "web source settings: max_pages: Input should be greater than or equal to 1"),
    ({"principals": {"hr": "group:"}},
     "web source settings: principals: 'hr': invalid access rule 'group:': use org, group:NAME or user:EMAIL"),
    ({"colour": "blue"}, "web source settings: colour: Extra inputs are not permitted"),
])
def test_bad_settings_are_refused_with_the_field(two_orgs: Database, site: Site, config: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as exc, two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "intranet", "web", site.url, config=config)
    assert str(exc.value) == message


def test_bad_uri_is_refused(two_orgs: Database) -> None:
    with pytest.raises(InvalidInput, match="invalid web source: 'intranet' is not an http"), two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "intranet", "web", "intranet")
