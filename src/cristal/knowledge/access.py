"""Access rules for documents: parsing them and finding the rule that applies.

Rules are ``org``, ``group:NAME`` or ``user:EMAIL`` (DESIGN.md). For the files
connector a ``.cristal-acl`` file governs its folder and everything below it;
the nearest one wins; without one the source's ``--acl`` applies; with neither
the document is for org admins only (``None``).
"""

from __future__ import annotations

from pathlib import Path

from cristal.errors import InvalidInput
from cristal.identity.validation import check_email, check_group

ACL_FILE = ".cristal-acl"


def parse_rule(raw: str) -> str:
    """One rule in canonical form, or ``InvalidInput`` saying what is wrong."""
    rule = raw.strip()
    if rule == "org":
        return rule
    kind, _, value = rule.partition(":")
    if kind == "group" and value:
        return f"group:{check_group(value.strip())}"
    if kind == "user" and value:
        return f"user:{check_email(value.strip())}"
    raise InvalidInput(f"invalid access rule {raw!r}: use org, group:NAME or user:EMAIL")


def parse_rules(rules: list[str] | str | None) -> tuple[str, ...] | None:
    """A comma-separated or list form of rules; ``None`` or empty means admins only."""
    if rules is None:
        return None
    items = rules.split(",") if isinstance(rules, str) else rules
    parsed = tuple(sorted({parse_rule(r) for r in items if r.strip()}))
    return parsed or None


def read_acl_file(path: Path) -> tuple[tuple[str, ...], list[str]]:
    """Rules of one ``.cristal-acl`` file and the problems found in it.

    Blank lines and ``#`` comments are ignored. A bad line is reported and
    skipped; the file still counts (an unreadable or all-bad file grants
    nothing, it never falls back to a wider rule).
    """
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return (), [f"{path}: unreadable access file ({exc.__class__.__name__})"]
    rules = set()
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rules.add(parse_rule(line))
        except InvalidInput as exc:
            problems.append(f"{path}:{number}: {exc}")
    return tuple(sorted(rules)), problems


class FolderRules:
    """Resolves the nearest ``.cristal-acl`` for files under one root, caching per folder."""

    def __init__(self, root: Path, default: tuple[str, ...] | None) -> None:
        self.root = root
        self.default = default
        self.problems: list[str] = []
        self._cache: dict[Path, tuple[str, ...] | None] = {}

    def for_folder(self, folder: Path) -> tuple[str, ...] | None:
        if folder in self._cache:
            return self._cache[folder]
        acl_file = folder / ACL_FILE
        if acl_file.is_symlink():
            # Not followed (its target could be any file, quoted back in problem lines); it still
            # counts as this folder's rule file, so the folder is for admins only.
            self.problems.append(f"{acl_file}: access file is a symbolic link, not followed (admins only)")
            result: tuple[str, ...] | None = None
        elif acl_file.is_file():
            rules, problems = read_acl_file(acl_file)
            self.problems.extend(problems)
            result = rules or None
        elif folder == self.root or self.root not in folder.parents:
            result = self.default
        else:
            result = self.for_folder(folder.parent)
        self._cache[folder] = result
        return result
