"""What every page of the sample apps works with: the request, the response, the session, pagination, redirects.

``server`` (the routes and the HTTP handler) and ``workspace`` (the document and mail pages) both import
these, so neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

PAGE_SIZE = 10


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    form_lists: dict[str, list[str]] = field(default_factory=dict)  # every value of each field (a <select multiple>)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (file name, content) of a multipart form


@dataclass
class Response:
    status: int
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


@dataclass
class Session:
    org: str
    email: str
    name: str
    flash: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``links`` are (number, url) for the pagination control."""

    number: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None
    links: list[tuple[int, str]]

    @property
    def offset(self) -> int:
        return (self.number - 1) * PAGE_SIZE


def paginate(total: int, requested: str, base: str, params: dict[str, str]) -> Page:
    """Clamp the requested page into range and build the page links, keeping the other query parameters."""
    pages = max(1, math.ceil(total / PAGE_SIZE))
    number = int(requested) if requested.isdigit() else 1
    number = min(max(number, 1), pages)

    def url(n: int) -> str:
        return base + "?" + urlencode({**{k: v for k, v in params.items() if v}, "page": n})

    return Page(number, pages, total, url(number - 1) if number > 1 else None,
                url(number + 1) if number < pages else None, [(n, url(n)) for n in range(1, pages + 1)])


def redirect(location: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(303, "", [("Location", location), *(headers or [])])
