"""The IMAP connector: a mailbox's folders (its own and those shared with it), messages and attachments.

``--uri imap://USER@HOST[:PORT]`` (STARTTLS unless ``starttls: false``) or
``imaps://USER@HOST[:PORT]`` (TLS) names the server and the login; the
password comes from the environment variable named by ``password_env``,
read when a sync runs. Settings also choose ``folders`` (default: every
selectable one, shared folders included), ``exclude_folders`` and limits.

Each folder is a scope: one that cannot be opened is reported and its
documents are kept. Each message is a document (the e-mail parser: headers,
then the body) and each attachment with a supported extension is a document
of its own, parsed by the parser for its type. Messages flagged ``\\Deleted``
are left out.

Change detection: a message's content never changes under one
``UIDVALIDITY``/``UID`` pair, so that pair is its fingerprint; a sync lists
UIDs and flags (no bodies) and downloads only messages it has not indexed
(``BODY.PEEK``: nothing is marked as read). A new ``UIDVALIDITY`` re-indexes
the folder.

Access from the source: a folder's readers are the mailbox owner (the login),
the owner of a shared folder (``shared/OWNER/...``), and, where the server
offers the ACL extension (RFC 4314) and lets the login read a folder's ACL,
every identifier with the read right (``r``). These names -- as the server
spells them: Dovecot gives user names and ``$group`` -- go through the
``principals`` mapping; unmapped ones grant nothing.

A rejected login, an unreachable server or an unset password variable is
reported and nothing is deleted.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import quote, unquote, urlsplit

from pydantic import Field

from cristal.errors import InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.connectors.fetch import human_size
from cristal.knowledge.connectors.settings import MissingCredential, PrincipalMap, SourceSettings, from_env, unreachable
from cristal.knowledge.parse import SUPPORTED_EXTENSIONS

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')
_LISTED = re.compile(rb"^\d+ \((.*)\)$")


class ImapSettings(SourceSettings):
    password_env: str = Field(min_length=1)
    starttls: bool = True
    folders: list[str] = Field(default_factory=list)
    exclude_folders: list[str] = Field(default_factory=list)
    max_messages: int = Field(100_000, ge=1, le=10_000_000)
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    timeout_seconds: float = Field(30.0, gt=0, le=600)


def _tokens(data: bytes) -> list:
    """IMAP atoms, quoted strings and parenthesized lists (NIL as ``None``); enough for LIST, ACL and NAMESPACE."""
    stack: list[list] = [[]]
    pos = 0
    while pos < len(data):
        match = _TOKEN.match(data, pos)
        if match is None:
            break
        pos = match.end()
        if match.group(1):
            stack.append([])
        elif match.group(2):
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif match.group(3) is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", match.group(3)).decode("utf-8", "replace"))
        else:
            atom = match.group(4).decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
    return stack[0]


def _join(lines: list) -> list[bytes]:
    """imaplib gives a response with a literal as ``(head, literal)``: put it back on one line, literal quoted."""
    joined = []
    for line in lines:
        if isinstance(line, tuple):
            head = re.sub(rb"\{\d+\}$", b"", line[0])
            joined.append(head + b'"' + line[1].replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        elif isinstance(line, bytes):
            joined.append(line)
    return joined


def quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapConnector:
    kind = "imap"
    settings_model = ImapSettings

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        self.uri = uri
        self.secure, self.host, self.port, self.user = parse_uri(uri)
        self.settings = ImapSettings.model_validate((options or {}).get("config") or {})
        self.acl = acl
        self.map = PrincipalMap(self.settings.principals)
        self.scope = ScanScope()
        self.previous: dict[str, dict] = {}
        self._spool: IO[bytes] | None = None

    @staticmethod
    def validate(uri: str) -> str:
        parse_uri(uri)
        return uri

    def remember(self, previous: dict[str, dict]) -> None:
        self.previous = previous

    def connect(self) -> imaplib.IMAP4:
        """A logged-in connection; ``OSError`` or ``imaplib.IMAP4.error`` with the server's reason otherwise."""
        password = from_env(self.settings.password_env, f"password of {self.user}")
        timeout = self.settings.timeout_seconds
        conn: imaplib.IMAP4
        if self.secure:
            conn = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=ssl.create_default_context(), timeout=timeout)
        else:
            conn = imaplib.IMAP4(self.host, self.port, timeout=timeout)
            if self.settings.starttls:
                if "STARTTLS" not in conn.capabilities:
                    conn.shutdown()
                    raise imaplib.IMAP4.error("the server does not offer STARTTLS (set starttls: false only on a trusted network)")
                conn.starttls(ssl.create_default_context())
        try:
            conn.login(self.user, password)
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise _LoginRejected(_text(exc)) from None
        return conn

    def scan(self) -> Iterator[Item | ScanProblem]:
        shown = f"{'imaps' if self.secure else 'imap'}://{self.user}@{self.host}:{self.port}"
        try:
            conn = self.connect()
        except MissingCredential as exc:
            yield unreachable(self.scope, shown, str(exc))
            return
        except _LoginRejected as exc:
            self.scope.complete = False
            yield ScanProblem(shown, f"login rejected by the mail server ({exc})")
            return
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            self.scope.complete = False
            yield ScanProblem(shown, f"cannot connect to {self.host}:{self.port} ({_text(exc)})")
            return
        self._spool = tempfile.TemporaryFile(prefix="cristal-imap-")
        try:
            yield from _Mailbox(self, conn).scan()
        except (OSError, imaplib.IMAP4.abort) as exc:
            self.scope.complete = False
            yield ScanProblem(shown, f"connection lost ({_text(exc)}); nothing deleted")
        finally:
            try:
                conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
        yield from self.map.problems()

    def spool(self, data: bytes) -> tuple[int, int]:
        assert self._spool is not None
        self._spool.seek(0, 2)
        offset = self._spool.tell()
        self._spool.write(data)
        return offset, len(data)

    def spooled(self, where: tuple[int, int]) -> bytes:
        assert self._spool is not None
        self._spool.seek(where[0])
        return self._spool.read(where[1])

    def fetch(self, folder: str, uidvalidity: str, uid: str) -> bytes:
        """One message, on a connection of its own (for a sync that re-parses what it indexed before)."""
        try:
            conn = self.connect()
        except (MissingCredential, _LoginRejected, imaplib.IMAP4.error) as exc:
            raise OSError(str(exc)) from None
        try:
            status, _ = conn.select(quote_mailbox(folder), readonly=True)
            if status != "OK" or _first(conn.response("UIDVALIDITY")) != uidvalidity:
                raise OSError(f"folder {folder} changed since the message was listed")
            status, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = _body(data)
            if status != "OK" or raw is None:
                raise OSError(f"message {uid} is gone from {folder}")
            return raw
        except imaplib.IMAP4.error as exc:
            raise OSError(_text(exc)) from None
        finally:
            try:
                conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass


