"""Trajectories: what a run saw and did, step by step, as one JSON file.

::

    {"format": "cristal-operator-trajectory", "version": 1,
     "run_id", "task", "org", "as", "start_url", "allow_domains", "allow_irreversible", "secrets": ["PASSWORD"],
     "started_at", "seconds", "status", "reason", "result", "final_url",
     "steps": [{"n", "observation", "action": {"tool", "args"}, "element": {"id", "role", "name", "tag", "key", "fp"},
                "url_before", "url_after", "ok", "outcome", "screenshot", "ms": {"model", "action", "observe"}}]}

The file is rewritten (atomically) after every step, so a crash keeps the
record so far. Secrets appear only as ``{{NAME}}``: every string was redacted
before it got here. Screenshots, when asked for, go to a sibling folder
``<name>.screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from cristal.errors import InvalidInput

# A record's file name inside the organization's records folder: no separators, no "..", no hidden files.
RECORD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.json$")

FORMAT = "cristal-operator-trajectory"
VERSION = 1


class Recorder:
    """The trajectory of one run, in memory and (with a path) on disk."""

    def __init__(self, path: Path | None, header: dict[str, Any]) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, **header, "status": "running", "steps": []}
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(f"cannot write the record {path}: {exc.strerror}") from None
            self.save()

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.doc["steps"]
        return steps

    def screenshot_dir(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".screenshots")

    def add(self, step: dict[str, Any], screenshot: bytes | None = None) -> None:
        if screenshot is not None and self.path is not None:
            folder = self.screenshot_dir()
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            name = f"step-{step['n']:03d}.png"
            (folder / name).write_bytes(screenshot)
            step["screenshot"] = f"{folder.name}/{name}"
        self.steps.append(step)
        self.save()

    def update(self, **fields: Any) -> None:
        self.doc.update(fields)
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = json.dumps(self.doc, ensure_ascii=False, indent=1, default=str)
        fd, tmp = tempfile.mkstemp(prefix=".record-", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def load(path: Path) -> dict[str, Any]:
    """A trajectory file, checked enough that replay can trust its shape."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"no such recording: {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not an operator recording (made by `cristal operate --record`)")
    if doc.get("version") != VERSION:
        raise InvalidInput(f"{path} is a version {doc.get('version')} recording; this Cristal reads version {VERSION}")
    for key in ("start_url", "allow_domains", "steps"):
        if key not in doc:
            raise InvalidInput(f"{path} has no {key!r}")
    if not isinstance(doc["steps"], list) or not all(isinstance(s, dict) for s in doc["steps"]):
        raise InvalidInput(f"{path}: 'steps' must be a list of objects")
    return doc


def mark_interrupted(path: Path, reason: str) -> bool:
    """Close a record whose run died mid-way (status ``failed``, ``reason``); its steps stay. ``False`` if there is none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return False
    if doc.get("status") == "running":
        recorder = Recorder.__new__(Recorder)  # reuse the atomic save without writing a fresh header
        recorder.path, recorder.doc = path, doc
        recorder.update(status="failed", reason=reason)
    return True
