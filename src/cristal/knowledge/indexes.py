"""Which dense index an organization searches, and building a new one when its embedding model changes.

An organization searches exactly one dense index: its newest ``ready`` one, or
the bundled model's when it never chose another. Choosing another model
(``cristal org embeddings``) adds a ``building`` index; ``build_pending`` (run
by ``cristal sync``) embeds every chunk for it in batches while searches keep
reading the old index, and only once no chunk lacks a vector does one
transaction make it ``ready`` and retire the old one. A build that stops (the
endpoint died, the budget ran out) keeps its vectors and its reason, and the
next sync carries on; a half-built index is never searched.

The vectors of an index are stored under its ``key`` (``Embedding.model``),
which names the model and, for an endpoint, the URL serving it: two models
never share a key, so their vectors never mix. A query is embedded by the
embedder of the index it searches (``Embedders.for_index``), never by another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.errors import CristalError, InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge.embed import USE_MODEL_NAME, Embedder
from cristal.knowledge.index import bump_generation, embedding_input
from cristal.knowledge.schema import Chunk, Document, Embedding, EmbeddingIndex

if TYPE_CHECKING:
    import numpy as np

BUNDLED_DIM = 512
EMBED_BATCH = 32
# (principal, organization whose documents are embedded or None for the principal's own query, model, base URL,
# name of the key's environment variable) -> an embedder calling that endpoint
EndpointEmbedderFactory = Callable[[Principal, int | None, str, str, str | None], Embedder]


@dataclass(frozen=True)
class IndexInfo:
    """One dense index as the rest of the code sees it (``id`` None: the bundled model, never chosen)."""

    id: int | None
    backend: str
    model: str
    base_url: str | None
    api_key_env: str | None
    key: str
    dim: int | None
    state: str
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


BUNDLED = IndexInfo(None, "bundled", USE_MODEL_NAME, None, None, USE_MODEL_NAME, BUNDLED_DIM, "ready")


def index_key(model: str, base_url: str) -> str:
    """The storage key of an endpoint model: its name and a digest of the URL serving it."""
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:12]
    return f"{model[:80]}@{digest}"


def _info(row: EmbeddingIndex) -> IndexInfo:
    return IndexInfo(row.id, row.backend, row.model, row.base_url, row.api_key_env, row.key, row.dim, row.state, row.reason)


def serving_index(session: Session, org_id: int) -> IndexInfo:
    """The index searches read: the newest ready one, else the bundled model's."""
    row = session.scalars(
        select(EmbeddingIndex).where(EmbeddingIndex.org_id == org_id, EmbeddingIndex.state == "ready")
        .order_by(EmbeddingIndex.id.desc()).limit(1)
    ).first()
    return _info(row) if row is not None else BUNDLED


def building_index(session: Session, org_id: int) -> IndexInfo | None:
    row = session.scalars(
        select(EmbeddingIndex).where(EmbeddingIndex.org_id == org_id, EmbeddingIndex.state == "building")
        .order_by(EmbeddingIndex.id.desc()).limit(1)
    ).first()
    return _info(row) if row is not None else None


class Embedders:
    """Gives the embedder of an index: the bundled model here, endpoints through a factory from above.

    The knowledge layer cannot reach the model gateway (they are one layer); the processes that
    have a gateway (CLI, server, worker) pass ``endpoint``, built in ``cristal.models.embedder``.
    """

    def __init__(self, endpoint: EndpointEmbedderFactory | None = None, bundled: Embedder | None = None) -> None:
        self._endpoint = endpoint
        self._bundled = bundled

    def bundled(self) -> Embedder:
        if self._bundled is None:
            from cristal.knowledge.embed import default_embedder

            self._bundled = default_embedder()
        return self._bundled

    def for_index(self, principal: Principal, index: IndexInfo, documents_of: int | None = None) -> Embedder:
        """The embedder of ``index``; ``documents_of``: embedding that organization's documents (a sync), not a query."""
        if index.backend == "bundled":
            return self.bundled()
        if self._endpoint is None or index.base_url is None:
            raise CristalError(f"this process cannot call embedding endpoints (index {index.key!r} needs the model gateway)")
        return self._endpoint(principal, documents_of, index.model, index.base_url, index.api_key_env)