class _LoginRejected(Exception):
    pass


class _Mailbox:
    """One sync's walk over the folders of a logged-in connection."""

    def __init__(self, connector: ImapConnector, conn: imaplib.IMAP4) -> None:
        self.c = connector
        self.s = connector.settings
        self.conn = conn
        self.listed = 0
        status, caps = conn.capability()
        self.has_acl = status == "OK" and b"ACL" in (caps[0] or b"").upper().split()
        self.shared_prefixes = self._shared_prefixes()

    def _shared_prefixes(self) -> list[str]:
        try:
            status, data = self.conn.namespace()
        except imaplib.IMAP4.error:
            return []
        if status != "OK" or not data or not isinstance(data[0], bytes):
            return []
        parts = _tokens(data[0])
        shared = parts[1] if len(parts) > 1 else None  # personal, other users', shared
        return [str(ns[0]) for ns in shared or [] if isinstance(ns, list) and ns and ns[0]]

    def folders(self) -> list[str]:
        status, data = self.conn.list()
        if status != "OK":
            raise imaplib.IMAP4.error("LIST failed")
        names = []
        for line in _join(data):
            parts = _tokens(line)
            if len(parts) < 3 or not isinstance(parts[0], list):
                continue
            flags = {str(f).lower() for f in parts[0]}
            if "\\noselect" in flags or "\\nonexistent" in flags:
                continue
            names.append(str(parts[2]))
        wanted = set(self.s.folders)
        return sorted(n for n in names if (not wanted or n in wanted) and n not in self.s.exclude_folders)

    def scan(self) -> Iterator[Item | ScanProblem]:
        for folder in self.folders():
            try:
                yield from self.folder(folder)
            except imaplib.IMAP4.abort:
                raise  # the connection is gone: the caller stops the whole scan
            except imaplib.IMAP4.error as exc:
                self.c.scope.unseen_prefixes.append(f"{folder}/")
                yield ScanProblem(folder, f"cannot read folder ({_text(exc)})")
            if not self.c.scope.complete:
                return

    def readers(self, folder: str) -> tuple[str, ...] | None:
        principals = {self.c.user}
        for prefix in self.shared_prefixes:
            if folder.startswith(prefix):
                owner = folder[len(prefix):].split("/", 1)[0]
                if owner:
                    principals.add(owner)
        if self.has_acl:
            status, data = self.conn.getacl(quote_mailbox(folder))
            if status == "OK" and data and isinstance(data[0], bytes):
                principals |= _acl_readers(_tokens(_join(data)[0])[1:])
        return self.c.map.rules(sorted(principals))

    def folder(self, folder: str) -> Iterator[Item | ScanProblem]:
        status, data = self.conn.select(quote_mailbox(folder), readonly=True)
        if status != "OK":
            raise imaplib.IMAP4.error(_text(data[0] if data else "SELECT failed"))
        uidvalidity = _first(self.conn.response("UIDVALIDITY")) or "0"
        exists = int(data[0] or b"0") if data and (data[0] or b"").isdigit() else 0
        acl = self.readers(folder)
        if exists == 0:
            return
        status, listing = self.conn.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
        if status != "OK":
            raise imaplib.IMAP4.error("FETCH of UIDs failed")
        for line in listing:
            if not isinstance(line, bytes):
                continue
            found = _LISTED.match(line)
            if not found:
                continue
            fields = _tokens(found.group(1))
            info = {str(fields[i]).upper(): fields[i + 1] for i in range(0, len(fields) - 1, 2)}
            flags = {str(f).lower() for f in info.get("FLAGS") or []}
            if "\\deleted" in flags or info.get("UID") is None:
                continue
            if self.listed >= self.s.max_messages:
                self.c.scope.complete = False
                yield ScanProblem(folder, f"listing stopped at {self.s.max_messages} messages (max_messages); nothing deleted")
                return
            self.listed += 1
            yield from self.message(folder, uidvalidity, str(info["UID"]), int(info.get("RFC822.SIZE") or 0), acl)

    def message(self, folder: str, uidvalidity: str, uid: str, size: int, acl: tuple[str, ...] | None) -> Iterator[Item | ScanProblem]:
        key = f"{folder}/{uidvalidity}/{uid}"
        uri = f"{self.c.uri.rstrip('/')}/{quote(folder)};UIDVALIDITY={uidvalidity}/;UID={uid}"
        fingerprint = f"imap:{uidvalidity}/{uid}"
        if size > self.s.max_message_bytes:
            yield ScanProblem(key, f"message too large: {human_size(size)} > {human_size(self.s.max_message_bytes)} limit")
            return
        if key in self.c.previous:
            # Indexed before, so its content is known not to have changed: no download.
            fetch = _lazy(self.c.fetch, folder, uidvalidity, uid)
            yield Item(external_id=key, uri=uri, filename="message.eml", acl=acl, size=size, read=fetch, fingerprint=fingerprint)
            for other in sorted(self.c.previous):
                if other.startswith(key + "/"):
                    filename = str(self.c.previous[other].get("attachment", "attachment"))
                    index = int(other.rsplit("/", 1)[1])
                    yield Item(external_id=other, uri=f"{uri}#part={index}", filename=filename, acl=acl,
                               read=_attachment(fetch, index), fingerprint=f"{fingerprint}/{index}",
                               meta={"attachment": filename})
            return
        status, data = self.conn.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = _body(data) if status == "OK" else None
        if raw is None:
            yield ScanProblem(key, "message could not be fetched")
            return
        where = self.c.spool(raw)
        whole = _lazy(self.c.spooled, where)
        yield Item(external_id=key, uri=uri, filename="message.eml", acl=acl, size=len(raw), read=whole, fingerprint=fingerprint)
        for index, filename in attachments(raw):
            yield Item(external_id=f"{key}/{index}", uri=f"{uri}#part={index}", filename=filename, acl=acl,
                       read=_attachment(whole, index), fingerprint=f"{fingerprint}/{index}", meta={"attachment": filename})


