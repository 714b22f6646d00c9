"""The files connector: a folder tree of Markdown, text, HTML, PDF, DOCX and e-mail files.

Hidden files and folders are skipped, and an unreadable folder is reported
and its documents are kept rather than deleted.

Symbolic links are never followed, whether they point inside the tree or out
of it, to files or to folders: each one is reported ("symbolic link, not
followed") and anything indexed through it before is removed. A link would
otherwise give its target the access rule of the folder the link sits in --
a link in a public folder to an hr-only file, or to ``/etc/passwd``, made
that text searchable by everyone. A file is read without following a link
(``O_NOFOLLOW``) and only if it is still the file the scan saw (same device
and inode), so swapping a file or a folder for a link during a sync fails
that file instead of reading through it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from cristal.errors import InvalidInput
from cristal.knowledge.access import FolderRules
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.parse import DEFAULT_MAX_BYTES, SUPPORTED_EXTENSIONS

NOT_FOLLOWED = "symbolic link, not followed"


def _reader(path: Path, seen: os.stat_result, max_bytes: int) -> Callable[[], bytes]:
    """Read the regular file the scan saw at ``path`` -- not a link, not a file put there since."""

    def read() -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            now = os.fstat(fh.fileno())
            if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino) or not stat.S_ISREG(now.st_mode):
                raise OSError(errno.ESTALE, "the file was replaced during the sync")
            data = fh.read(max_bytes + 1)  # never more than the limit, even if the file grew
        if len(data) > max_bytes:
            raise OSError(errno.EFBIG, "the file grew beyond the size limit during the sync")
        return data

    return read


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

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def scan(self) -> Iterator[Item | ScanProblem]:
        problems: list[ScanProblem] = []

        def unreadable(error: OSError) -> None:
            rel = os.path.relpath(error.filename or str(self.root), self.root)
            self.scope.unseen_prefixes.append("" if rel == "." else rel.rstrip("/") + "/")
            problems.append(ScanProblem(rel, f"unreadable folder ({error.strerror})"))

        for folder, dirs, files in os.walk(self.root, onerror=unreadable, followlinks=False):
            yield from problems
            problems.clear()
            base = Path(folder)
            folders = []
            for name in sorted(d for d in dirs if not d.startswith(".")):
                if (base / name).is_symlink():  # os.walk lists links to folders here, and would not enter them
                    yield ScanProblem(self._rel(base / name), NOT_FOLLOWED, keep_indexed=False)
                else:
                    folders.append(name)
            dirs[:] = folders
            acl = self.rules.for_folder(base)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = base / name
                rel = self._rel(path)
                if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                    continue
                try:
                    info = path.lstat()
                except OSError as exc:
                    yield ScanProblem(rel, f"cannot read ({exc.strerror})")
                    continue
                if stat.S_ISLNK(info.st_mode):
                    yield ScanProblem(rel, NOT_FOLLOWED, keep_indexed=False)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_size > self.max_bytes:
                    # Refused before reading: a huge file must not be pulled into memory.
                    yield ScanProblem(rel, f"file too large: {info.st_size / 1e6:.0f} MB > {self.max_bytes / 1e6:.0f} MB limit")
                    continue
                yield Item(
                    external_id=rel,
                    uri=path.as_uri(),
                    filename=name,
                    acl=acl,
                    mtime=info.st_mtime,
                    size=info.st_size,
                    read=_reader(path, info, self.max_bytes),
                )
        yield from problems
        for problem in self.rules.problems:
            yield ScanProblem(".cristal-acl", problem)
