"""``http``: one HTTP request (redirects followed), as the acting person, within the network policy.

Every hop — the first request and each redirect — passes ``cristal.net.policy``:
http(s) only, the organization's domain allow-list if it has one, and no
internal address (loopback, private, link-local, ...) unless the installation
allows them (``CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE``) or the organization's
list names the host. The connection is pinned to the checked addresses, no
proxy variable is used, and credentials are not handed to another site. The
request carries ``Idempotency-Key``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import Any, Literal

from pydantic import Field, field_validator

from cristal.actions.base import MAX_OUTPUT_BYTES, Action, ActionContext, ActionError, Spec, jsonable
from cristal.identity.authorize import require
from cristal.net.policy import InternalAddress, NetRefused, Target, check_url, org_domains, pinned_connect

DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 10
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


class HttpSpec(Spec):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    expect: list[int] | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


def _target(step_id: str, url: str, org_list: tuple[str, ...] | None, allow_private: bool) -> Target:
    try:
        return check_url(url, org_list, allow_internal=allow_private)
    except InternalAddress as exc:
        raise ActionError(f"http step {step_id!r}: {exc}; allow it with "
                          "CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE or the organization's allow-list") from None
    except NetRefused as exc:
        raise ActionError(f"http step {step_id!r}: {exc}", retriable=exc.retriable) from None


def _once(step_id: str, url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float,
          org_list: tuple[str, ...] | None, allow_private: bool) -> tuple[int, bytes, str, str | None]:
    """One request, checked and pinned: (status, body, content type, Location)."""
    target = _target(step_id, url, org_list, allow_private)
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    conn._create_connection = pinned_connect(target.addresses)  # type: ignore[attr-defined]  # http.client's hook for dialing
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        body = b"" if method == "HEAD" else response.read(MAX_OUTPUT_BYTES + 1)
        return response.status, body, response.headers.get("Content-Type", ""), response.headers.get("Location")
    finally:
        conn.close()


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    with ctx.db.session() as s:
        require(s, ctx.principal, "workflow.http", ctx.resource("url", spec["url"][:400]), request_id=ctx.key,
                details={"method": spec["method"], "workflow_step": ctx.key})
        org_list = org_domains(s, ctx.org_id)
    url = spec["url"]
    if not url.startswith(("http://", "https://")):
        raise ActionError(f"invalid url {url!r}: use http:// or https://")
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    headers["Idempotency-Key"] = ctx.key
    data = None
    if spec.get("json") is not None:
        data = json.dumps(jsonable(spec["json"])).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif spec.get("body") is not None:
        data = str(spec["body"]).encode("utf-8")
    expect = spec.get("expect")
    method = spec["method"]
    timeout = ctx.timeout or DEFAULT_TIMEOUT
    allow_private = ctx.settings.workflow_http_allow_private
    # Redirects are followed here, not by a client library, so every hop passes the same
    # address and allow-list checks as the first (a public URL may redirect to 169.254.169.254).
    # Requests go straight to the checked address: HTTP(S)_PROXY variables are not used.
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            status, body, ctype, location = _once(ctx.step_id, current, method, headers, data, timeout, org_list, allow_private)
        except (http.client.HTTPException, OSError) as exc:  # refused, reset, timed out, TLS
            raise ActionError(f"{method} {current} failed: {str(exc) or type(exc).__name__}", retriable=True) from None
        # The same redirects urllib followed: GET/HEAD on any redirect, POST turned into a GET on
        # 301/302/303; others are answered as they are.
        if status not in _REDIRECT_CODES or not location or not (
                method in ("GET", "HEAD") or (method == "POST" and status in (301, 302, 303))):
            break
        following = urllib.parse.urljoin(current, location.strip())
        if method == "POST":
            method, data = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
        if urllib.parse.urlsplit(following)[:2] != urllib.parse.urlsplit(current)[:2]:
            # Credentials meant for one site are not handed to the next one.
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        current = following
    else:
        raise ActionError(f"{spec['method']} {url} redirected more than {MAX_REDIRECTS} times")
    ok = status in expect if expect else 200 <= status < 300
    if len(body) > MAX_OUTPUT_BYTES:
        raise ActionError(f"{spec['method']} {url} answered more than {MAX_OUTPUT_BYTES:,} bytes")
    text_body = body.decode("utf-8", errors="replace")
    if not ok:
        retriable = status >= 500 or status in (408, 429)
        raise ActionError(f"{spec['method']} {url} answered HTTP {status}: {text_body[:200]}", retriable=retriable)
    payload: Any = text_body
    if "json" in ctype and text_body.strip():
        try:
            payload = json.loads(text_body)
        except json.JSONDecodeError:
            payload = text_body
    return {"status": status, "body": payload}


ACTIONS = (Action(
    name="http", spec=HttpSpec, effect="write", run=run, limit="http",
    description="Send one HTTP request (redirects followed) to a public address or a host on the organization's "
                "allow-list; returns the status and the body (JSON when the answer is JSON).",
),)
