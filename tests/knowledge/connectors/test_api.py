"""The API connector against a real local JSON API: every pagination style, fields and access rules
from a mapping file, updated-at change detection, rate limits and an API that changes mid-sync."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity import users
from cristal.knowledge import sources
from cristal.knowledge.connectors.fetch import retry_after
from cristal.knowledge.connectors.settings import read_config_file
from cristal.knowledge.schema import Document
from cristal.knowledge.sync import SyncReport, sync_source

from ..conftest import INSTALLATION
from .conftest import found
from .site import Site

BACKENDS = ("sqlite", "postgres")

TICKETS = [
    {"id": 1, "subject": "Hotel in Munich", "body": "Hotels in Munich may cost up to 150 EUR per night.",
     "status": "open", "updated_at": "2026-11-01T10:00:00Z", "visibility": {"groups": ["travel-desk"]}},
    {"id": 2, "subject": "Salary review", "body": "Senior salary bands are reviewed in March.",
     "status": "closed", "updated_at": "2026-11-02T10:00:00Z", "visibility": {"groups": ["people-team"]}},
    {"id": 3, "subject": "Nimbus deal", "body": "The Nimbus acquisition closes soon.",
     "status": "open", "updated_at": "2026-11-03T10:00:00Z", "visibility": {"groups": ["board"]}},
    {"id": 4, "subject": "Printer", "body": "The printer on floor two is out of toner.",
     "status": "open", "updated_at": "2026-11-04T10:00:00Z"},
]
MAPPING = {
    "endpoint": "/api/tickets", "items": "data", "id": "id", "title": "subject", "text": "body", "fields": ["status"],
    "updated": "updated_at", "acl": "visibility.groups",
    "principals": {"travel-desk": "group:finance", "people-team": "group:hr"},
}


def serve_cursor(site: Site, tickets: list[dict], per_page: int = 2) -> None:
    site.pages.clear()
    for start in range(0, len(tickets), per_page):
        cursor = "" if start == 0 else f"&cursor=c{start}"
        following = f"c{start + per_page}" if start + per_page < len(tickets) else None
        site.json(f"/api/tickets?limit={per_page}{cursor}", {"data": tickets[start:start + per_page], "meta": {"next": following}})


def add(db: Database, site: Site, config: dict, acl: str | None = None) -> None:
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "tickets", "api", site.url + "/", acl=acl, config=config)


def sync(db: Database) -> SyncReport:
    return sync_source(db, INSTALLATION, "acme", "tickets", embed=False)


def keys(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Document.external_id)))


CURSOR = {**MAPPING, "pagination": {"style": "cursor", "param": "cursor", "cursor": "meta.next", "size_param": "limit", "size": 2}}


def test_records_fields_and_access_from_the_api(two_orgs: Database, site: Site) -> None:
    with two_orgs.session() as s:
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    serve_cursor(site, TICKETS)
    add(two_orgs, site, CURSOR, acl="org")
    report = sync(two_orgs)
    assert keys(two_orgs) == {"1", "2", "3", "4"}
    assert report.skipped == [{"id": "(principals)", "reason": "source principals without a mapping grant nothing: board"}]
    ticket = site.url + "/api/tickets#"
    assert found(two_orgs, "fin@acme.example", "Munich hotels") == {ticket + "1"}
    assert found(two_orgs, "eng@acme.example", "Munich hotels") == set()  # not in the mapped group
    assert found(two_orgs, "hr@acme.example", "salary bands") == {ticket + "2"}
    assert found(two_orgs, "fin@acme.example", "salary bands") == set()
    assert found(two_orgs, "hr@acme.example", "Nimbus") == set()  # unmapped principal: admins only
    assert found(two_orgs, "admin@acme.example", "Nimbus") == {ticket + "3"}
    assert found(two_orgs, "eng@acme.example", "printer toner") == {ticket + "4"}  # names no one: the source's --acl
    assert found(two_orgs, "eng@acme.example", "status open") == {ticket + "4"}  # mapped fields are searchable

    again = sync(two_orgs)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)

    changed = [dict(t) for t in TICKETS[:3]]
    changed[0] = {**changed[0], "body": "Hotels in Munich may cost up to 180 EUR per night.", "updated_at": "2026-11-05T10:00:00Z"}
    changed[1] = {**changed[1], "visibility": {"groups": ["people-team", "travel-desk"]}}  # access only, same updated_at
    serve_cursor(site, changed)
    report = sync(two_orgs)
    assert (report.updated, report.access_changed, report.deleted, report.unchanged) == (1, 1, 1, 1)
    assert found(two_orgs, "fin@acme.example", "180 EUR") == {ticket + "1"}
    assert found(two_orgs, "fin@acme.example", "salary bands") == {ticket + "2"}


@pytest.mark.parametrize("style", ["page", "offset", "next_link", "header"])
def test_every_pagination_style(two_orgs: Database, site: Site, style: str) -> None:
    pages = [TICKETS[:2], TICKETS[2:], []]
    if style == "page":
        for n, page in enumerate(pages, 1):
            site.json(f"/api/tickets?page={n}", {"data": page})
        pagination = {"style": "page", "param": "page"}
    elif style == "offset":
        for n, page in enumerate(pages):
            site.json(f"/api/tickets?from={2 * n}", {"data": page})
        pagination = {"style": "offset", "param": "from"}
    elif style == "next_link":
        site.json("/api/tickets", {"data": pages[0], "next": "/api/tickets?after=2"})
        site.json("/api/tickets?after=2", {"data": pages[1], "next": None})
        pagination = {"style": "next_link", "next": "next"}
    else:
        site.json("/api/tickets", {"data": pages[0]}, headers={"Link": f'<{site.url}/api/tickets?p=2>; rel="next"'})
        site.json("/api/tickets?p=2", {"data": pages[1]})
        pagination = {"style": "next_link", "next": "header"}
    add(two_orgs, site, {**MAPPING, "pagination": pagination})
    report = sync(two_orgs)
    assert report.added == 4 and keys(two_orgs) == {"1", "2", "3", "4"}


def test_rate_limits_are_waited_out_within_bounds(two_orgs: Database, site: Site) -> None:
    serve_cursor(site, TICKETS)
    limited = {"count": 0, "retry_after": "0"}

    def rate_limit(request: BaseHTTPRequestHandler) -> bool:
        if "cursor=c2" not in request.path or limited["count"] >= 2:
            return False
        limited["count"] += 1
        site.answer(request, 429, b'{"error": "slow down"}', "application/json", {"Retry-After": limited["retry_after"]})
        return True

    site.handler = rate_limit
    add(two_orgs, site, CURSOR)
    report = sync(two_orgs)
    assert limited["count"] == 2 and report.added == 4 and report.skipped[:-1] == []

    # An API that asks for a longer wait than allowed: the listing stops with the reason, nothing is lost.
    limited.update(count=0, retry_after="3600")
    report = sync(two_orgs)
    assert report.skipped[0] == {"id": site.url + "/api/tickets", "reason": (
        "listing stopped on page 2: rate limited (HTTP 429): asked to wait 3600 s, more than the 60 s allowed; "
        "records received so far are synced, nothing deleted")}
    assert report.deleted == 0 and keys(two_orgs) == {"1", "2", "3", "4"}


def test_an_api_that_changes_shape_mid_sync(two_orgs: Database, site: Site) -> None:
    serve_cursor(site, TICKETS)
    add(two_orgs, site, CURSOR)
    sync(two_orgs)
    site.json("/api/tickets?limit=2&cursor=c2", {"data": {"error": "v2 moved the records to /v2/tickets"}})
    report = sync(two_orgs)
    assert report.skipped[0]["reason"].startswith("listing stopped on page 2: the answer changed shape: `data` is not a list (got dict)")
    assert report.deleted == 0 and keys(two_orgs) == {"1", "2", "3", "4"}

    site.pages["/api/tickets?limit=2&cursor=c2"].body = b"<html>Maintenance</html>"
    site.pages["/api/tickets?limit=2&cursor=c2"].content_type = "text/html"
    report = sync(two_orgs)
    assert "the answer changed shape: not JSON (text/html)" in report.skipped[0]["reason"]

    site.json("/api/tickets?limit=2&cursor=c2", {"data": [{"subject": "no id"}, TICKETS[3]], "meta": {"next": None}})
    report = sync(two_orgs)
    assert report.skipped[0] == {"id": site.url + "/api/tickets (page 2)", "reason": "a record without `id`: not indexed, nothing deleted"}
    assert report.deleted == 0 and keys(two_orgs) == {"1", "2", "3", "4"}

    site.json("/api/tickets?limit=2&cursor=c2", {"error": "internal"}, status=500)
    report = sync(two_orgs)
    assert report.skipped[0]["reason"].startswith("listing stopped on page 2: HTTP 500;") and report.deleted == 0


def test_a_pagination_that_repeats_itself_is_stopped(two_orgs: Database, site: Site) -> None:
    site.json("/api/tickets?limit=2", {"data": TICKETS[:2], "meta": {"next": "again"}})
    site.json("/api/tickets?limit=2&cursor=again", {"data": TICKETS[2:], "meta": {"next": "again"}})
    add(two_orgs, site, CURSOR)
    report = sync(two_orgs)
    assert report.added == 4
    assert report.skipped[0]["reason"].startswith(
        f"listing stopped on page 3: the pagination repeats itself ({site.url}/api/tickets?limit=2&cursor=again)")


def test_mapping_file_errors_name_the_line(two_orgs: Database, site: Site, tmp_path: Path) -> None:
    mapping = tmp_path / "tickets.yaml"
    mapping.write_text("endpoint: /api/tickets\nid: id\ntext: body\npagination:\n  style: cursor\n  param: cursor\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as exc, two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "tickets", "api", site.url, config=read_config_file(mapping))
    assert str(exc.value) == (f"{mapping}:4: api source settings: pagination: "
                              "style cursor needs cursor (where the next cursor is in the answer)")
    mapping.write_text("endpoint: /api/tickets\nid: id\ntext: [body, 'not a path!']\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as exc, two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "tickets", "api", site.url, config=read_config_file(mapping))
    assert str(exc.value) == (f"{mapping}:3: api source settings: text: "
                              "'not a path!' is not a field path (names joined by dots, like data.items)")
    mapping.write_text("base: &b {endpoint: /x}\nother: *b\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"tickets.yaml:2: YAML aliases are not allowed"):
        read_config_file(mapping)
    with pytest.raises(InvalidInput, match="api source settings: id: Field required"), two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "tickets", "api", site.url, config={"endpoint": "/x", "text": "body"})


def test_retry_after_forms() -> None:
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert retry_after("soon") is None and retry_after(None) is None
