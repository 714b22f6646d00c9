"""``cristal.yamlfile``: YAML from people becomes plain JSON-able values, or one ``FILE:LINE`` error (issue 16, finding 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cristal import yamlfile
from cristal.errors import InvalidInput


def test_values_keep_their_lines_and_dates_stay_text() -> None:
    doc = yamlfile.parse("a: 1\nwhen: 2025-02-30\nat: 2025-01-31 10:00:00\nlist:\n  - x\n  - {due: 2025-01-31}\n", "f.yaml")
    assert yamlfile.plain(doc) == {"a": 1, "when": "2025-02-30", "at": "2025-01-31 10:00:00",
                                   "list": ["x", {"due": "2025-01-31"}]}
    assert json.loads(json.dumps(doc)) == doc
    assert yamlfile.line_at(doc, ("list", 1, "due")) == 6 and yamlfile.line_at(doc, ("when",)) == 2
    assert str(yamlfile.error_at("f.yaml", doc, ("list", 1, "due"), "not a date I like")) == \
        "f.yaml:6: list.1.due: not a date I like"


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\nsteps: " + "[" * 20_000 + "]" * 20_000 + "\n", "f.yaml:2: nested more than 100 levels deep"),
    ("a:\n" + "- " * 20_000 + "x\n", "f.yaml:2: nested more than 100 levels deep"),
    ("a: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", "f.yaml:1: nested more than 100 levels deep"),
    ("a: 1\nn: " + "9" * 5000 + "\n", "f.yaml:2: an integer with 5,000 digits (at most 300)"),
    ("n: -" + "9" * 301 + "\n", "f.yaml:1: an integer with more than 300 digits"),
    ("n: 0x" + "f" * 5000 + "\n", "f.yaml:1: an integer with 5,000 digits (at most 300)"),
    ("x: .inf\n", "f.yaml:1: '.inf' is not a finite number"),
    ("x: 1.0e+999\n", "f.yaml:1: '1.0e+999' is not a finite number"),
    ("x: .nan\n", "f.yaml:1: '.nan' is not a finite number"),
    ("a: 1\nx: !!binary aGVsbG8=\n", "f.yaml:2: !!binary values are not allowed"),
    ("x: !!set {a, b}\n", "f.yaml:1: !!set values are not allowed"),
    ("x: !!omap [a: 1]\n", "f.yaml:1: !!omap values are not allowed"),
    ("x: !!python/object:os.system id\n", "f.yaml:1: malformed YAML: could not determine a constructor"),
    ("a: &a [1]\nb: *a\n", "f.yaml:2: YAML aliases (*name) are not allowed in YAML files"),
    ("a: 1\na: 2\n", "f.yaml:2: malformed YAML: duplicate key 'a'"),
    ("? [a]\n: 1\n", "f.yaml:1: malformed YAML: keys must be plain names"),
    # The reader refuses these while it is built (a fuzzed HTTP body once got a 500 from it).
    ("a: \x00\n", "f.yaml: YAML file holds a character YAML does not allow (#x0000)"),
    ("a: \ud800\n", "f.yaml: YAML file holds a character YAML does not allow (#xd800)"),
])
def test_what_json_cannot_hold_is_refused_with_the_line(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        yamlfile.parse(text, "f.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_three_hundred_digits_are_fine() -> None:
    assert yamlfile.parse("n: " + "9" * 300, "f.yaml") == {"n": int("9" * 300)}


def test_files_and_sizes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"none\.yaml: no such agent file$"):
        yamlfile.read(tmp_path / "none.yaml", what="agent file")
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2000)
    with pytest.raises(InvalidInput, match=r"big\.yaml: agent file larger than 1,000 bytes$"):
        yamlfile.read(big, what="agent file", max_bytes=1000)
    (tmp_path / "bad.yaml").write_bytes(b"a: \xff\n")
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        yamlfile.read(tmp_path / "bad.yaml")


def test_command_line_values() -> None:
    assert [yamlfile.scalar(v) for v in ("250", "true", "2025-02-30", "[1, 2]", "a: b", "", "9" * 5000)] == [
        250, True, "2025-02-30", [1, 2], "a: b", "", "9" * 5000]


def test_a_scalar_item_of_a_block_list_has_its_own_line() -> None:
    root = yamlfile.parse("tools:\n  - first\n  - second\n", "f.yaml")
    assert yamlfile.line_at(root, ("tools", 1)) == 3
    assert str(yamlfile.error_at("f.yaml", root, ("tools", 0), "unknown")) == "f.yaml:2: tools.0: unknown"