def encode_for(embedder: Embedder, index: IndexInfo, texts: list[str]) -> np.ndarray:
    """Vectors of ``texts`` for ``index``, refused if their dimension is not the index's."""
    vectors = embedder.encode(texts)
    if index.dim is not None and len(texts) and vectors.shape[1] != index.dim:
        raise CristalError(
            f"embedding model {index.model!r} now answers {vectors.shape[1]}-dimensional vectors, "
            f"its index holds {index.dim}: choose the model again with `cristal org embeddings` to rebuild")
    return vectors


def choose_model(
    session: Session,
    actor: Principal,
    org_slug: str,
    *,
    model: str | None,
    base_url: str | None,
    api_key_env: str | None = None,
) -> IndexInfo:
    """Choose the organization's embedding model (``model`` None: the bundled one); returns the index to be searched next.

    Choosing what is served already cancels a build under way; choosing anything else starts a new
    ``building`` index (and cancels any other build). Nothing is embedded here.
    """
    org = org_by_slug(session, org_slug)
    details = {"embedding_model": model or USE_MODEL_NAME, "embedding_base_url": base_url}
    require(session, actor, "org.update", in_org(org, "org", org_slug), details=details)
    if model is None:
        wanted = BUNDLED
    else:
        if not model.strip() or len(model) > 200:
            raise InvalidInput("the embedding model name must be 1 to 200 characters")
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"invalid embeddings endpoint {base_url!r}: must start with http:// or https://")
        wanted = IndexInfo(None, "endpoint", model, base_url, api_key_env, index_key(model, base_url), None, "building")
    serving = serving_index(session, org.id)
    pending = building_index(session, org.id)
    if pending is not None and pending.key == wanted.key and pending.api_key_env == wanted.api_key_env:
        return pending
    session.execute(update(EmbeddingIndex).where(EmbeddingIndex.org_id == org.id, EmbeddingIndex.state == "building")
                    .values(state="superseded", reason="another embedding model was chosen"))
    if serving.key == wanted.key and serving.api_key_env == wanted.api_key_env:
        return serving
    row = EmbeddingIndex(org_id=org.id, backend=wanted.backend, model=wanted.model, base_url=wanted.base_url,
                         api_key_env=wanted.api_key_env, key=wanted.key,
                         dim=BUNDLED_DIM if wanted.backend == "bundled" else None, state="building")
    session.add(row)
    session.flush()
    return _info(row)


@dataclass
class BuildReport:
    """What one build attempt did: ``state`` is ``ready`` when the new index now serves searches."""

    model: str
    key: str
    state: str
    embedded: int = 0
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def missing_inputs(session: Session, org_id: int, key: str, source_id: int | None = None) -> dict[str, str]:
    """What to embed for ``key``: the embedding input of each chunk text (by hash) that has no vector under it."""
    rows = select(Chunk.embed_hash, Document.title, Chunk.heading, Chunk.text).join(Document, Document.id == Chunk.doc_id)
    rows = rows.where(Document.source_id == source_id) if source_id is not None else rows.where(Chunk.org_id == org_id)
    have = select(Embedding.content_hash).where(Embedding.content_hash == Chunk.embed_hash, Embedding.model == key)
    todo: dict[str, str] = {}
    for embed_hash, title, heading, text in session.execute(rows.where(~have.correlate(Chunk).exists())):
        todo.setdefault(embed_hash, embedding_input(title, heading, text))
    return todo


def store_vectors(db: Database, org_id: int, index: IndexInfo, hashes: list[str], vectors: np.ndarray) -> None:
    """Save one batch of ``index``'s vectors (ones another process saved meanwhile are kept)."""
    from cristal.knowledge.embed import to_blob

    with db.session() as s:
        existing = set(s.scalars(select(Embedding.content_hash)
                                 .where(Embedding.model == index.key, Embedding.content_hash.in_(hashes))))
        fresh = [{"content_hash": h, "model": index.key, "vector": to_blob(v)}
                 for h, v in zip(hashes, vectors, strict=True) if h not in existing]
        if fresh:
            s.execute(insert(Embedding), fresh)
        bump_generation(s, org_id)


