"""The workspace pages of the sample apps: an inbox, travel requests and shared folders.

They are built the way many intranet pages are, with the widgets drawn by script rather than by markup,
so the Operator is tried on what people meet at work:

* **Inbox** (``/inbox/``): rows that open a message on click (event delegation on the table body, a pointer
  cursor), a star per row bound with ``el.onclick``, "Mark all as read" drawn as a ``<span>``, folders as a
  plain list whose clicks a listener on the list handles, rows dragged onto a folder to move them, a pager
  with the current page, a search that highlights matches inside words (``<mark>Bern</mark>ardine``). A
  message's "Move to" menu opens on hover; its private note's "Submit" only shows the note on the page,
  while "Archive it: OK" moves the message by ``fetch`` (approvals are decided by effect, not by label).
* **Travel requests** (``/travel/``): rows that act as links; a form whose inputs are preceded by label text
  but not linked to it, a destination autocomplete that asks the server after a 600 ms debounce and whose
  suggestions cover the fields below, a date picker with "Prev"/"Next" as ``<a>`` without ``href`` and days
  as table cells, and a ``<select multiple>`` of cost centres.
* **Shared folders** (``/files/``): an ARIA tree (its clicks handled on the tree), and an upload form for the
  selected folder.

State changes go through POSTs (forms or ``fetch``) and land in the database, so tasks are decided from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cristal.sample.webapps.pages import Request, Response, Session, paginate, redirect
from cristal.sample.webapps.store import (
    COST_CENTRES,
    INBOX_OWNER,
    MESSAGE_FOLDERS,
    PLACES,
    connect,
)

MAX_UPLOAD = 1024 * 1024
_FILE_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,120}$")


class WorkspacePages:
    """Mixed into :class:`~cristal.sample.webapps.server.Apps`, which provides what is declared here."""

    db_path: Path
    today: Callable[[], date]

    if TYPE_CHECKING:  # defined by Apps
        def render(self, template: str, session: Session | None, code: int = 200, **context: object) -> Response: ...
        def not_found(self, session: Session) -> Response: ...
        def _flash(self, session: Session, message: str) -> None: ...

    def workspace_routes(self) -> list[tuple[str, str, Any, bool]]:
        return [
            ("GET", r"/inbox/", self.inbox_list, False),
            ("GET", r"/inbox/(\d+)", self.inbox_message, False),
            ("POST", r"/inbox/(\d+)/flag", self.inbox_flag, False),
            ("POST", r"/inbox/(\d+)/move", self.inbox_move, False),
            ("POST", r"/inbox/read-all", self.inbox_read_all, False),
            ("GET", r"/travel/", self.travel_list, False),
            ("GET", r"/travel/new", self.travel_form, False),
            ("POST", r"/travel/new", self.travel_create, False),
            ("GET", r"/travel/(\d+)", self.travel_detail, False),
            ("GET", r"/travel/places", self.travel_places, False),
            ("GET", r"/files/", self.files_page, False),
            ("POST", r"/files/(\d+)/upload", self.files_upload, False),
        ]

    # --- inbox ---

    def _inbox_query(self, session: Session, sql: str, *args: object) -> list[Any]:
        conn = connect(self.db_path)
        try:
            return conn.execute(sql, (session.org, session.email, *args)).fetchall()
        finally:
            conn.close()

    def inbox_list(self, request: Request, session: Session) -> Response:

        folder = request.query.get("folder", "inbox")
        if folder not in MESSAGE_FOLDERS:
            folder = "inbox"
        q = request.query.get("q", "").strip()
        where = "org = ? AND recipient = ? AND folder = ?"
        args: list[object] = [folder]
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where += " AND (sender LIKE ? ESCAPE '\\' OR subject LIKE ? ESCAPE '\\')"
            args += [like, like]
        total = self._inbox_query(session, f"SELECT count(*) FROM messages WHERE {where}", *args)[0][0]
        page = paginate(total, request.query.get("page", ""), "/inbox/", {"folder": folder if folder != "inbox" else "", "q": q})
        rows = self._inbox_query(session, f"SELECT * FROM messages WHERE {where} ORDER BY date DESC, id DESC LIMIT 10 OFFSET ?",
                                 *args, page.offset)
        counts = {r["folder"]: r["n"] for r in self._inbox_query(
            session, "SELECT folder, count(*) AS n FROM messages WHERE org = ? AND recipient = ? GROUP BY folder")}
        messages = [{"row": r, "sender": _highlight(r["sender"], q), "subject": _highlight(r["subject"], q)} for r in rows]
        return self.render("inbox_list.html", session, title="Inbox", app="inbox", messages=messages,
                           page=page, folder=folder, folders=MESSAGE_FOLDERS, counts=counts, q=q)

    def _own_message(self, session: Session, message_id: int) -> Any:
        rows = self._inbox_query(session, "SELECT * FROM messages WHERE org = ? AND recipient = ? AND id = ?", message_id)
        return rows[0] if rows else None

    def inbox_message(self, request: Request, session: Session, message_id: int) -> Response:
        message = self._own_message(session, message_id)
        if message is None:
            return self.not_found(session)
        self._inbox_update(session, message_id, "read = 1")
        return self.render("inbox_message.html", session, title=message["subject"], app="inbox",
                           message=message, folders=MESSAGE_FOLDERS)

    def _inbox_update(self, session: Session, message_id: int | None, assignment: str, *args: object) -> int:
        conn = connect(self.db_path)
        try:
            with conn:
                scope = "" if message_id is None else " AND id = ?"
                cur = conn.execute(f"UPDATE messages SET {assignment} WHERE org = ? AND recipient = ?{scope}",
                                   (*args, session.org, session.email, *([] if message_id is None else [message_id])))
                return cur.rowcount
        finally:
            conn.close()

    def inbox_flag(self, request: Request, session: Session, message_id: int) -> Response:
        flagged = request.form.get("flagged") == "1"
        if not self._inbox_update(session, message_id, "flagged = ?", int(flagged)):
            return _json(404, {"error": "no such message"})
        return _json(200, {"id": message_id, "flagged": flagged})

    def inbox_move(self, request: Request, session: Session, message_id: int) -> Response:
        folder = request.form.get("folder", "")
        if folder not in MESSAGE_FOLDERS:
            return _json(400, {"error": "unknown folder"})
        if not self._inbox_update(session, message_id, "folder = ?", folder):
            return _json(404, {"error": "no such message"})
        return _json(200, {"id": message_id, "folder": folder})

    def inbox_read_all(self, request: Request, session: Session) -> Response:
        return _json(200, {"read": self._inbox_update(session, None, "read = 1")})

    # --- travel requests ---

    def travel_list(self, request: Request, session: Session) -> Response:
        conn = connect(self.db_path)
        try:
            rows = conn.execute("SELECT * FROM travel_requests WHERE org = ? AND employee_email = ? ORDER BY id DESC",
                                (session.org, session.email)).fetchall()
        finally:
            conn.close()
        return self.render("travel_list.html", session, title="Travel requests", app="travel", requests=rows,
                           places=PLACES)

    def travel_form(self, request: Request, session: Session, values: dict[str, Any] | None = None,
                    errors: dict[str, str] | None = None) -> Response:
        values = values or {"purpose": "", "destination": "", "place": "", "depart": "", "return_date": "", "cost_centres": []}
        today = self.today()
        return self.render("travel_form.html", session, 422 if errors else 200, title="New travel request",
                           app="travel", values=values, errors=errors or {}, cost_centres=COST_CENTRES,
                           month=f"{today.year:04d}-{today.month:02d}")

    def travel_create(self, request: Request, session: Session) -> Response:

        form = request.form
        centres = sorted(set(request.form_lists.get("cost_centres", [])))
        values = {"purpose": form.get("purpose", "").strip(), "destination": form.get("destination", "").strip(),
                  "place": form.get("place", ""), "depart": form.get("depart", ""), "return_date": form.get("return_date", ""),
                  "cost_centres": centres}
        errors = _travel_errors(values, self.today())
        if errors:
            return self.travel_form(request, session, values, errors)
        conn = connect(self.db_path)
        try:
            with conn:
                cur = conn.execute("INSERT INTO travel_requests (org, employee_email, purpose, destination, depart, return_date,"
                                   " cost_centres) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   (session.org, session.email, values["purpose"], values["place"], values["depart"],
                                    values["return_date"], ",".join(centres)))
                request_id = int(cur.lastrowid or 0)
        finally:
            conn.close()
        self._flash(session, f"Travel request {request_id} was saved.")
        return redirect(f"/travel/{request_id}")

    def travel_detail(self, request: Request, session: Session, request_id: int) -> Response:
        conn = connect(self.db_path)
        try:
            row = conn.execute("SELECT * FROM travel_requests WHERE id = ? AND org = ? AND employee_email = ?",
                               (request_id, session.org, session.email)).fetchone()
        finally:
            conn.close()
        if row is None:
            return self.not_found(session)
        return self.render("travel_detail.html", session, title=f"Travel request {request_id}", app="travel",
                           request=row, places=PLACES, cost_centres=COST_CENTRES)

    def travel_places(self, request: Request, session: Session) -> Response:
        q = request.query.get("q", "").strip().casefold()
        found = [{"code": code, "name": name} for code, name in PLACES.items() if q and name.casefold().startswith(q)]
        return _json(200, {"places": found[:8]})

    # --- shared folders ---

    def _folders(self, session: Session) -> tuple[dict[int, Any], list[Any]]:
        conn = connect(self.db_path)
        try:
            folders = {r["id"]: r for r in conn.execute("SELECT * FROM folders WHERE org = ? ORDER BY name, id", (session.org,))}
            files = conn.execute("SELECT files.* FROM files JOIN folders ON folders.id = files.folder_id WHERE folders.org = ?"
                                 " ORDER BY files.name", (session.org,)).fetchall()
        finally:
            conn.close()
        return folders, files

    def files_page(self, request: Request, session: Session) -> Response:
        folders, files = self._folders(session)

        def children(parent: int | None) -> list[dict[str, Any]]:
            return [{"folder": f, "children": children(f["id"])} for f in folders.values() if f["parent_id"] == parent]

        files_of: dict[int, list[Any]] = {}
        for f in files:
            files_of.setdefault(f["folder_id"], []).append(f)

        def path(folder_id: int) -> str:
            f = folders[folder_id]
            return f["name"] if f["parent_id"] is None else f"{path(f['parent_id'])} \u203a {f['name']}"

        return self.render("files.html", session, title="Shared folders", app="files", tree=children(None),
                           paths={i: path(i) for i in folders}, files_of=files_of)

    def files_upload(self, request: Request, session: Session, folder_id: int) -> Response:

        folders, _ = self._folders(session)
        if folder_id not in folders:
            return self.not_found(session)
        upload = request.files.get("file")
        if upload is None or not upload[0]:
            self._flash(session, "Choose a file to upload.")
            return redirect(f"/files/?folder={folder_id}")
        name, content = upload
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        if not _FILE_NAME.match(name) or len(content) > MAX_UPLOAD:
            self._flash(session, "That file cannot be uploaded (name or size).")
            return redirect(f"/files/?folder={folder_id}")
        conn = connect(self.db_path)
        try:
            with conn:
                conn.execute("INSERT INTO files (folder_id, name, size, sha256, uploaded_by) VALUES (?, ?, ?, ?, ?)",
                             (folder_id, name, len(content), hashlib.sha256(content).hexdigest(), session.email))
        finally:
            conn.close()
        self._flash(session, f"{name} was uploaded to {folders[folder_id]['name']}.")
        return redirect(f"/files/?folder={folder_id}")


def _travel_errors(values: dict[str, Any], today: date) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values["purpose"]:
        errors["purpose"] = "Enter the purpose of the trip."
    if values["place"] not in PLACES or PLACES[values["place"]] != values["destination"]:
        errors["destination"] = "Choose the destination from the suggestions."
    days = {}
    for key in ("depart", "return_date"):
        try:
            days[key] = date.fromisoformat(values[key])
        except ValueError:
            errors[key] = "Pick a date in the calendar."
    if "depart" in days and days["depart"] < today:
        errors["depart"] = "The departure cannot be in the past."
    if len(days) == 2 and days["return_date"] < days["depart"]:
        errors["return_date"] = "The return cannot be before the departure."
    if not values["cost_centres"] or any(c not in COST_CENTRES for c in values["cost_centres"]):
        errors["cost_centres"] = "Choose at least one cost centre."
    return errors


def _highlight(text: str, q: str) -> list[tuple[str, bool]]:
    """``text`` split into (part, is_match) for case-insensitive matches of ``q`` (rendered with <mark>)."""
    if not q:
        return [(text, False)]
    parts, at, low, ql = [], 0, text.casefold(), q.casefold()
    while (found := low.find(ql, at)) >= 0:
        parts += [(text[at:found], False), (text[found:found + len(q)], True)]
        at = found + len(q)
    parts.append((text[at:], False))
    return [p for p in parts if p[0]]


def _json(status: int, doc: dict[str, Any]) -> Response:

    return Response(status, json.dumps(doc), content_type="application/json")


__all__ = ["INBOX_OWNER", "WorkspacePages"]
