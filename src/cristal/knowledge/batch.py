"""Batch search input: a JSONL file with one ``{"id", "query"}`` object a line (``cristal search --queries``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from cristal.errors import InvalidInput


class BatchQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int
    query: str


def read_queries(path: Path) -> list[BatchQuery]:
    """Every query of the file; a line that is not such an object is bad input, reported with its number."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    batch = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            batch.append(BatchQuery.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError):
            raise InvalidInput(f"{path}:{number}: expected a JSON object with \"id\" and \"query\"") from None
    return batch
