"""Dense retrieval: exact cosine search over an organization's chunk embeddings.

The matrix is loaded once per process and organization and reloaded only when
the organization's index generation changes. Access filtering happens before
ranking: the scores of chunks the user may not read are masked out, so the
top-k are always k readable chunks (never a short or leaky page).

Exact search is a matrix product: at 100k chunks x 512 dimensions that is
50M multiply-adds, a few milliseconds on one core, so no approximate index
is needed at the scale one machine serves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.knowledge.index import generation
from cristal.knowledge.schema import Chunk, Embedding


@dataclass
class _Matrix:
    generation: int
    chunk_ids: np.ndarray
    doc_ids: np.ndarray
    vectors: np.ndarray


_cache: dict[tuple[str, int, str], _Matrix] = {}
_lock = threading.Lock()


def _load(session: Session, org_id: int, model: str, gen: int) -> _Matrix:
    rows = session.execute(
        select(Chunk.id, Chunk.doc_id, Embedding.vector)
        .join(Embedding, (Embedding.content_hash == Chunk.embed_hash) & (Embedding.model == model))
        .where(Chunk.org_id == org_id)
        .order_by(Chunk.id)
    ).all()
    if not rows:
        return _Matrix(gen, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.float32))
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    docs = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return _Matrix(gen, ids, docs, vectors)


def matrix(session: Session, org_id: int, model: str) -> _Matrix:
    gen = generation(session, org_id)
    key = (str(session.get_bind().engine.url), org_id, model)
    with _lock:
        cached = _cache.get(key)
        if cached is None or cached.generation != gen:
            cached = _cache[key] = _load(session, org_id, model, gen)
    return cached


def dense_search(
    session: Session,
    org_id: int,
    model: str,
    query_vector: np.ndarray,
    allowed_docs: np.ndarray | None,
    k: int,
) -> list[tuple[int, float]]:
    """(chunk id, cosine) of the ``k`` nearest readable chunks; ``allowed_docs=None`` means all."""
    m = matrix(session, org_id, model)
    if len(m.chunk_ids) == 0:
        return []
    scores = m.vectors @ query_vector.astype(np.float32)
    if allowed_docs is not None:
        scores = np.where(np.isin(m.doc_ids, allowed_docs), scores, -np.inf)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return [(int(m.chunk_ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
