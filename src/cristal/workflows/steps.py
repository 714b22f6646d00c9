"""What each step kind does, as the run's owner.

Every action re-resolves the owner (so a group change applies to the next
step), authorizes the step's action (audited), does the work, and returns a
JSON-able output no larger than ``MAX_OUTPUT_BYTES``. Side-effecting kinds get
the step's idempotency key ``run_id:step_id[:item_index]``: ``http`` sends it
as the ``Idempotency-Key`` header, ``python`` passes it as the
``idempotency_key`` keyword (or inside a ``context`` object) to functions
that ask for it, ``llm`` uses it as the gateway's request id.
"""

from __future__ import annotations

import http.client
import importlib
import inspect
import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Callable

from cristal.config import Settings
from cristal.db import Database
from cristal.durable.store import run_owner as owner  # the run's owner as of now (a removed user fails the step)
from cristal.errors import AccessDenied, CristalError, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org
from cristal.identity.resource import Resource

MAX_OUTPUT_BYTES = 1024 * 1024
HTTP_DEFAULT_TIMEOUT = 30.0


class StepError(CristalError):
    """A step failed; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (StepError, (self.message, self.retriable))


@dataclass(frozen=True)
class StepContext:
    """What a python step may learn about where it runs (pass a ``context`` parameter to receive it)."""

    run_id: str
    step_id: str
    item_index: int | None
    idempotency_key: str
    org: str
    owner: str


@dataclass(frozen=True)
class Meta:
    run_id: str
    step_id: str
    item_index: int | None
    org_id: int
    owner_email: str
    timeout: float | None

    @property
    def key(self) -> str:
        base = f"{self.run_id}:{self.step_id}"
        return base if self.item_index is None else f"{base}:{self.item_index}"


def python_refusal(settings: Settings, module: str) -> str | None:
    """Why a ``python`` step may not call functions of ``module`` (``None``: it may).

    Nothing is allowed by default: an installation lists its modules in
    ``workflow_python_modules`` (``CRISTAL_WORKFLOW_PYTHON_MODULES``).
    """
    if settings.python_module_allowed(module):
        return None
    allowed = ", ".join(settings.workflow_python_modules)
    listed = f"this installation allows {allowed}" if allowed else "this installation allows none"
    return (f"python module {module!r} is not allowed in workflows ({listed}; "
            "an administrator lists modules in CRISTAL_WORKFLOW_PYTHON_MODULES)")


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        raise StepError(f"output contains {len(value)} bytes of binary data; return text or base64")
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    raise StepError(f"output contains a {type(value).__name__}, which is not JSON")


def check_size(step_id: str, value: Any) -> Any:
    value = jsonable(value)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_OUTPUT_BYTES:
        raise StepError(f"step {step_id!r} output is {size:,} bytes of JSON, above the {MAX_OUTPUT_BYTES:,}-byte limit; "
                        "return less (e.g. select fewer rows or columns)")
    return value


def with_timeout(seconds: float | None, label: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; past ``seconds`` the step fails (the abandoned thread finishes on its own)."""
    if seconds is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"cristal-step-{label}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise StepError(f"timed out after {seconds:g}s", retriable=True)
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------------------
# The kinds


def run_sql(db: Database, meta: Meta, spec: dict[str, Any]) -> Any:
    from cristal.knowledge.connectors.sql import QueryTimedOut, query_readonly
    from cristal.knowledge.sources import source_by_name

    with db.session() as s:
        org, principal = owner(s, meta.org_id, meta.owner_email)
        try:
            source = source_by_name(s, org.id, spec["source"])
        except NotFound:
            raise StepError(f"unknown source {spec['source']!r} in organization {org.slug!r}") from None
        resource = Resource(kind="source", org_id=org.id, id=source.name, acl=tuple(source.acl) if source.acl else None, org_slug=org.slug)
        require(s, principal, "source.query", resource, request_id=meta.key, details={"workflow_step": meta.key})
        uri, kind = source.uri, source.kind
    if kind != "sql":
        raise StepError(f"source {spec['source']!r} is a {kind} source, not a database")
    max_rows = int(spec.get("max_rows") or 10_000)
    try:
        found = query_readonly(uri, spec["query"], spec.get("params") or {}, max_rows=max_rows, timeout=meta.timeout)
    except QueryTimedOut as exc:
        raise StepError(str(exc), retriable=True) from None
    except CristalError as exc:  # refused by the parser, the database or the authorizer
        raise StepError(str(exc)) from None
    if found.more:
        raise StepError(f"query returned more than max_rows={max_rows} rows; narrow it or raise max_rows")
    return found.rows


HTTP_MAX_REDIRECTS = 10
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


