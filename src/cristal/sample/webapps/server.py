"""The Aozora internal web apps (Expenses and Customers), served with the standard library.

One :class:`Apps` object holds the routes and the in-memory sessions; :func:`serve_webapps`
runs it on loopback in a background thread. Pages are server-rendered HTML (Jinja2 with
autoescaping) without external resources; the only script is a nonce-protected snippet that
opens and closes the ``<dialog>`` confirmations.

Routes (every page except ``/login`` requires a session cookie; the data shown is that of
the signed-in employee's organization only, and anything else answers 404):

====== ============================== ==================================================
GET    /                              links to both apps
GET    /login?next=PATH               sign-in form (e-mail address only)
POST   /login                         start a session, then redirect to ``next``
POST   /logout                        end the session
GET    /expenses/?status=&page=       the employee's claims, 10 a page, status filter
GET    /expenses/new                  new-claim form
POST   /expenses/new                  create a draft claim (422 with errors if invalid)
GET    /expenses/ID                   claim detail, with submit / delete dialogs for drafts
POST   /expenses/ID/submit            draft → pending (irreversible; 409 if not a draft)
POST   /expenses/ID/delete            delete a draft (409 if not a draft)
GET    /customers/?q=&page=           search customers by name, city or street, 10 a page
GET    /customers/ID                  customer detail with its orders
GET    /customers/ID/edit             edit-address form
POST   /customers/ID/edit             save the address (422 with errors if invalid)
====== ============================== ==================================================
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from email import policy as email_policy
from email.parser import BytesParser
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cristal.sample.webapps.forms import validate_address, validate_claim
from cristal.sample.webapps.pages import PAGE_SIZE, Request, Response, Session, paginate, redirect
from cristal.sample.webapps.store import (
    CATEGORIES,
    COUNTRIES,
    CURRENCIES,
    ORG_CURRENCY,
    STATUSES,
    connect,
    now_iso,
    seed_database,
)
from cristal.sample.webapps.workspace import MAX_UPLOAD, WorkspacePages

log = logging.getLogger(__name__)

COOKIE = "aozora_session"
MAX_BODY = 64 * 1024


def money(cents: int, currency: str) -> str:
    """``4250, "EUR"`` → ``"42.50 EUR"``; yen without decimals: ``540000, "JPY"`` → ``"5,400 JPY"``."""
    value = Decimal(cents) / 100
    return f"{value:,.0f} {currency}" if currency == "JPY" else f"{value:,.2f} {currency}"


Handler = Callable[..., Response]


class Apps(WorkspacePages):
    """The request router and pages of the apps, independent of the HTTP server."""

    def __init__(self, db_path: Path, today: Callable[[], date] = date.today) -> None:
        self.db_path = Path(db_path)
        self.today = today
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.env = Environment(
            loader=PackageLoader("cristal.sample.webapps", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["money"] = money
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        for method, pattern, handler, public in (
            ("GET", r"/", self.home, False),
            ("GET", r"/login", self.login_form, True),
            ("POST", r"/login", self.login, True),
            ("POST", r"/logout", self.logout, True),
            ("GET", r"/expenses", lambda r, s: redirect("/expenses/"), False),
            ("GET", r"/expenses/", self.claims_list, False),
            ("GET", r"/expenses/new", self.claim_form, False),
            ("POST", r"/expenses/new", self.claim_create, False),
            ("GET", r"/expenses/(\d+)", self.claim_detail, False),
            ("POST", r"/expenses/(\d+)/submit", self.claim_submit, False),
            ("POST", r"/expenses/(\d+)/delete", self.claim_delete, False),
            ("GET", r"/customers", lambda r, s: redirect("/customers/"), False),
            ("GET", r"/customers/", self.customers_list, False),
            ("GET", r"/customers/(\d+)", self.customer_detail, False),
            ("GET", r"/customers/(\d+)/edit", self.address_form, False),
            ("POST", r"/customers/(\d+)/edit", self.address_save, False),
            ("GET", r"/inbox", lambda r, s: redirect("/inbox/"), False),
            ("GET", r"/travel", lambda r, s: redirect("/travel/"), False),
            ("GET", r"/files", lambda r, s: redirect("/files/"), False),
            *self.workspace_routes(),
        ):
            self.routes.append((method, re.compile(pattern), handler, public))

    # --- sessions ---

    def start_session(self, email: str) -> str | None:
        """A new session token for an employee of the sample company, or ``None`` if unknown."""
        conn = connect(self.db_path)
        try:
            row = conn.execute("SELECT org, email, name FROM employees WHERE lower(email) = lower(?) ORDER BY id",
                               (email.strip(),)).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.sessions[token] = Session(row["org"], row["email"], row["name"])
        return token

    def _session(self, request: Request) -> Session | None:
        with self._lock:
            return self.sessions.get(request.cookies.get(COOKIE, ""))

    # --- dispatch ---

    def handle(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler, public in self.routes:
            m = pattern.fullmatch(request.path)
            if not m:
                continue
            allowed = True
            if method != request.method:
                continue
            session = self._session(request)
            if session is None and not public:
                if request.method == "GET":
                    return redirect("/login?" + urlencode({"next": request.path + _qs(request.query)}))
                return redirect("/login")
            return handler(request, session, *(int(g) for g in m.groups()))
        if allowed:
            return Response(405, "Method not allowed", [("Allow", "GET, POST")])
        return self.error(404, "Page not found", "There is no page at this address.", self._session(request))

    def render(self, template: str, session: Session | None, code: int = 200, **context: object) -> Response:
        nonce = secrets.token_urlsafe(16)
        flash: list[str] = []
        if session is not None:
            with self._lock:
                flash, session.flash = session.flash, []
        body = self.env.get_template(template).render(
            user=session, flash=flash, nonce=nonce, categories=CATEGORIES, statuses=STATUSES,
            currencies=CURRENCIES, countries=COUNTRIES, **context)
        csp = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        return Response(code, body, [("Content-Security-Policy", csp)])

    def error(self, code: int, title: str, message: str, session: Session | None) -> Response:
        return self.render("error.html", session, code, title=title, message=message, app="")

    def not_found(self, session: Session) -> Response:
        return self.error(404, "Not found", "This record does not exist or you may not see it.", session)

    # --- pages: sign-in ---

    def home(self, request: Request, session: Session) -> Response:
        return self.render("home.html", session, title="Aozora internal apps", app="")

    def login_form(self, request: Request, session: Session | None, error: str = "", code: int = 200,
                   email: str = "") -> Response:
        next_path = _safe_next(request.query.get("next") or request.form.get("next", ""))
        return self.render("login.html", None, code, title="Sign in", app="", error=error, email=email,
                           next=next_path)

    def login(self, request: Request, session: Session | None) -> Response:
        email = request.form.get("email", "").strip()
        token = self.start_session(email) if email else None
        if token is None:
            message = "Enter your e-mail address." if not email else "No employee has this e-mail address."
            return self.login_form(request, None, message, 422, email)
        target = _safe_next(request.form.get("next", ""))
        return redirect(target, [("Set-Cookie", f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax")])

    def logout(self, request: Request, session: Session | None) -> Response:
        with self._lock:
            self.sessions.pop(request.cookies.get(COOKIE, ""), None)
        return redirect("/login", [("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")])

    # --- pages: expenses ---

    def claims_list(self, request: Request, session: Session) -> Response:
        status = request.query.get("status", "")
        if status not in STATUSES:
            status = ""
        where, args = "org = ? AND employee_email = ?", [session.org, session.email]
        if status:
            where += " AND status = ?"
            args.append(status)
        conn = connect(self.db_path)
        try:
            total = conn.execute(f"SELECT count(*) FROM claims WHERE {where}", args).fetchone()[0]
            page = paginate(total, request.query.get("page", ""), "/expenses/", {"status": status})
            claims = conn.execute(f"SELECT * FROM claims WHERE {where} ORDER BY date DESC, id DESC LIMIT ? OFFSET ?",
                                  [*args, PAGE_SIZE, page.offset]).fetchall()
        finally:
            conn.close()
        return self.render("claims_list.html", session, title="My expense claims", app="expenses",
                           claims=claims, page=page, status=status)

    def claim_form(self, request: Request, session: Session, values: dict | None = None,
                   errors: dict[str, str] | None = None) -> Response:
        values = values or {"date": "", "category": "", "amount": "", "currency": ORG_CURRENCY.get(session.org, "EUR"),
                            "description": ""}
        return self.render("claim_form.html", session, 422 if errors else 200, title="New expense claim",
                           app="expenses", values=values, errors=errors or {}, today=self.today().isoformat())

    def claim_create(self, request: Request, session: Session) -> Response:
        clean, errors = validate_claim(request.form, self.today())
        if errors:
            values = {k: request.form.get(k, "") for k in ("date", "category", "amount", "currency", "description")}
            return self.claim_form(request, session, values, errors)
        conn = connect(self.db_path)
        try:
            with conn:
                cur = conn.execute(
                    "INSERT INTO claims (org, employee_email, date, category, amount_cents, currency, status,"
                    " description)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'draft', ?)",
                    (session.org, session.email, clean["date"], clean["category"],
                     int(Decimal(str(clean["amount"])) * 100), clean["currency"], clean["description"]))
                claim_id = int(cur.lastrowid or 0)
                _event(conn, session, "claim.created", claim_id)
        finally:
            conn.close()
        self._flash(session, f"Claim {claim_id} was saved as a draft. Submit it for approval when it is complete.")
        return redirect(f"/expenses/{claim_id}")

    def _own_claim(self, conn: sqlite3.Connection, session: Session, claim_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM claims WHERE id = ? AND org = ? AND employee_email = ?",
                                               (claim_id, session.org, session.email)).fetchone()  # connect() sets Row
        return row

    def claim_detail(self, request: Request, session: Session, claim_id: int) -> Response:
        conn = connect(self.db_path)
        try:
            claim = self._own_claim(conn, session, claim_id)
        finally:
            conn.close()
        if claim is None:
            return self.not_found(session)
        return self.render("claim_detail.html", session, title=f"Claim {claim_id}", app="expenses", claim=claim)

    def claim_submit(self, request: Request, session: Session, claim_id: int) -> Response:
        return self._change_draft(session, claim_id, submit=True)

    def claim_delete(self, request: Request, session: Session, claim_id: int) -> Response:
        return self._change_draft(session, claim_id, submit=False)

    def _change_draft(self, session: Session, claim_id: int, *, submit: bool) -> Response:
        """Submit or delete a claim, but only the employee's own draft (checked in the same transaction)."""
        conn = connect(self.db_path)
        try:
            with conn:
                claim = self._own_claim(conn, session, claim_id)
                if claim is None:
                    return self.not_found(session)
                if claim["status"] != "draft":
                    return self.error(409, "Not a draft", f"Claim {claim_id} has already been submitted and can "
                                      "no longer be changed.", session)
                if submit:
                    conn.execute("UPDATE claims SET status = 'pending', submitted_at = ? WHERE id = ?",
                                 (now_iso(), claim_id))
                else:
                    conn.execute("DELETE FROM claims WHERE id = ?", (claim_id,))
                _event(conn, session, "claim.submitted" if submit else "claim.deleted", claim_id)
        finally:
            conn.close()
        if submit:
            self._flash(session, f"Claim {claim_id} was submitted for approval.")
            return redirect(f"/expenses/{claim_id}")
        self._flash(session, f"Draft claim {claim_id} was deleted.")
        return redirect("/expenses/")

    # --- pages: customers ---

    def customers_list(self, request: Request, session: Session) -> Response:
        q = request.query.get("q", "").strip()
        where, args = "org = ?", [session.org]
        if q:  # case-insensitive beyond ASCII (SQLite's LIKE folds only A-Z), wildcards taken literally
            like = "%" + q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where += (" AND (fold(name) LIKE ? ESCAPE '\\' OR fold(city) LIKE ? ESCAPE '\\'"
                      " OR fold(street) LIKE ? ESCAPE '\\')")
            args += [like, like, like]
        conn = connect(self.db_path)
        conn.create_function("fold", 1, str.casefold, deterministic=True)
        try:
            total = conn.execute(f"SELECT count(*) FROM customers WHERE {where}", args).fetchone()[0]
            page = paginate(total, request.query.get("page", ""), "/customers/", {"q": q})
            customers = conn.execute(f"SELECT * FROM customers WHERE {where} ORDER BY name, id LIMIT ? OFFSET ?",
                                     [*args, PAGE_SIZE, page.offset]).fetchall()
        finally:
            conn.close()
        return self.render("customers_list.html", session, title="Customers", app="customers", customers=customers,
                           page=page, q=q)

    def _customer(self, session: Session, customer_id: int) -> tuple[sqlite3.Row | None, list[sqlite3.Row]]:
        conn = connect(self.db_path)
        try:
            customer = conn.execute("SELECT * FROM customers WHERE id = ? AND org = ?",
                                    (customer_id, session.org)).fetchone()
            orders = conn.execute("SELECT * FROM orders WHERE customer_id = ? ORDER BY date, id",
                                  (customer_id,)).fetchall() if customer else []
        finally:
            conn.close()
        return customer, orders

    def customer_detail(self, request: Request, session: Session, customer_id: int) -> Response:
        customer, orders = self._customer(session, customer_id)
        if customer is None:
            return self.not_found(session)
        return self.render("customer_detail.html", session, title=customer["name"], app="customers",
                           customer=customer, orders=orders)

    def address_form(self, request: Request, session: Session, customer_id: int, values: dict | None = None,
                     errors: dict[str, str] | None = None) -> Response:
        customer, _ = self._customer(session, customer_id)
        if customer is None:
            return self.not_found(session)
        values = values or {k: customer[k] for k in ("street", "postal_code", "city", "country")}
        return self.render("address_form.html", session, 422 if errors else 200,
                           title=f"Edit address of {customer['name']}", app="customers", customer=customer,
                           values=values, errors=errors or {})

    def address_save(self, request: Request, session: Session, customer_id: int) -> Response:
        customer, _ = self._customer(session, customer_id)
        if customer is None:
            return self.not_found(session)
        clean, errors = validate_address(request.form)
        if errors:
            return self.address_form(request, session, customer_id, clean, errors)
        conn = connect(self.db_path)
        try:
            with conn:
                conn.execute("UPDATE customers SET street = ?, postal_code = ?, city = ?, country = ?"
                             " WHERE id = ? AND org = ?",
                             (clean["street"], clean["postal_code"], clean["city"], clean["country"],
                              customer_id, session.org))
                _event(conn, session, "customer.address_updated", customer_id)
        finally:
            conn.close()
        self._flash(session, f"The address of {customer['name']} was saved.")
        return redirect(f"/customers/{customer_id}")

    def _flash(self, session: Session, message: str) -> None:
        with self._lock:
            session.flash.append(message)


