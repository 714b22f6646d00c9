"""Tables of the knowledge layer: sources, documents with their access rules, chunks, embeddings.

The keyword index reads ``chunks.terms`` and ``chunks.text``: on SQLite through
two external-content FTS5 tables kept in step by triggers (``chunk_fts`` over
Cristal's own multilingual tokens, ``chunk_tri`` over trigrams of the text for
German compounds), on PostgreSQL through GIN indexes. The migration creates them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cristal.db.schema import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_sources_org_name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    uri: Mapped[str] = mapped_column(Text)
    # Default access rules for documents without a nearer rule; NULL = admins only.
    acl: Mapped[list | None] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync: Mapped[dict | None] = mapped_column(JSON)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("source_id", "external_id", name="uq_documents_source_external"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(1000))
    uri: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(8))
    mtime: Mapped[float | None] = mapped_column(Float)
    size: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    acl: Mapped[list | None] = mapped_column(JSON)
    # The canonical plain text: every chunk is a span of it, every citation quotes from it.
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentAccess(Base):
    """One access rule of one document; retrieval joins on it to filter inside the query."""

    __tablename__ = "document_access"
    __table_args__ = (Index("ix_document_access_rule", "rule", "doc_id"),)

    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(400), primary_key=True)


class Chunk(Base):
    __tablename__ = "chunks"
    # Chunk ids are the keyword index's rowids and what the dense matrix and hits name.
    __table_args__ = (Index("ix_chunks_org_doc", "org_id", "doc_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ord: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # Cristal's own tokens (stemmed, Japanese segmented), space-separated: what the keyword index reads.
    terms: Mapped[str] = mapped_column(Text)
    heading: Mapped[str] = mapped_column(Text, default="")
    page: Mapped[int | None] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(8))
    # Hash of what is embedded (context + text): identical chunks share one embedding.
    embed_hash: Mapped[str] = mapped_column(String(64), index=True)


class Embedding(Base):
    """An embedding cache keyed by content hash and model, so unchanged text is never embedded twice."""

    __tablename__ = "embeddings"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IndexState(Base):
    """Per-organization version of the index: changed whenever the index changes, so caches know to reload.

    ``token`` is random and new on every change, and the row goes with its
    organization: a cache built for one organization can never look current
    to another, even one that were given the same id.
    """

    __tablename__ = "index_state"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    token: Mapped[str] = mapped_column(String(32))


class EmbeddingIndex(Base):
    """One dense index of an organization: the model that made it, and whether it may be searched yet.

    ``key`` is what the index's vectors are stored under (``Embedding.model``): one key, one model, one
    vector space. Searches read the newest ``ready`` index (none yet: the bundled model); a newer
    ``building`` one is filled in the background and becomes ``ready`` only once every chunk has its
    vector, so a half-built index is never searched and vectors of two models are never mixed.
    """

    __tablename__ = "embedding_indexes"
    __table_args__ = (Index("ix_embedding_indexes_org_state", "org_id", "state"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    backend: Mapped[str] = mapped_column(String(20))  # "bundled" or "endpoint"
    model: Mapped[str] = mapped_column(String(200))
    # An endpoint index's route: its base URL (NULL: the organization's LLM endpoint) and key variable.
    base_url: Mapped[str | None] = mapped_column(String(500))
    api_key_env: Mapped[str | None] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int | None] = mapped_column(Integer)  # known from the first vector
    state: Mapped[str] = mapped_column(String(20))  # building, ready, retired, superseded
    reason: Mapped[str | None] = mapped_column(Text)  # why the last build attempt stopped
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
