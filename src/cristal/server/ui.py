"""The web UI at ``/``: one self-contained page (no CDN, works offline) that talks to the REST API.

Sign-in is pasting an API key, kept in the tab's ``sessionStorage`` and sent
as a Bearer token; the page itself holds no data, so serving it needs no key.
Its inline script and style are allowed by their SHA-256 in the Content
Security Policy, so nothing else can run on the page even if some text from
a document slipped into it (the script inserts every value as text anyway).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cristal.server.state import state_of

router = APIRouter(include_in_schema=False)


def _digest(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


def page() -> tuple[str, str]:
    """The page and its Content-Security-Policy (read from the package; the server keeps the result)."""
    html = resources.files("cristal.server").joinpath("ui.html").read_text(encoding="utf-8")
    scripts = " ".join(_digest(b) for b in re.findall(r"<script>(.*?)</script>", html, re.DOTALL))
    styles = " ".join(_digest(b) for b in re.findall(r"<style>(.*?)</style>", html, re.DOTALL))
    csp = (f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; "
           "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    html, csp = state_of(request).ui_page(page)
    return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})


@router.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for it on every visit; an empty answer keeps the server log and the console clean.
    return Response(status_code=204)