def _address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a workflow may not reach ``ip`` by default (``None``: a public address)."""
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


def _resolve(step_id: str, host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses of ``host``, each checked; the connection goes to these, never to a second lookup."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"http step {step_id!r}: cannot resolve {host}: {exc}", retriable=True) from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not allow_private:
        # Any private answer refuses the host: a name that mixes public and internal
        # addresses is not one a workflow should reach.
        for address in addresses:
            kind = _address_kind(ipaddress.ip_address(address))
            if kind:
                shown = address if address == host else f"{host} ({address})"
                raise StepError(f"http step {step_id!r}: {shown} is {kind} address; allow it with "
                                "CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE or the organization's allow-list")
    return addresses


def _pinned(addresses: list[str]) -> Callable[..., socket.socket]:
    """A ``create_connection`` that ignores the host name and dials the checked addresses.

    ``http.client`` still sends the name in ``Host`` and, for https, in SNI and the certificate
    check; only the TCP connection is pinned, so DNS cannot answer differently (rebinding) between
    the check and the connection.
    """
    def connect(address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
                source_address: Any = None) -> socket.socket:
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError("no address")
    return connect


def _check_hop(step_id: str, url: str, org_list: tuple[str, ...] | None, allow_private: bool) -> tuple[str, str, int, list[str]]:
    """Scheme, host, port and checked addresses of one request (the first or a redirect)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise StepError(f"http step {step_id!r}: invalid url {url[:200]!r}: use http:// or https://")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise StepError(f"http step {step_id!r}: invalid port in {url[:200]!r}") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise StepError(f"http step {step_id!r}: no host in {url[:200]!r}")
    if org_list is not None:
        from cristal.operator.safety import AllowList

        if not AllowList(org_list).allows(url):
            raise StepError(f"http step {step_id!r}: {host} is not in the organization's allowed domains "
                            f"({', '.join(org_list) or 'none'})")
    # An organization allow-list names hosts an admin chose, internal ones included; without one,
    # only the process-wide setting lets steps reach internal addresses.
    return scheme, host, port, _resolve(step_id, host, port, allow_private or org_list is not None)


def _http_once(step_id: str, url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float,
               org_list: tuple[str, ...] | None, allow_private: bool) -> tuple[int, bytes, str, str | None]:
    """One request, checked and pinned: (status, body, content type, Location)."""
    scheme, host, port, addresses = _check_hop(step_id, url, org_list, allow_private)
    parts = urllib.parse.urlsplit(url)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = _pinned(addresses)  # type: ignore[attr-defined]
    try:
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
        body = b"" if method == "HEAD" else response.read(MAX_OUTPUT_BYTES + 1)
        return response.status, body, response.headers.get("Content-Type", ""), response.headers.get("Location")
    finally:
        conn.close()


def run_http(db: Database, settings: Settings, meta: Meta, spec: dict[str, Any]) -> Any:
    from cristal.operator.policy import org_domains

    with db.session() as s:
        org, principal = owner(s, meta.org_id, meta.owner_email)
        require(s, principal, "workflow.http", in_org(org, "url", spec["url"][:400]), request_id=meta.key,
                details={"method": spec["method"], "workflow_step": meta.key})
        org_list = org_domains(s, org.id)
    url = spec["url"]
    if not url.startswith(("http://", "https://")):
        raise StepError(f"invalid url {url!r}: use http:// or https://")
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    headers["Idempotency-Key"] = meta.key
    data = None
    if spec.get("json") is not None:
        data = json.dumps(jsonable(spec["json"])).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif spec.get("body") is not None:
        data = str(spec["body"]).encode("utf-8")
    expect = spec.get("expect")
    method = spec["method"]
    timeout = meta.timeout or HTTP_DEFAULT_TIMEOUT
    allow_private = settings.workflow_http_allow_private
    # Redirects are followed here, not by a client library, so every hop passes the same
    # address and allow-list checks as the first (a public URL may redirect to 169.254.169.254).
    # Requests go straight to the checked address: HTTP(S)_PROXY variables are not used.
    current = url
    for _hop in range(HTTP_MAX_REDIRECTS + 1):
        try:
            status, body, ctype, location = _http_once(meta.step_id, current, method, headers, data, timeout,
                                                       org_list, allow_private)
        except (http.client.HTTPException, OSError) as exc:  # refused, reset, timed out, TLS
            raise StepError(f"{method} {current} failed: {str(exc) or type(exc).__name__}", retriable=True) from None
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
        raise StepError(f"{spec['method']} {url} redirected more than {HTTP_MAX_REDIRECTS} times")
    ok = status in expect if expect else 200 <= status < 300
    if len(body) > MAX_OUTPUT_BYTES:
        raise StepError(f"{spec['method']} {url} answered more than {MAX_OUTPUT_BYTES:,} bytes")
    text_body = body.decode("utf-8", errors="replace")
    if not ok:
        retriable = status >= 500 or status in (408, 429)
        raise StepError(f"{spec['method']} {url} answered HTTP {status}: {text_body[:200]}", retriable=retriable)
    payload: Any = text_body
    if "json" in ctype and text_body.strip():
        try:
            payload = json.loads(text_body)
        except json.JSONDecodeError:
            payload = text_body
    return {"status": status, "body": payload}


def _import(settings: Settings, call: str) -> Callable[..., Any]:
    module_name, _, func_name = call.partition(":")
    refusal = python_refusal(settings, module_name)
    if refusal is not None:  # checked again here: a queued run may predate a change of the setting
        raise StepError(refusal)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StepError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise StepError(f"{call!r} is not a function")
    return fn


