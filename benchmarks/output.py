"""Where benchmarks write their figures: ``benchmarks/results/`` (git-ignored, so a fresh clone has no such folder).

Every benchmark writes through ``write_json``, which creates the folder of the file it writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def results_path(name: str) -> Path:
    """``benchmarks/results/NAME``."""
    return RESULTS / name


def read_json(path: Path) -> dict[str, Any]:
    """The figures a previous run wrote to ``path``, or nothing."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def write_json(path: Path, document: Any, *, indent: int = 2) -> Path:
    """Write ``document`` as JSON to ``path``, creating its folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=indent, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path
