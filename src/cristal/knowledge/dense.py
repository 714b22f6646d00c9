"""Dense retrieval: exact cosine search over an organization's chunk embeddings.

The matrix is loaded once per ``DenseIndex`` (one per ``Searcher``) and
organization, and reloaded only when the organization's index token changes
(content or access rules). With it come one row mask per access rule, so a
user's filter is the OR of the masks of the rules that match them. Filtering happens before ranking: the
scores of chunks the user may not read are masked out, so the top-k are
always k readable chunks (never a short or leaky page).

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

from cristal.errors import CristalError
from cristal.knowledge.index import index_tokens
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Embedding


@dataclass
class _Matrix:
    token: str | None
    chunk_ids: np.ndarray
    doc_ids: np.ndarray
    vectors: np.ndarray
    rule_masks: dict[str, np.ndarray]

    def readable(self, matchers: list[str]) -> np.ndarray:
        mask = np.zeros(len(self.chunk_ids), dtype=bool)
        for rule in matchers:
            rows = self.rule_masks.get(rule)
            if rows is not None:
                mask |= rows
        return mask


def _load(session: Session, org_id: int, model: str, token: str | None) -> _Matrix:
    rows = session.execute(
        select(Chunk.id, Chunk.doc_id, Embedding.vector)
        .join(Embedding, (Embedding.content_hash == Chunk.embed_hash) & (Embedding.model == model))
        .where(Chunk.org_id == org_id)
        .order_by(Chunk.id)
    ).all()
    if not rows:
        return _Matrix(token, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.float32), {})
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    docs = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    docs_by_rule: dict[str, list[int]] = {}
    for doc_id, rule in session.execute(
        select(DocumentAccess.doc_id, DocumentAccess.rule)
        .join(Document, Document.id == DocumentAccess.doc_id)
        .where(Document.org_id == org_id)
    ):
        docs_by_rule.setdefault(rule, []).append(doc_id)
    masks = {rule: np.isin(docs, np.asarray(doc_ids, dtype=np.int64)) for rule, doc_ids in docs_by_rule.items()}
    return _Matrix(token, ids, docs, vectors, masks)


class DenseIndex:
    """The matrices of one database's organizations, cached for as long as their owner lives.

    A ``Searcher`` holds one, so a long-lived server loads each matrix once.
    An entry is current only while its organization's index token is
    unchanged; entries of organizations that changed or were removed are
    dropped on the next search, so nothing of a removed organization stays
    in memory or can be served to whoever comes next.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], _Matrix] = {}
        self._lock = threading.Lock()

    def matrix(self, session: Session, org_id: int, model: str) -> _Matrix:
        with self._lock:
            tokens = index_tokens(session, {org_id} | {cached_org for cached_org, _ in self._cache})
            for key in [key for key, m in self._cache.items() if tokens.get(key[0]) != m.token]:
                del self._cache[key]
            token = tokens.get(org_id)
            cached = self._cache.get((org_id, model))
            if cached is None:
                cached = _load(session, org_id, model, token)
                if token is not None:  # nothing indexed yet: nothing worth keeping
                    self._cache[(org_id, model)] = cached
        return cached

    def cached_orgs(self) -> set[int]:
        """The organizations whose matrices are held (for tests and diagnostics)."""
        with self._lock:
            return {org_id for org_id, _ in self._cache}

    def search(
        self,
        session: Session,
        org_id: int,
        model: str,
        query_vector: np.ndarray,
        matchers: list[str] | None,
        k: int,
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the ``k`` nearest chunks readable under ``matchers``; ``None`` means all (admins).

        ``model`` is the index's key (``cristal.knowledge.indexes``): only vectors stored under it are read.
        """
        m = self.matrix(session, org_id, model)
        if len(m.chunk_ids) == 0:
            return []
        if m.vectors.shape[1] != len(query_vector):  # one key is one model, so this is a stored vector gone wrong
            raise CristalError(f"the query vector has {len(query_vector)} dimensions, the index {model!r} {m.vectors.shape[1]}")
        scores = m.vectors @ query_vector.astype(np.float32)
        if matchers is not None:
            scores = np.where(m.readable(matchers), scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(m.chunk_ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
