"""Writing training data: a JSONL file is replaced whole or left as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cristal.environments.store import write_lines


def test_a_file_is_written_whole_or_left_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    assert write_lines(out, ['{"a": 1}', '{"a": 2}']) == 2
    assert out.read_text() == '{"a": 1}\n{"a": 2}\n'

    def failing() -> Iterator[str]:
        yield '{"b": 1}'
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        write_lines(out, failing())
    assert out.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]  # no temporary file left behind
