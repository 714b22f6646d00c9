"""The web UI at ``/``: one self-contained page (no CDN, works offline) that talks to the REST API.

Sign-in is the company's OpenID Connect provider (a session cookie) or a
pasted API key, kept in the tab's ``sessionStorage`` and sent as a Bearer
token; the page itself holds no data, so serving it needs no key. It is
assembled once per server from ``ui.html``, its scripts (``ui_*.js``, each
inlined where ``ui.html`` says ``/*@include NAME*/``) and the interface's
catalogues in English, Japanese and German (``ui_catalogues.json``, inlined
as a JSON data block). Its inline scripts and style are allowed by their
SHA-256 in the Content Security Policy, so nothing else can run on the page
even if some text from a document or a model slipped into it (the scripts
build every node with text, never HTML).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cristal.server.state import state_of

router = APIRouter(include_in_schema=False)


def _digest(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


LOCALES = ("en", "ja", "de")


def _asset(name: str) -> str:
    return resources.files("cristal.server").joinpath(name).read_text(encoding="utf-8")


def catalogues() -> dict[str, dict[str, str]]:
    """Every string of the interface, by locale (``en``, ``ja``, ``de``), then by key."""
    doc: dict[str, dict[str, str]] = json.loads(_asset("ui_catalogues.json"))
    return doc


def page() -> tuple[str, str]:
    """The page and its Content-Security-Policy (read from the package; the server keeps the result)."""
    html = re.sub(r"/\*@include (ui_\w+\.js)\*/", lambda m: _asset(m.group(1)), _asset("ui.html"))
    # "</" could end the data block early; JSON allows "<\/" for it.
    data = json.dumps(catalogues(), ensure_ascii=False).replace("</", "<\\/")
    html = html.replace("/*@catalogues*/", data)
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
