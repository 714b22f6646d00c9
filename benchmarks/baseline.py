"""An older commit checked out beside this tree, so a benchmark can run both in the same session.

Figures from one run are comparable because both trees take turns on the same machine
under the same load; figures from different days are not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def baseline_tree(commit: str, where: Path) -> Path | None:
    """A checkout of ``commit`` in ``where`` (``git worktree add``), or ``None`` with the reason printed."""
    if shutil.which("git") is None:
        print(f"baseline skipped: git is not installed, so {commit[:7]} cannot be checked out", file=sys.stderr)
        return None
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        print(f"baseline skipped: {ROOT} is not a git checkout, so {commit[:7]} cannot be checked out", file=sys.stderr)
        return None
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        print(f"baseline skipped: commit {commit[:7]} is not in this clone's history (a shallow clone or an export?)",
              file=sys.stderr)
        return None
    added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit], capture_output=True, text=True)
    if added.returncode != 0:
        print(f"baseline skipped: git worktree add failed: {added.stderr.strip()}", file=sys.stderr)
        return None
    return where


@contextmanager
def checked_out(commit: str | None, where: Path) -> Iterator[Path | None]:
    """``baseline_tree`` for the duration of a ``with`` block (``None``: no commit, or it could not be checked out)."""
    checkout = None if commit is None else baseline_tree(commit, where)
    try:
        yield checkout
    finally:
        if checkout is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], capture_output=True)
