"""The IMAP connector against Debian's Dovecot started for each test on loopback: folders as scopes,
attachments parsed, UIDs for change detection, owner, shared folders and ACLs as access rules."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from fpdf import FPDF
from sqlalchemy import select

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity import users
from cristal.knowledge import sources
from cristal.knowledge.schema import Document
from cristal.knowledge.sync import SyncReport, sync_source
from cristal.testing.dovecot import TemporaryDovecot

from ..conftest import INSTALLATION
from .conftest import found

BACKENDS = ("sqlite", "postgres")
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture
def mail(monkeypatch: pytest.MonkeyPatch) -> Iterator[TemporaryDovecot]:
    monkeypatch.setenv("ALICE_PASSWORD", PASSWORDS["alice"])
    with TemporaryDovecot({"alice": (PASSWORDS["alice"], []), "bob": (PASSWORDS["bob"], ["hr"])}) as server:
        yield server


def login(server: TemporaryDovecot, user: str = "alice") -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    conn.login(user, PASSWORDS[user])
    return conn


def pdf(text: str) -> bytes:
    doc = FPDF()
    doc.add_page()
    doc.set_font("Helvetica", size=12)
    doc.multi_cell(0, 6, text)
    return bytes(doc.output())


def message(subject: str, body: str, attachments: dict[str, bytes] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Carol <carol@acme.example>"
    msg["To"] = "alice@acme.example"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    msg.set_content(body)
    for name, data in (attachments or {}).items():
        kind = ("application", "pdf") if name.endswith(".pdf") else ("text", "plain")
        msg.add_attachment(data, maintype=kind[0], subtype=kind[1], filename=name)
    return msg.as_bytes()


def add(db: Database, server: TemporaryDovecot, **config: object) -> None:
    settings = {"password_env": "ALICE_PASSWORD", "starttls": False,
                "principals": {"alice": "user:eng@acme.example", "$hr": "group:hr"}, **config}
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "mail", "imap", f"imap://alice@127.0.0.1:{server.port}", config=settings)


def sync(db: Database) -> SyncReport:
    return sync_source(db, INSTALLATION, "acme", "mail", embed=False)


def ids(db: Database) -> set[str]:
    with db.session() as s:
        return {re.sub(r"/\d+/", "/V/", e, count=1) for e in s.scalars(select(Document.external_id))}


def parts(uris: set[str]) -> set[str]:
    """``FOLDER`` or ``FOLDER#part=N`` of each message or attachment URI."""
    return {re.sub(r"^imap://[^/]+/(.*);UIDVALIDITY=\d+/;UID=\d+", r"\1", u) for u in uris}


def body_fetches(server: TemporaryDovecot) -> int:
    """How many times alice's logins asked for message bodies (from Dovecot's raw log of her commands)."""
    return sum("BODY.PEEK[]" in line.upper() for line in server.commands("alice"))


def test_folders_attachments_and_access_from_the_mailbox(two_orgs: Database, mail: TemporaryDovecot) -> None:
    with two_orgs.session() as s:
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    conn = login(mail)
    conn.create("Projects")
    conn.create("Trash")
    conn.append("INBOX", None, None, message("Hotel limits", "Hotels in Munich may cost up to 150 EUR per night.",
                                             {"limits.pdf": pdf("The per diem for meals in Osaka is 4000 JPY."),
                                              "notes.txt": b"Book trains through the portal.", "logo.png": b"\x89PNG"}))
    conn.append("Projects", None, None, message("Nimbus plan", "The Nimbus acquisition closes in March."))
    conn.append("Trash", None, None, message("Old", "Thrown away salary figures."))
    assert conn.setacl("Projects", "$hr", "lr")[0] == "OK"
    assert conn.setacl("Projects", "bob", "lr")[0] == "OK"
    conn.logout()

    add(two_orgs, mail, exclude_folders=["Trash"])
    report = sync(two_orgs)
    assert ids(two_orgs) == {"INBOX/V/1", "INBOX/V/1/2", "INBOX/V/1/3", "Projects/V/1"}
    assert report.skipped == [{"id": "(principals)", "reason": "source principals without a mapping grant nothing: bob"}]

    # The mailbox owner reads her folders and the attachments in them; the shared folder's group reads only that.
    assert parts(found(two_orgs, "eng@acme.example", "Munich hotels")) == {"INBOX"}
    assert "INBOX#part=2" in parts(found(two_orgs, "eng@acme.example", "per diem Osaka"))  # text of the PDF attachment
    assert "INBOX#part=3" in parts(found(two_orgs, "eng@acme.example", "trains portal"))
    assert parts(found(two_orgs, "hr@acme.example", "Nimbus acquisition")) == {"Projects"}
    assert found(two_orgs, "hr@acme.example", "Munich hotels") == set()
    assert found(two_orgs, "fin@acme.example", "Munich hotels") == set()  # no mapped principal at all
    assert found(two_orgs, "fin@acme.example", "Nimbus acquisition") == set()
    assert found(two_orgs, "eng@acme.example", "salary figures") == set()  # excluded folder

    fetched = body_fetches(mail)
    assert fetched == 2  # the first sync downloaded each message once
    again = sync(two_orgs)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)
    assert body_fetches(mail) == fetched  # UIDs and flags only: nothing downloaded

    # At the source: the group loses the shared folder, a message is deleted, one arrives.
    conn = login(mail)
    assert conn.deleteacl("Projects", "$hr")[0] == "OK"
    conn.select("INBOX")
    conn.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    conn.append("INBOX", None, None, message("Trains", "Second class for trips under four hours."))
    conn.logout()
    changed = sync(two_orgs)
    assert (changed.added, changed.deleted, changed.access_changed, changed.unchanged) == (1, 3, 1, 0)
    assert found(two_orgs, "hr@acme.example", "Nimbus acquisition") == set()
    assert parts(found(two_orgs, "eng@acme.example", "second class trips")) == {"INBOX"}
    assert found(two_orgs, "eng@acme.example", "Osaka") == set()


