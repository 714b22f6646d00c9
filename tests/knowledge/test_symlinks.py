"""Files sources never follow symbolic links (issue 16, finding 6).

As found: a link in a public folder to an hr-only file made its text
searchable by a member with no groups, and ``/etc/passwd`` linked as
``passwd.md`` was indexed. The rule: no link is followed, inside the tree or
out of it, to a file or a folder; each is reported and nothing is read
through it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.identity import users
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.knowledge.connectors.base import Item
from cristal.knowledge.connectors.files import NOT_FOLLOWED, FilesConnector
from cristal.knowledge.schema import Document
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source

from .conftest import INSTALLATION

MODES = ("hybrid", "keyword", "dense")


def who(db: Database, org: str, email: str) -> Principal:
    with db.session() as s:
        return resolve_principal(s, org, email)


def external_ids(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Document.external_id)))


def texts(db: Database) -> str:
    with db.session() as s:
        return "\n".join(s.scalars(select(Document.text)))


@pytest.fixture
def nobody(indexed: Database) -> Principal:
    with indexed.session() as s:
        users.add_user(s, INSTALLATION, "acme", "nobody@acme.example")
    return who(indexed, "acme", "nobody@acme.example")


def test_a_link_in_a_public_folder_to_an_hr_file_is_not_followed(indexed: Database, company_docs: Path, nobody: Principal) -> None:
    (company_docs / "public" / "salaries.md").symlink_to(company_docs / "hr" / "salaries.md")
    (company_docs / "public" / "bands.md").symlink_to("../hr/salaries.md")  # relative, inside the tree
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    searcher = Searcher(indexed)
    for mode in MODES:
        assert "Salary bands" not in [h.title for h in searcher.search(nobody, "salary bands engineers", mode=mode)], mode
    assert "public/salaries.md" not in external_ids(indexed) and "public/bands.md" not in external_ids(indexed)
    reasons = {p["id"]: p["reason"] for p in report.skipped}
    assert reasons["public/salaries.md"] == reasons["public/bands.md"] == NOT_FOLLOWED
    # The target itself is indexed once, under its own folder's rule.
    assert "Salary bands" in [h.title for h in searcher.search(who(indexed, "acme", "hr@acme.example"), "salary bands engineers")]


def test_system_files_linked_into_the_tree_are_not_indexed(indexed: Database, company_docs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nThe vault code is 4711-outside.\n")
    (company_docs / "public" / "secret.md").symlink_to(outside / "secret.md")
    if Path("/etc/passwd").is_file():
        (company_docs / "public" / "passwd.md").symlink_to("/etc/passwd")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert "4711-outside" not in texts(indexed) and "root:" not in texts(indexed)
    assert not {"public/secret.md", "public/passwd.md"} & external_ids(indexed)
    assert {p["id"]: p["reason"] for p in report.skipped}["public/secret.md"] == NOT_FOLLOWED


def test_a_file_swapped_for_a_link_loses_what_was_indexed_from_it(indexed: Database, company_docs: Path, tmp_path: Path) -> None:
    (company_docs / "public" / "notes.md").write_text("# Notes\n\nPublic notes about the canteen.\n")
    sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert "public/notes.md" in external_ids(indexed)
    (tmp_path / "elsewhere.md").write_text("# Elsewhere\n\nNot part of the source.\n")
    (company_docs / "public" / "notes.md").unlink()
    (company_docs / "public" / "notes.md").symlink_to(tmp_path / "elsewhere.md")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert {"id": "public/notes.md", "reason": NOT_FOLLOWED} in report.skipped
    assert "public/notes.md" not in external_ids(indexed) and report.deleted == 1


def test_links_to_folders_and_link_loops_are_reported_and_not_entered(indexed: Database, company_docs: Path) -> None:
    before = external_ids(indexed)
    public = company_docs / "public"
    (public / "hr-inside").symlink_to(company_docs / "hr", target_is_directory=True)
    (public / "etc").symlink_to("/etc", target_is_directory=True)
    (public / "up").symlink_to("..", target_is_directory=True)  # a loop through the root
    (public / "ping.md").symlink_to("pong.md")  # two links pointing at each other
    (public / "pong.md").symlink_to("ping.md")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    reasons = {p["id"]: p["reason"] for p in report.skipped}
    for link in ("hr-inside", "etc", "up", "ping.md", "pong.md"):
        assert reasons[f"public/{link}"] == NOT_FOLLOWED, link
    assert external_ids(indexed) == before and report.added == 0 and report.deleted == 0


def test_a_linked_access_file_is_not_read_and_grants_nothing(
    indexed: Database, company_docs: Path, tmp_path: Path, nobody: Principal
) -> None:
    (tmp_path / "rules").write_text("org\nsecret-line-in-the-target\n")
    (company_docs / "board" / ".cristal-acl").symlink_to(tmp_path / "rules")
    report = sync_source(indexed, INSTALLATION, "acme", "wiki")
    assert "secret-line-in-the-target" not in str(report.skipped)
    assert any("access file is a symbolic link" in p["reason"] for p in report.skipped)
    for mode in MODES:
        assert "Board minutes" not in [h.title for h in Searcher(indexed).search(nobody, "acquisition board", mode=mode)]
    admin = who(indexed, "acme", "admin@acme.example")
    assert "Board minutes" in [h.title for h in Searcher(indexed).search(admin, "acquisition board")]


def test_a_file_replaced_by_a_link_between_scan_and_read_is_not_read(company_docs: Path, tmp_path: Path) -> None:
    (tmp_path / "target.md").write_text("# Target\n\nOutside the tree.\n")
    connector = FilesConnector(str(company_docs), ("org",))
    items = {i.external_id: i for i in connector.scan() if isinstance(i, Item)}
    travel = company_docs / "public" / "travel.md"
    travel.unlink()
    travel.symlink_to(tmp_path / "target.md")
    travel_read, q3_read = items["public/travel.md"].read, items["finance/q3.md"].read
    assert travel_read is not None and q3_read is not None
    with pytest.raises(OSError):
        travel_read()
    # The same for a folder on the way swapped for a link to another folder with a file of that name.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "q3.md").write_text("# Not Q3\n\nSomething else entirely.\n")
    os.rename(company_docs / "finance", tmp_path / "finance-moved")
    (company_docs / "finance").symlink_to(tmp_path / "other", target_is_directory=True)
    with pytest.raises(OSError, match="replaced"):
        q3_read()
