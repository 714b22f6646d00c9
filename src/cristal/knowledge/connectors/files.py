"""The files connector: a folder tree of Markdown, text, HTML, PDF, DOCX and e-mail files.

Hidden files and folders are skipped, symbolic links to folders are not
followed (no loops, no escaping the tree), and an unreadable folder is
reported and its documents are kept rather than deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from cristal.errors import InvalidInput
from cristal.knowledge.access import FolderRules
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.parse import DEFAULT_MAX_BYTES, SUPPORTED_EXTENSIONS


def _reader(path: Path):  # type: ignore[no-untyped-def]
    return lambda: path.read_bytes()


class FilesConnector:
    kind = "files"

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        root = Path(uri.removeprefix("file://")).expanduser()
        if not root.is_dir():
            raise InvalidInput(f"source folder {uri!r} does not exist or is not a folder")
        self.root = root.resolve()
        self.rules = FolderRules(self.root, acl)
        self.scope = ScanScope()
        self.max_bytes = int((options or {}).get("max_bytes", DEFAULT_MAX_BYTES))

    @staticmethod
    def validate(uri: str) -> str:
        root = Path(uri.removeprefix("file://")).expanduser()
        if not root.is_dir():
            raise InvalidInput(f"source folder {uri!r} does not exist or is not a folder")
        return str(root.resolve())

    def scan(self) -> Iterator[Item | ScanProblem]:
        problems: list[ScanProblem] = []

        def unreadable(error: OSError) -> None:
            rel = os.path.relpath(error.filename or str(self.root), self.root)
            self.scope.unseen_prefixes.append("" if rel == "." else rel.rstrip("/") + "/")
            problems.append(ScanProblem(rel, f"unreadable folder ({error.strerror})"))

        for folder, dirs, files in os.walk(self.root, onerror=unreadable, followlinks=False):
            yield from problems
            problems.clear()
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = Path(folder)
            acl = self.rules.for_folder(base)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = base / name
                rel = path.relative_to(self.root).as_posix()
                if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                    continue
                try:
                    stat = path.stat()
                except OSError as exc:
                    yield ScanProblem(rel, f"cannot read ({exc.strerror})")
                    continue
                if not path.is_file():
                    continue
                if stat.st_size > self.max_bytes:
                    # Refused before reading: a huge file must not be pulled into memory.
                    yield ScanProblem(rel, f"file too large: {stat.st_size / 1e6:.0f} MB > {self.max_bytes / 1e6:.0f} MB limit")
                    continue
                yield Item(
                    external_id=rel,
                    uri=path.as_uri(),
                    filename=name,
                    acl=acl,
                    mtime=stat.st_mtime,
                    size=stat.st_size,
                    read=_reader(path),
                )
        yield from problems
        for problem in self.rules.problems:
            yield ScanProblem(".cristal-acl", problem)
