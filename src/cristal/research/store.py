"""Checkpoints of research runs, so an interrupted run resumes where it stopped.

Until the workflow engine hosts research runs, the notes of each run are a
JSON file under ``$CRISTAL_HOME/runs/research/RUN_ID.json``, replaced
atomically after every step (a crash leaves the previous checkpoint intact).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from cristal.errors import InvalidInput, NotFound
from cristal.research.notes import Notes

_RUN_ID = re.compile(r"^[0-9a-f]{12}$")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class CheckpointStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id or ""):
            raise InvalidInput(f"not a research run id: {run_id!r} (12 hexadecimal characters)")
        return self.root / f"{run_id}.json"

    def save(self, run_id: str, notes: Notes, result: dict | None = None) -> None:
        path = self._path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        document = {"run_id": run_id, "notes": notes.as_dict(), "result": result}
        tmp.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, run_id: str) -> tuple[Notes, dict | None]:
        path = self._path(run_id)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(f"no research run {run_id} in {self.root}") from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"the checkpoint of research run {run_id} is unreadable: {exc}") from None
        return Notes.from_dict(document["notes"]), document.get("result")