def test_a_shared_folder_seen_by_another_login(two_orgs: Database, mail: TemporaryDovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = login(mail)
    conn.create("Projects")
    conn.append("Projects", None, None, message("Nimbus plan", "The Nimbus acquisition closes in March."))
    conn.setacl("Projects", "bob", "lr")
    conn.logout()
    monkeypatch.setenv("BOB_PASSWORD", PASSWORDS["bob"])
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "mail", "imap", f"imap://bob@127.0.0.1:{mail.port}", config={
            "password_env": "BOB_PASSWORD", "starttls": False, "principals": {"alice": "user:fin@acme.example"}})
    report = sync(two_orgs)
    assert ids(two_orgs) == {"shared/alice/Projects/V/1"}
    # bob may not read the folder's ACL; its owner (alice) and the login (bob, unmapped) are its readers.
    assert report.skipped == [{"id": "(principals)", "reason": "source principals without a mapping grant nothing: bob"}]
    assert len(found(two_orgs, "fin@acme.example", "Nimbus")) == 1
    assert found(two_orgs, "eng@acme.example", "Nimbus") == set()


def test_a_rejected_login_or_missing_password_deletes_nothing(
    two_orgs: Database, mail: TemporaryDovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = login(mail)
    conn.append("INBOX", None, None, message("Hotel limits", "Hotels in Munich may cost up to 150 EUR per night."))
    conn.logout()
    add(two_orgs, mail)
    assert sync(two_orgs).added == 1
    where = f"imap://alice@127.0.0.1:{mail.port}"

    monkeypatch.setenv("ALICE_PASSWORD", "wrong")
    rejected = sync(two_orgs)
    reason = "login rejected by the mail server ([AUTHENTICATIONFAILED] Authentication failed.)"
    assert rejected.skipped == [{"id": where, "reason": reason}]
    assert rejected.deleted == 0

    monkeypatch.delenv("ALICE_PASSWORD")
    missing = sync(two_orgs)
    assert missing.skipped == [{"id": where, "reason": "environment variable ALICE_PASSWORD (password of alice) is not set"}]
    assert missing.deleted == 0 and len(ids(two_orgs)) == 1


def test_plain_imap_needs_starttls_unless_told_otherwise(two_orgs: Database, mail: TemporaryDovecot) -> None:
    add(two_orgs, mail, starttls=True)
    report = sync(two_orgs)
    assert report.skipped == [{"id": f"imap://alice@127.0.0.1:{mail.port}", "reason": f"cannot connect to 127.0.0.1:{mail.port} "
                               "(the server does not offer STARTTLS (set starttls: false only on a trusted network))"}]


def test_a_recreated_folder_is_reindexed(two_orgs: Database, mail: TemporaryDovecot) -> None:
    conn = login(mail)
    conn.create("Projects")
    conn.append("Projects", None, None, message("Nimbus plan", "The Nimbus acquisition closes in March."))
    conn.logout()
    add(two_orgs, mail)
    sync(two_orgs)
    with two_orgs.session() as s:
        before = set(s.scalars(select(Document.external_id)))
    conn = login(mail)
    conn.delete("Projects")
    conn.create("Projects")
    conn.append("Projects", None, None, message("Nimbus plan", "The Nimbus acquisition closes in April."))
    conn.logout()
    report = sync(two_orgs)
    with two_orgs.session() as s:
        after = set(s.scalars(select(Document.external_id)))
    assert (report.added, report.deleted) == (1, 1) and before != after  # a new UIDVALIDITY: new ids
    assert len(found(two_orgs, "eng@acme.example", "April")) == 1


@pytest.mark.parametrize(("uri", "config", "message"), [
    ("imap://alice:pw@mail.example", {"password_env": "X"}, "an imap source URI must not hold a password"),
    ("imap://mail.example", {"password_env": "X"}, "invalid imap source 'imap://mail.example': it needs the login"),
    ("pop3://alice@mail.example", {"password_env": "X"}, "invalid imap source 'pop3://alice@mail.example'"),
    ("imap://alice@mail.example/INBOX", {"password_env": "X"}, "invalid imap source 'imap://alice@mail.example/INBOX': choose folders"),
    ("imap://alice@mail.example", {}, "imap source settings: password_env: Field required"),
])
def test_bad_input_is_refused(two_orgs: Database, uri: str, config: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as exc, two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "mail", "imap", uri, config=config)
    assert str(exc.value).startswith(message)
