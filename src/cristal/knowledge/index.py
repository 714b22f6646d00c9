"""Writing the index: a document's row, its access rules, its chunks (and so the keyword index).

Everything about one document is written in the caller's transaction, so a
document is always either fully in its old state or fully in its new one —
an interrupted sync never leaves it half-indexed.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import CursorResult, Executable, delete, insert, select, update
from sqlalchemy.orm import Session

from cristal.knowledge.chunk import chunk_document
from cristal.knowledge.parse.document import DEFAULT_LIMITS, DocumentLimits, ParsedDocument
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Embedding, IndexState
from cristal.knowledge.tokenize import terms


def embedding_input(title: str, heading: str, text: str) -> str:
    """What is embedded for a chunk: its text with the title and headings as context."""
    context = " > ".join(p for p in (title, heading) if p)
    return f"{context}\n{text}" if context else text


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed (``Session.execute`` is typed as any ``Result``)."""
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount


def bump_generation(session: Session, org_id: int) -> None:
    """Tell in-process caches (the dense matrix) that this organization's index changed.

    Caches compare the random token, not the counter: a token is never issued
    twice, so no cache can look current to a later state or another organization.
    """
    token = uuid.uuid4().hex
    updated = _rows_changed(
        session, update(IndexState).where(IndexState.org_id == org_id).values(generation=IndexState.generation + 1, token=token)
    )
    if updated == 0:
        session.add(IndexState(org_id=org_id, generation=1, token=token))
        session.flush()


def set_access(session: Session, doc_id: int, acl: tuple[str, ...] | None) -> None:
    session.execute(delete(DocumentAccess).where(DocumentAccess.doc_id == doc_id))
    if acl:
        session.execute(insert(DocumentAccess), [{"doc_id": doc_id, "rule": r} for r in acl])


def write_document(
    session: Session,
    *,
    org_id: int,
    source_id: int,
    external_id: str,
    uri: str,
    content_hash: str,
    acl: tuple[str, ...] | None,
    parsed: ParsedDocument,
    mtime: float | None,
    size: int,
    existing_id: int | None,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> tuple[int, int]:
    """Insert or replace one document with its chunks; returns (document id, chunk count).

    A document over ``limits`` is refused (``DocumentTooLarge``) before anything is written.
    """
    if len(parsed.text) > limits.max_chars:  # connectors that build documents themselves come through here too
        raise limits.too_many_chars()
    spans = chunk_document(parsed, limits=limits)
    values = {
        "org_id": org_id, "source_id": source_id, "external_id": external_id, "uri": uri, "title": parsed.title,
        "lang": parsed.language, "mtime": mtime, "size": size, "content_hash": content_hash,
        "acl": list(acl) if acl else None, "text": parsed.text, "meta": parsed.metadata,
    }
    if existing_id is None:
        doc = Document(**values)
        session.add(doc)
        session.flush()
        doc_id = doc.id
    else:
        doc_id = existing_id
        session.execute(delete(Chunk).where(Chunk.doc_id == doc_id))
        session.execute(update(Document).where(Document.id == doc_id).values(**values))
    set_access(session, doc_id, acl)
    rows = []
    for span in spans:
        rows.append({
            "org_id": org_id, "doc_id": doc_id, "ord": span.ord, "start": span.start, "end": span.end,
            "text": span.text, "terms": terms(f"{span.heading}\n{span.text}", parsed.language),
            "heading": span.heading, "page": span.page, "lang": parsed.language,
            "embed_hash": _hash(embedding_input(parsed.title, span.heading, span.text)),
        })
    if rows:
        session.execute(insert(Chunk), rows)
    return doc_id, len(rows)


def delete_documents(session: Session, doc_ids: list[int]) -> None:
    """Remove documents and their chunks (the keyword index follows through triggers)."""
    for start in range(0, len(doc_ids), 500):
        batch = doc_ids[start : start + 500]
        session.execute(delete(Chunk).where(Chunk.doc_id.in_(batch)))
        session.execute(delete(DocumentAccess).where(DocumentAccess.doc_id.in_(batch)))
        session.execute(delete(Document).where(Document.id.in_(batch)))


def index_tokens(session: Session, org_ids: set[int]) -> dict[int, str]:
    """The current index token of each organization that has an index (absent: nothing indexed, or removed)."""
    if not org_ids:
        return {}
    rows = session.execute(select(IndexState.org_id, IndexState.token).where(IndexState.org_id.in_(org_ids)))
    return {org_id: token for org_id, token in rows}


def delete_unused_embeddings(session: Session) -> int:
    """Drop cached embeddings that no chunk uses any more (after a source or an organization is removed)."""
    used = select(Chunk.id).where(Chunk.embed_hash == Embedding.content_hash).exists()
    return _rows_changed(session, delete(Embedding).where(~used)) or 0
