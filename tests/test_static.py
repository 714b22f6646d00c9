"""Static checks as part of ``make test``: ruff over src/ and tests/, mypy as configured, and reasons on type ignores.

The rules live in ``pyproject.toml`` (``[tool.ruff]``, ``[tool.mypy]``); these tests only run the tools from the
repository root with this interpreter, so the pinned versions of the ``test`` extra are the ones that judge.
mypy keeps its incremental cache in ``.mypy_cache`` (git-ignored): a run after a small change takes seconds.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A `type: ignore[code]` comment followed by a second comment giving the reason: `# type: ignore[code]  # why`.
_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<codes>\[[^\]]*\])?(?P<rest>.*)")
_REASON = re.compile(r"^\s*#\s*(?!noqa\b)\S")



def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing_in_src_and_tests() -> None:
    result = _run("ruff", "check", "--no-fix", "--output-format", "concise", "src", "tests")
    if result.returncode != 0:
        pytest.fail(f"ruff check src tests:\n{result.stdout}{result.stderr}", pytrace=False)


def test_mypy_finds_nothing() -> None:
    result = _run("mypy")  # files, strictness and cache as [tool.mypy] says
    if result.returncode != 0:
        pytest.fail(f"mypy:\n{result.stdout}{result.stderr}", pytrace=False)


def ignores_without_reason(source: str) -> list[int]:
    """Line numbers of ``type: ignore`` comments in ``source`` that no ``# reason`` comment follows."""
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        match = _IGNORE.search(token.string) if token.type == tokenize.COMMENT else None
        if match and not _REASON.match(match["rest"]):
            lines.append(token.start[0])
    return lines


def test_every_type_ignore_says_why() -> None:
    missing = []
    for path in sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("tests/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        missing += [f"{relative}:{n}" for n in ignores_without_reason(path.read_text(encoding="utf-8"))]
    assert not missing, "`# type: ignore[code]` needs a reason: `# type: ignore[code]  # why`\n" + "\n".join(missing)


def test_the_reason_check_tells_reasons_from_bare_ignores() -> None:
    source = (
        "a = f()  # type: ignore[attr-defined]\n"
        "b = f()  # type: ignore[attr-defined]  # the stub lacks it\n"
        "c = f()  # type: ignore\n"
        "d = f()  # type: ignore[misc]  # noqa: E501\n"
        "e = '# type: ignore[misc]'\n"
    )
    assert ignores_without_reason(source) == [1, 3, 4]