def _event(conn: sqlite3.Connection, session: Session, action: str, target: int) -> None:
    conn.execute("INSERT INTO events (at, org, actor, action, target) VALUES (?, ?, ?, ?, ?)",
                 (now_iso(), session.org, session.email, action, target))


def _qs(query: dict[str, str]) -> str:
    return "?" + urlencode(query) if query else ""


def _safe_next(path: str) -> str:
    """Only local paths are allowed after sign-in (no open redirect)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


# --- HTTP server ---


def _handler_class(apps: Apps) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "AozoraApps/1.0"

        def do_GET(self) -> None:  # http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            form: dict[str, str] = {}
            lists: dict[str, list[str]] = {}
            files: dict[str, tuple[str, bytes]] = {}
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                content_type = self.headers.get("Content-Type", "")
                multipart = content_type.startswith("multipart/form-data")
                if length > (MAX_UPLOAD + MAX_BODY if multipart else MAX_BODY):
                    self._send(Response(413, "Request too large"))
                    return
                raw = self.rfile.read(length)
                if multipart:
                    lists, files = _multipart(content_type, raw)
                else:
                    lists = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
                form = _first(lists)
            cookies: dict[str, str] = {}
            try:
                cookies = {k: m.value for k, m in SimpleCookie(self.headers.get("Cookie", "")).items()}
            except CookieError:
                pass
            request = Request(method, url.path, _first(parse_qs(url.query, keep_blank_values=True)), form, cookies, lists, files)
            try:
                response = apps.handle(request)
            except Exception:  # a bug must not kill the server thread; show a plain 500
                log.exception("error handling %s %s", method, self.path)
                response = Response(500, "Internal error")
            self._send(response)

        def _send(self, response: Response) -> None:
            body = response.body.encode("utf-8")
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # `format`: the base class's parameter name
            log.debug("%s - %s", self.address_string(), format % args)

    return RequestHandler


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, tuple[str, bytes]]]:
    """Fields and files of a ``multipart/form-data`` body (parsed as the MIME message it is)."""
    message = BytesParser(policy=email_policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    fields: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, content)
        else:
            fields.setdefault(name, []).append(content.decode("utf-8", "replace"))
    return fields, files


def _first(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items()}


class WebApps:
    """The running apps: URLs, a way to sign in without the form, and shutdown (also as a context manager)."""

    def __init__(self, apps: Apps, server: ThreadingHTTPServer) -> None:
        self.apps = apps
        self.db_path = apps.db_path
        self._server = server
        host, port = server.socket.getsockname()[:2]  # an AF_INET socket: (str, int)
        self.base_url = f"http://{host}:{port}"
        self.expenses_url = self.base_url + "/expenses/"
        self.customers_url = self.base_url + "/customers/"
        self.login_url = self.base_url + "/login"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="aozora-webapps", daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def session_cookie(self, email: str) -> tuple[str, str]:
        """(name, value) of a cookie signed in as ``email``, to start an episode already logged in."""
        token = self.apps.start_session(email)
        if token is None:
            raise ValueError(f"no employee with e-mail {email!r}")
        return COOKIE, token

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebApps:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def serve_webapps(db_path: Path, host: str = "127.0.0.1", port: int = 0,
                  today: Callable[[], date] = date.today) -> WebApps:
    """Seed ``db_path`` if it is new, and serve both apps on ``host:port`` (0 = any free port) in a thread.

    ``today`` decides which dates count as "in the future" (fix it for reproducible episodes).
    """
    seed_database(Path(db_path))
    apps = Apps(Path(db_path), today)
    server = ThreadingHTTPServer((host, port), _handler_class(apps))
    server.daemon_threads = True
    return WebApps(apps, server)