def build_pending(db: Database, actor: Principal, org_slug: str, embedders: Embedders) -> BuildReport | None:
    """Carry on building the organization's new index, if one is waiting; ``None``: nothing to build.

    Requires ``source.sync``. A failure of the embedder stops the build with its reason (kept on the
    index and returned); the old index keeps serving and the vectors made so far are kept.
    """
    with db.session() as s:
        org = org_by_slug(s, org_slug)
        require(s, actor, "source.sync", in_org(org, "knowledge", "reindex"))
        org_id = org.id
        index = building_index(s, org_id)
    if index is None:
        return None
    with db.exclusive(f"reindex:{org_id}", f"the new index of {org_slug!r} is being built by another process"):
        return _build(db, actor, org_id, index, embedders)


def _build(db: Database, actor: Principal, org_id: int, index: IndexInfo, embedders: Embedders) -> BuildReport:
    report = BuildReport(index.model, index.key, "building")
    try:
        embedder = embedders.for_index(actor, index, documents_of=org_id)
        # Chunks written by a sync meanwhile are found by the next round; the last round finds none.
        while todo := _missing(db, org_id, index.key):
            hashes = list(todo)
            for start in range(0, len(hashes), EMBED_BATCH):
                batch = hashes[start : start + EMBED_BATCH]
                vectors = encode_for(embedder, index, [todo[h] for h in batch])
                if index.dim is None and len(batch):
                    index = _record_dim(db, index, int(vectors.shape[1]))
                store_vectors(db, org_id, index, batch, vectors)
                report.embedded += len(batch)
            if not _still_building(db, index):
                report.state, report.reason = "superseded", "another embedding model was chosen during the build"
                return report
    except CristalError as exc:
        report.reason = f"the new index for {index.model!r} is not complete, searches keep the current one: {exc}"
        with db.session() as s:
            s.execute(update(EmbeddingIndex).where(EmbeddingIndex.id == index.id).values(reason=report.reason))
        return report
    with db.session() as s:
        row = s.get(EmbeddingIndex, index.id)
        if row is None or row.state != "building":
            report.state, report.reason = "superseded", "another embedding model was chosen during the build"
            return report
        s.execute(update(EmbeddingIndex).where(EmbeddingIndex.org_id == org_id, EmbeddingIndex.state == "ready")
                  .values(state="retired"))
        row.state, row.reason, row.ready_at = "ready", None, utcnow()
        if row.dim is None:  # an organization without chunks: the first vector will tell
            row.dim = index.dim
        bump_generation(s, org_id)
    report.state = "ready"
    return report


def _missing(db: Database, org_id: int, key: str) -> dict[str, str]:
    with db.session() as s:
        return missing_inputs(s, org_id, key)


def _record_dim(db: Database, index: IndexInfo, dim: int) -> IndexInfo:
    with db.session() as s:
        s.execute(update(EmbeddingIndex).where(EmbeddingIndex.id == index.id).values(dim=dim))
    return IndexInfo(index.id, index.backend, index.model, index.base_url, index.api_key_env, index.key, dim, index.state)


def _still_building(db: Database, index: IndexInfo) -> bool:
    with db.session() as s:
        row = s.get(EmbeddingIndex, index.id)
        return row is not None and row.state == "building"


def describe(session: Session, actor: Principal, org_slug: str) -> dict:
    """The organization's serving index and the one being built (for ``cristal org embeddings --show``)."""
    org = org_by_slug(session, org_slug)
    require(session, actor, "org.embeddings.read", in_org(org, "org", org_slug))
    pending = building_index(session, org.id)
    return {"serving": serving_index(session, org.id).as_dict(), "building": pending.as_dict() if pending else None}

