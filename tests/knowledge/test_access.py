"""Access rules: parsing, .cristal-acl files, nearest file wins."""

from pathlib import Path

import pytest

from cristal.errors import InvalidInput
from cristal.knowledge.access import FolderRules, parse_rule, parse_rules


def test_rules_are_canonical() -> None:
    assert parse_rule(" org ") == "org"
    assert parse_rule("group:finance") == "group:finance"
    assert parse_rule("user:Alice@Example.COM") == "user:alice@example.com"
    assert parse_rules("group:b,org, group:b") == ("group:b", "org")
    assert parse_rules("") is None and parse_rules(None) is None


@pytest.mark.parametrize("bad", ["everyone", "group:", "user:not-an-email", "role:admin", "group:bad name"])
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_rule(bad)


def test_nearest_acl_file_wins(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / ".cristal-acl").write_text("group:finance\n# a comment\n\nuser:x@y.example\n")
    (tmp_path / "a" / "b" / ".cristal-acl").write_text("group:hr\n")
    rules = FolderRules(tmp_path, ("org",))
    assert rules.for_folder(tmp_path) == ("org",)
    assert rules.for_folder(tmp_path / "a") == ("group:finance", "user:x@y.example")
    assert rules.for_folder(tmp_path / "a" / "b" / "c") == ("group:hr",)


def test_acl_file_with_only_bad_lines_grants_nothing(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / ".cristal-acl").write_text("everybody please\n")
    rules = FolderRules(tmp_path, ("org",))
    assert rules.for_folder(tmp_path / "secret") is None  # never falls back to the wider default
    assert rules.problems and "secret/.cristal-acl:1" in rules.problems[0]


def test_no_default_means_admins_only(tmp_path: Path) -> None:
    assert FolderRules(tmp_path, None).for_folder(tmp_path) is None
