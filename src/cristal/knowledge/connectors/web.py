"""The web connector: an intranet site crawled from seed pages and sitemaps, within the allowed hosts.

``--uri`` is the first seed; the settings file adds ``seeds``, ``sitemaps``,
``allowed_hosts`` (default: the seeds' hosts), request headers whose values
come from environment variables (``headers_from_env: {Authorization:
INTRANET_AUTH}``: the variable's name is stored, never its value), and limits
on pages, bytes per page and redirects. Each host's ``robots.txt`` is honoured
(``urllib.robotparser``; its ``Sitemap:`` lines are crawled too), and so are
``<meta name="robots">`` ``noindex`` and ``nofollow``.

Change detection: a page indexed before is asked for with ``If-None-Match``
/ ``If-Modified-Since``; a ``304`` costs no download and no parsing (its links
are remembered from the last sync). A ``200`` is compared by the hash of its
body, so a page whose ETag changed but whose text did not is not re-parsed.

Access from the source: with ``acl_header`` (a response header such as
``X-Access-Groups``) or ``acl_meta`` (``<meta name=... content=...>``) the
principals a page names (comma-separated) go through the ``principals``
mapping; a page that names none gets the source's ``--acl``.

A page that fails (timeout, too large, redirect loop, server error) is
reported and keeps its indexed version; the rest of the crawl goes on. A crawl
stopped by ``max_pages`` deletes nothing.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
from pydantic import Field, field_validator

from cristal.errors import InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.connectors.fetch import Fetched, Fetcher, FetchLimits, FetchRefused, host_allowed, host_key, normalize_url
from cristal.knowledge.connectors.settings import MissingCredential, PrincipalMap, SourceSettings, env_headers, unreachable

MAX_LINKS_PER_PAGE = 5000
MAX_SITEMAP_FILES = 50

_TYPES = {
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "text/markdown": ".md",
    "application/pdf": ".pdf", "message/rfc822": ".eml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


class WebSettings(SourceSettings):
    seeds: list[str] = Field(default_factory=list)
    sitemaps: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    acl_header: str | None = None
    acl_meta: str | None = None
    user_agent: str = Field("CristalBot", min_length=1, max_length=100)
    max_pages: int = Field(1000, ge=1, le=1_000_000)
    max_page_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(5, ge=0, le=20)
    timeout_seconds: float = Field(20.0, gt=0, le=300)

    @field_validator("seeds", "sitemaps")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [check_url(u) for u in urls]

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host or "/" in host or " " in host:
                raise ValueError(f"{host!r} is not a host name (give host or host:port)")
        return [h.lower() for h in hosts]


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return normalize_url(url)


class WebConnector:
    kind = "web"
    settings_model = WebSettings

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        self.settings = WebSettings.model_validate((options or {}).get("config") or {})
        self.seeds = list(dict.fromkeys([normalize_url(uri), *self.settings.seeds]))
        self.allowed = frozenset(self.settings.allowed_hosts or {host_key(s) for s in self.seeds})
        self.acl = acl
        self.map = PrincipalMap(self.settings.principals)
        self.scope = ScanScope()
        self.previous: dict[str, dict] = {}
        self._spool: IO[bytes] | None = None
        self._headers: dict[str, str] = {}

    @staticmethod
    def validate(uri: str) -> str:
        try:
            return check_url(uri)
        except ValueError as exc:
            raise InvalidInput(f"invalid web source: {exc}") from None

    def remember(self, previous: dict[str, dict]) -> None:
        self.previous = previous

    def scan(self) -> Iterator[Item | ScanProblem]:
        s = self.settings
        try:
            headers = env_headers(s.headers_from_env)
        except MissingCredential as exc:
            yield unreachable(self.scope, self.seeds[0], str(exc))
            return
        headers["User-Agent"] = s.user_agent
        self._headers = headers
        fetcher = self.fetcher()
        self._spool = tempfile.TemporaryFile(prefix="cristal-web-")
        try:
            yield from _Crawl(self, fetcher).run()
        finally:
            fetcher.close()
        yield from self.map.problems()

    def fetcher(self) -> Fetcher:
        s = self.settings
        limits = FetchLimits(max_bytes=s.max_page_bytes, max_redirects=s.max_redirects, timeout_seconds=s.timeout_seconds)
        return Fetcher(self.allowed, self._headers, limits)

    def spool(self, body: bytes) -> Callable[[], bytes]:
        """Keep a body on disk until the sync reads it (a crawl's pages are not all held in memory)."""
        assert self._spool is not None
        spool = self._spool
        spool.seek(0, 2)
        offset = spool.tell()
        spool.write(body)

        def read() -> bytes:
            spool.seek(offset)
            return spool.read(len(body))

        return read


class _Robots(RobotFileParser):
    """The standard parser, declaring the two flags its own ``read()`` sets (its type stubs leave them out)."""

    disallow_all: bool
    allow_all: bool


class _Crawl:
    """One crawl: robots rules per host, a breadth-first frontier, one item or problem per page."""

    def __init__(self, connector: WebConnector, fetcher: Fetcher) -> None:
        self.c = connector
        self.s = connector.settings
        self.fetcher = fetcher
        self.robots: dict[str, RobotFileParser | None] = {}
        self.frontier: deque[str] = deque()
        self.queued: set[str] = set()
        self.problems: list[ScanProblem] = []
        self.visited: set[str] = set()
        self.sitemaps_read = 0

    def queue(self, url: str) -> None:
        url = normalize_url(url)
        if url in self.queued or not host_allowed(url, self.c.allowed):
            return
        if len(self.queued) >= 10 * self.s.max_pages:
            self.c.scope.complete = False  # links were dropped: what they lead to must not be deleted
            return
        self.queued.add(url)
        self.frontier.append(url)

    def run(self) -> Iterator[Item | ScanProblem]:
        for seed in self.c.seeds:
            self.queue(seed)
        for sitemap in self.s.sitemaps:
            yield from self.sitemap(sitemap)
        pages = 0
        while self.frontier:
            url = self.frontier.popleft()
            if not self.allowed_by_robots(url):
                yield from self.drain()
                continue
            yield from self.drain()
            if pages >= self.s.max_pages:
                self.c.scope.complete = False
                yield ScanProblem(url, f"crawl stopped after {self.s.max_pages} pages (max_pages); "
                                       f"{len(self.frontier) + 1} pages not visited, nothing deleted")
                return
            pages += 1
            yield from self.page(url)

    def drain(self) -> Iterator[ScanProblem]:
        yield from self.problems
        self.problems.clear()

    def allowed_by_robots(self, url: str) -> bool:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        if origin not in self.robots:
            self.robots[origin] = self.read_robots(origin)
        rules = self.robots[origin]
        return rules is not None and rules.can_fetch(self.s.user_agent, url)

    def read_robots(self, origin: str) -> RobotFileParser | None:
        rules = _Robots(origin + "/robots.txt")
        try:
            got = self.fetcher.get(origin + "/robots.txt", max_bytes=512 * 1024)
        except FetchRefused as exc:
            self.robots_unreadable(origin, str(exc))
            return None
        if got.status in (401, 403):
            rules.disallow_all = True
        elif got.status >= 500:
            self.robots_unreadable(origin, f"HTTP {got.status}")
            return None
        elif got.status == 200:
            rules.parse(got.body.decode("utf-8", "replace").splitlines())
            for sitemap in rules.site_maps() or []:
                self.problems.extend(self.sitemap(sitemap))
        else:
            rules.allow_all = True  # no robots.txt: everything may be crawled
        return rules

    def robots_unreadable(self, origin: str, reason: str) -> None:
        # Like a server error on the pages themselves: nothing of this host is crawled or deleted this time.
        self.c.scope.unseen_prefixes.append(origin + "/")
        self.problems.append(ScanProblem(origin + "/robots.txt", f"robots.txt unreadable ({reason}); host not crawled"))

    def sitemap(self, url: str, depth: int = 0) -> Iterator[ScanProblem]:
        """Queue a sitemap's pages (a sitemap index's sitemaps too, two levels deep at most)."""
        if depth > 2 or self.sitemaps_read >= MAX_SITEMAP_FILES:
            return
        self.sitemaps_read += 1
        try:
            got = self.fetcher.get(normalize_url(url))
        except FetchRefused as exc:
            self.c.scope.complete = False
            yield ScanProblem(url, f"sitemap not read: {exc}")
            return
        if got.status != 200:
            self.c.scope.complete = False
            yield ScanProblem(url, f"sitemap not read: HTTP {got.status}")
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # lenient on purpose: sitemaps in the wild are often not valid XML
            soup = BeautifulSoup(got.body, "html.parser")
        nested = [loc.get_text(strip=True) for s in soup.find_all("sitemap") for loc in s.find_all("loc")]
        if nested:
            for child in nested[:MAX_SITEMAP_FILES]:
                yield from self.sitemap(child, depth + 1)
            return
        for loc in soup.find_all("loc"):
            self.queue(loc.get_text(strip=True))

    def page(self, url: str) -> Iterator[Item | ScanProblem]:
        previous = self.c.previous.get(url, {})
        conditional = {}
        if previous.get("etag"):
            conditional["If-None-Match"] = previous["etag"]
        if previous.get("last_modified"):
            conditional["If-Modified-Since"] = previous["last_modified"]
        try:
            got = self.fetcher.get(url, conditional)
            acl_missing = self.s.acl_header and self.s.acl_header.lower() not in {k.lower() for k in got.headers}
            if got.status == 304 and (acl_missing or not previous.get("fingerprint")):
                got = self.fetcher.get(url)  # a 304 without the access header cannot say whether access changed
        except FetchRefused as exc:
            yield ScanProblem(url, str(exc))
            self.follow(url, json.loads(previous.get("links", "[]")))
            return
        if got.url in self.visited:
            return  # redirected to a page this crawl already has
        self.visited.add(got.url)
        self.queued.add(got.url)
        if got.status == 304:
            yield from self.unchanged(got, previous)
        elif got.status == 200:
            yield from self.fresh(got)
        elif 400 <= got.status < 500 and got.status not in (401, 403, 408, 429):
            return  # gone: not listed, so an indexed version is deleted
        else:
            yield ScanProblem(url, f"HTTP {got.status}")
            self.follow(url, json.loads(previous.get("links", "[]")))

    def follow(self, base: str, links: list[str]) -> None:
        for link in links[:MAX_LINKS_PER_PAGE]:
            self.queue(urljoin(base, link))

    def unchanged(self, got: Fetched, previous: dict) -> Iterator[Item]:
        links = json.loads(previous.get("links", "[]"))
        if previous.get("nofollow") != "1":
            self.follow(got.url, links)
        principals = self.header_principals(got)
        if principals is None and previous.get("principals"):
            principals = json.loads(previous["principals"])
        url = got.url
        yield Item(
            external_id=url, uri=url, filename=previous.get("filename", "page.html"),
            acl=self.acl_for(principals), fingerprint=previous["fingerprint"],
            read=lambda: self.refetch(url), meta=previous_meta(previous),
        )

    def refetch(self, url: str) -> bytes:
        """The body of a page answered 304, for the rare sync that must re-parse it (new pipeline or options)."""
        fetcher = self.c.fetcher()  # the crawl's client is closed by the time the sync reads
        try:
            got = fetcher.get(url)
        except FetchRefused as exc:
            raise OSError(str(exc)) from None
        finally:
            fetcher.close()
        if got.status != 200:
            raise OSError(f"HTTP {got.status}")
        return got.body

    def fresh(self, got: Fetched) -> Iterator[Item]:
        suffix = _TYPES.get(got.content_type)
        path = PurePosixPath(urlsplit(got.url).path)
        if suffix is None and got.content_type in ("", "application/octet-stream") and path.suffix.lower() in _TYPES.values():
            suffix = path.suffix.lower()
        if suffix is None:
            return  # images, scripts, archives: not documents
        principals = self.header_principals(got)
        links: list[str] = []
        robots_meta = ""
        if suffix == ".html":
            soup = BeautifulSoup(got.body, "html.parser")
            # content and href are single-valued attributes: str() only tells the type checker so
            robots_meta = " ".join(str(m.get("content", "")) for m in soup.find_all("meta", attrs={"name": "robots"})).lower()
            base = soup.find("base", href=True)
            base_url = urljoin(got.url, str(base["href"])) if base else got.url
            links = [urljoin(base_url, str(a["href"])) for a in soup.find_all("a", href=True)][:MAX_LINKS_PER_PAGE]
            links = list(dict.fromkeys(normalize_url(u) for u in links if urlsplit(u).scheme in ("http", "https")))
            if principals is None and self.s.acl_meta:
                tag = soup.find("meta", attrs={"name": self.s.acl_meta})
                if tag is not None:
                    principals = _split(str(tag.get("content", "")))
        nofollow = "nofollow" in robots_meta or "none" in robots_meta
        if not nofollow:
            self.follow(got.url, links)
        if "noindex" in robots_meta or "none" in robots_meta:
            return
        name = path.name or "index"
        filename = name if name.lower().endswith(suffix) else f"{name}{suffix}"
        meta = {
            "fingerprint": "sha256:" + hashlib.sha256(got.body).hexdigest(),
            "filename": filename,
            "links": json.dumps(links),
            "nofollow": "1" if nofollow else "0",
        }
        if got.headers.get("etag"):
            meta["etag"] = got.headers["etag"]
        if got.headers.get("last-modified"):
            meta["last_modified"] = got.headers["last-modified"]
        if principals is not None:
            meta["principals"] = json.dumps(principals)
        yield Item(
            external_id=got.url, uri=got.url, filename=filename, acl=self.acl_for(principals),
            mtime=_timestamp(got.headers.get("last-modified")), size=len(got.body),
            read=self.c.spool(got.body), fingerprint=meta["fingerprint"], meta=meta,
        )

    def header_principals(self, got: Fetched) -> list[str] | None:
        if not self.s.acl_header or self.s.acl_header not in got.headers:
            return None
        return _split(got.headers[self.s.acl_header])

    def acl_for(self, principals: list[str] | None) -> tuple[str, ...] | None:
        return self.c.acl if principals is None else self.c.map.rules(principals)


def previous_meta(previous: dict) -> dict[str, str]:
    return {k: str(v) for k, v in previous.items() if k in ("fingerprint", "filename", "links", "nofollow", "etag",
                                                            "last_modified", "principals")}


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