def attachments(raw: bytes) -> list[tuple[int, str]]:
    """``(part number in walk order, file name)`` of each attached file a parser can read."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    found = []
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        try:
            name = part.get_filename()
        except Exception:  # noqa: BLE001 - an undecodable attachment name is skipped, not fatal
            continue
        if name and PurePosixPath(name.replace("\\", "/")).suffix.lower() in SUPPORTED_EXTENSIONS:
            found.append((index, PurePosixPath(name.replace("\\", "/")).name))
    return found


def _attachment(whole: Callable[[], bytes], index: int) -> Callable[[], bytes]:
    def read() -> bytes:
        message = email.message_from_bytes(whole(), policy=email.policy.default)
        for number, part in enumerate(message.walk()):
            if number == index:
                payload = part.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else b""
        raise OSError(f"attachment {index} not found in the message")

    return read


def _lazy(function: Callable[..., bytes], *args: object) -> Callable[[], bytes]:
    return lambda: function(*args)


def _acl_readers(pairs: list) -> set[str]:
    """Identifiers with the read right in a GETACL answer (negative rights, ``-name``, take it away)."""
    granted: set[str] = set()
    denied: set[str] = set()
    for i in range(0, len(pairs) - 1, 2):
        identifier, rights = str(pairs[i]), str(pairs[i + 1])
        if "r" not in rights:
            continue
        if identifier.startswith("-"):
            denied.add(identifier[1:])
        else:
            granted.add(identifier)
    return granted - denied


def _body(data: list) -> bytes | None:
    for part in data or []:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return None


def _first(response: tuple) -> str | None:
    values = response[1] if len(response) > 1 else None
    if values and isinstance(values[0], bytes):
        return values[0].decode()
    return None


def _text(value: object) -> str:
    if isinstance(value, BaseException) and value.args:
        value = value.args[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, socket.timeout):
        return "timed out"
    return " ".join(str(value).split())[:200] or type(value).__name__


def parse_uri(uri: str) -> tuple[bool, str, int, str]:
    """``(tls, host, port, user)`` of ``imap[s]://USER@HOST[:PORT]``, or ``InvalidInput``."""
    parts = urlsplit(uri)
    if parts.scheme not in ("imap", "imaps"):
        raise InvalidInput(f"invalid imap source {uri!r}: use imap://USER@HOST[:PORT] or imaps://USER@HOST[:PORT]")
    if parts.password is not None:
        raise InvalidInput("an imap source URI must not hold a password: name its environment variable in password_env")
    if not parts.username or not parts.hostname:
        raise InvalidInput(f"invalid imap source {uri!r}: it needs the login and the host (imap://USER@HOST)")
    try:
        port = parts.port or (993 if parts.scheme == "imaps" else 143)
    except ValueError:
        raise InvalidInput(f"invalid imap source {uri!r}: bad port") from None
    if parts.path not in ("", "/"):
        raise InvalidInput(f"invalid imap source {uri!r}: choose folders in the settings file, not in the URI")
    return parts.scheme == "imaps", parts.hostname, port, unquote(parts.username)