def run_python(db: Database, settings: Settings, meta: Meta, spec: dict[str, Any]) -> Any:
    with db.session() as s:
        org, principal = owner(s, meta.org_id, meta.owner_email)
        require(s, principal, "workflow.python", in_org(org, "function", spec["call"]), request_id=meta.key,
                details={"workflow_step": meta.key})
    fn = _import(settings, spec["call"])
    kwargs = dict(spec.get("args") or {})
    params = inspect.signature(fn).parameters
    if "idempotency_key" in params:
        kwargs["idempotency_key"] = meta.key
    if "context" in params:
        kwargs["context"] = StepContext(meta.run_id, meta.step_id, meta.item_index, meta.key, org.slug, principal.name)
    try:
        return with_timeout(meta.timeout, meta.key, lambda: fn(**kwargs))
    except (StepError, CristalError):
        raise
    except TypeError as exc:
        raise StepError(f"{spec['call']}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the function's failure is the step's failure
        raise StepError(f"{spec['call']} raised {type(exc).__name__}: {exc}", retriable=True) from None


def run_llm(db: Database, settings: Settings, meta: Meta, spec: dict[str, Any]) -> Any:
    from cristal.models.gateway import Gateway

    with db.session() as s:
        _org, principal = owner(s, meta.org_id, meta.owner_email)
    messages = []
    if spec.get("system"):
        messages.append({"role": "system", "content": str(spec["system"])})
    messages.append({"role": "user", "content": str(spec["prompt"])})
    with Gateway(settings, db) as gateway:  # authorizes "llm.call" (audited) and meters the call
        return with_timeout(meta.timeout, meta.key, lambda: gateway.structured(
            principal, messages, spec["schema"], model=spec.get("model"), request_id=meta.key))


def run_research_step(db: Database, settings: Settings, meta: Meta, spec: dict[str, Any]) -> Any:
    """Deep Research as the run's owner; the report and its citations are the output.

    The notes' checkpoint id is the one `cristal research` pinned (set by code,
    never by workflow text) or derived from the organization and the step's
    idempotency key, so if the process dies mid-step and the engine runs the
    step again (a worker taking over, or ``cristal research --resume``), the
    research resumes from its checkpoint in the database instead of starting
    over. Notes that belong to someone else are never resumed: the step takes
    the next derived id and starts fresh. A foreground ``cristal research`` in
    this process receives the progress of its run.
    """
    from cristal.research.durable import claim_checkpoint, progress_for
    from cristal.research.run import Budget, run_research
    from cristal.research.store import CheckpointStore

    with db.session() as s:
        _org, principal = owner(s, meta.org_id, meta.owner_email)
    store = CheckpointStore(db)
    run_id = claim_checkpoint(store, meta.org_id, principal.label, meta.key, spec.get("checkpoint"))
    budget = Budget(max_steps=spec["max_steps"], max_tokens=spec.get("max_tokens", 60_000), max_seconds=spec["max_seconds"])
    resumable = store.exists(run_id)
    result = with_timeout(meta.timeout, meta.key, lambda: run_research(
        db, principal, None if resumable else str(spec["question"]), settings=settings, mode=spec["mode"],
        lang=spec.get("lang"), budget=budget, resume=run_id if resumable else None, run_id=None if resumable else run_id,
        store=store, progress=progress_for(meta.run_id), workflow_run_id=meta.run_id))
    doc = result.as_dict()
    if doc.get("status") == "partial":
        raise StepError(f"research stopped early: {doc.get('error')}", retriable=True)
    return {k: doc.get(k) for k in ("run_id", "research_id", "status", "mode", "lang", "report", "citations", "disagreements")}


def run_operate_step(db: Database, settings: Settings, meta: Meta, spec: dict[str, Any]) -> Any:
    """An Operator task in a real browser as the run's owner; the run's result is the output.

    Irreversible-looking actions wait, browser open, for an approval in
    ``workflow_approvals`` (one per action). A browser session cannot survive a
    crash, so a step that runs again after one fails as interrupted instead of
    repeating actions (see ``cristal.operator.workflow``).
    """
    from cristal.operator.workflow import operate

    with db.session() as s:
        _org, principal = owner(s, meta.org_id, meta.owner_email)
    return operate(db, settings, meta, principal, spec)


def perform(db: Database, settings: Settings, kind: str, meta: Meta, spec: dict[str, Any]) -> Any:
    if kind == "sql":
        return run_sql(db, meta, spec)
    if kind == "http":
        return run_http(db, settings, meta, spec)
    if kind == "python":
        return run_python(db, settings, meta, spec)
    if kind == "llm":
        return run_llm(db, settings, meta, spec)
    if kind == "research":
        return run_research_step(db, settings, meta, spec)
    if kind == "operate":
        return run_operate_step(db, settings, meta, spec)
    raise StepError(f"step kind {kind!r} cannot run here")


NOT_RETRIED = (AccessDenied,)
