"""Incremental sync: bring one source's part of the index up to date.

1. The connector lists the source; each item is hashed (content + pipeline
   settings). Unchanged items cost a hash; items whose only change is their
   access rules get new rules without re-indexing.
2. New and changed items are parsed, chunked and written one document per
   transaction: a sync killed at any point leaves every document either old
   or new, and the next sync finishes the job with the same result.
3. Documents that disappeared are deleted — except under folders or tables
   the scan could not read, whose documents are kept.
4. Dense embeddings are computed afterwards in batches, cached by content
   hash, so keyword search is ready first and unchanged text is never
   embedded twice. They go into the index searches read now (see
   ``cristal.knowledge.indexes``); a new index being built gets them from
   ``build_pending``. An embedder that fails is a reason in the summary.

Problems (corrupt files, undecodable text, unreadable folders, a database
failing mid-sync) are reported in the summary; the rest of the sync completes.
A document over a per-document limit (text, chunks, inflated size: see
``DocumentLimits``) is skipped whole with the reason, which the source's
last-sync record keeps too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from sqlalchemy import distinct, func, select

from cristal.config import Settings, load_settings
from cristal.db import Database
from cristal.db.schema import utcnow
from cristal.errors import CristalError, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge.connectors import CONNECTORS, Item, ScanProblem
from cristal.knowledge.connectors.base import RemembersPrevious
from cristal.knowledge.index import bump_generation, delete_documents, set_access, write_document
from cristal.knowledge.indexes import EMBED_BATCH, Embedders, encode_for, missing_inputs, serving_index, store_vectors
from cristal.knowledge.parse import DocumentLimits, ParseError, parse_bytes
from cristal.knowledge.pii import redact_document
from cristal.knowledge.schema import Chunk, Document, Source
from cristal.knowledge.sources import source_by_name

# Bump when parsing or chunking changes, so every document is re-indexed once.
PIPELINE_VERSION = "1"
# The source's last-sync record names this many skipped documents with their reasons.
LAST_SYNC_SKIPPED_ITEMS = 200

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class SyncReport:
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    access_changed: int = 0
    deleted: int = 0
    kept_unseen: int = 0
    chunks_written: int = 0
    embedded: int = 0
    embeddings_reused: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _content_hash(item: Item, data: bytes | None, options: dict) -> str:
    digest = hashlib.sha256()
    digest.update(f"{PIPELINE_VERSION}|{json.dumps(options, sort_keys=True)}|".encode())
    digest.update(data if data is not None else (item.fingerprint or "").encode())
    return digest.hexdigest()


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def sync_source(
    db: Database,
    actor: Principal,
    org_slug: str,
    name: str,
    *,
    embed: bool = True,
    embedders: Embedders | None = None,
    progress: ProgressFn = _no_progress,
    settings: Settings | None = None,
) -> SyncReport:
    """Sync one source as ``actor``; ``settings`` (default: this process's) set the per-document limits.

    One sync of a source runs at a time, across processes: another one at the
    same moment fails at once with ``Busy`` (two first syncs would otherwise
    both insert every document).
    """
    started = time.perf_counter()
    limits = DocumentLimits.from_settings(settings or load_settings())
    with db.session() as s:
        org = org_by_slug(s, org_slug)
        require(s, actor, "source.sync", in_org(org, "source", name))
        org_id, source_id = org.id, source_by_name(s, org.id, name).id
    busy = f"source {name!r} of {org_slug!r} is being synced by another process; try again when it has finished"
    with db.exclusive(f"sync:source:{source_id}", busy):
        return _sync_locked(db, actor, org_id, source_id, name, embed, embedders, progress, limits, started)


def _sync_locked(
    db: Database,
    actor: Principal,
    org_id: int,
    source_id: int,
    name: str,
    embed: bool,
    embedders: Embedders | None,
    progress: ProgressFn,
    limits: DocumentLimits,
    started: float,
) -> SyncReport:
    """The sync itself, under the source's lock: what is indexed is read only now."""
    with db.session() as s:
        source = s.get(Source, source_id)
        if source is None:
            raise NotFound(f"unknown source {name!r}")
        options = dict(source.options or {})
        connector = CONNECTORS[source.kind](source.uri, tuple(source.acl) if source.acl else None, options)
        known = {
            row.external_id: (row.id, row.content_hash, tuple(row.acl) if row.acl else None)
            for row in s.execute(select(Document.external_id, Document.id, Document.content_hash, Document.acl)
                                 .where(Document.source_id == source_id))
        }
        if isinstance(connector, RemembersPrevious):  # connectors with conditional requests or known message ids
            connector.remember({ext: dict(meta or {}) for ext, meta in s.execute(
                select(Document.external_id, Document.meta).where(Document.source_id == source_id))})

    report = SyncReport(source=name)
    progress("scan", 0, 0)
    listed = list(connector.scan())
    items = [i for i in listed if isinstance(i, Item)]
    # A document that could not be read this time keeps its indexed version.
    seen: set[str] = set()
    for problem in (p for p in listed if isinstance(p, ScanProblem)):
        report.skipped.append({"id": problem.external_id, "reason": problem.reason})
        if problem.keep_indexed:
            seen.add(problem.external_id)

    for done, item in enumerate(items, 1):
        seen.add(item.external_id)
        try:
            _sync_item(db, item, known.get(item.external_id), org_id, source_id, options, report, limits)
        except ParseError as exc:
            # Keep the previous version, if any: nothing already indexed is lost.
            report.skipped.append({"id": item.external_id, "reason": str(exc)})
        except OSError as exc:
            report.skipped.append({"id": item.external_id, "reason": f"cannot read ({exc.strerror or exc})"})
        progress("index", done, len(items))

    gone = [
        doc_id for ext, (doc_id, _, _) in known.items()
        if ext not in seen and not _under(ext, connector.scope.unseen_prefixes)
    ]
    report.kept_unseen = sum(1 for ext in known if ext not in seen and _under(ext, connector.scope.unseen_prefixes))
    if not connector.scope.complete:
        report.kept_unseen += len(gone)
        gone = []
    if gone:
        with db.session() as s:
            delete_documents(s, gone)
            bump_generation(s, org_id)
        report.deleted = len(gone)

    if embed:
        embed_source(db, actor, org_id, source_id, embedders or Embedders(), report, progress)

    report.seconds = round(time.perf_counter() - started, 3)
    with db.session() as s:
        row = s.get(Source, source_id)
        if row is not None:
            row.last_sync_at = utcnow()
            row.last_sync = {k: v for k, v in report.as_dict().items() if k != "skipped"} | {
                "skipped": len(report.skipped), "skipped_items": report.skipped[:LAST_SYNC_SKIPPED_ITEMS]}
    return report


def _under(external_id: str, prefixes: list[str]) -> bool:
    return any(p == "" or external_id == p or external_id.startswith(p) for p in prefixes)


def _sync_item(
    db: Database,
    item: Item,
    known: tuple[int, str, tuple[str, ...] | None] | None,
    org_id: int,
    source_id: int,
    options: dict,
    report: SyncReport,
    limits: DocumentLimits,
) -> None:
    # With a fingerprint the content is read only once it is known to have changed.
    data = item.read() if item.read is not None and item.fingerprint is None else None
    content_hash = _content_hash(item, data, options)
    if known is not None and known[1] == content_hash:
        if known[2] != item.acl:
            with db.session() as s:
                set_access(s, known[0], item.acl)
                s.query(Document).filter(Document.id == known[0]).update({"acl": list(item.acl) if item.acl else None})
                bump_generation(s, org_id)
            report.access_changed += 1
        else:
            report.unchanged += 1
        return
    if data is None and item.read is not None and item.parsed is None:
        data = item.read()
    parsed = item.parsed if item.parsed is not None else parse_bytes(data or b"", item.filename, limits=limits)
    if item.meta:
        parsed.metadata = {**parsed.metadata, **item.meta}
    if options.get("redact_pii"):
        parsed = redact_document(parsed)
    with db.session() as s:
        _, chunks = write_document(
            s, org_id=org_id, source_id=source_id, external_id=item.external_id, uri=item.uri,
            content_hash=content_hash, acl=item.acl, parsed=parsed, mtime=item.mtime,
            size=item.size or len(data or b""), existing_id=known[0] if known else None, limits=limits,
        )
        bump_generation(s, org_id)
    report.chunks_written += chunks
    if known is None:
        report.added += 1
    else:
        report.updated += 1


def embed_source(
    db: Database, actor: Principal, org_id: int, source_id: int, embedders: Embedders, report: SyncReport,
    progress: ProgressFn = _no_progress,
) -> None:
    """Embed every chunk of the source that has no vector in the organization's serving index yet.

    The embedder failing (an endpoint down, over budget) stops embedding with the reason in the
    summary: the documents stay indexed for keyword search, and the next sync embeds the rest.
    """
    with db.session() as s:
        index = serving_index(s, org_id)
        todo = missing_inputs(s, org_id, index.key, source_id)
        report.embeddings_reused = (s.scalar(
            select(func.count(distinct(Chunk.embed_hash))).join(Document, Document.id == Chunk.doc_id)
            .where(Document.source_id == source_id)) or 0) - len(todo)
    hashes = list(todo)
    try:
        embedder = embedders.for_index(actor, index, documents_of=org_id) if hashes else None
        for start in range(0, len(hashes), EMBED_BATCH):
            assert embedder is not None
            batch = hashes[start : start + EMBED_BATCH]
            store_vectors(db, org_id, index, batch, encode_for(embedder, index, [todo[h] for h in batch]))
            report.embedded += len(batch)
            progress("embed", min(start + EMBED_BATCH, len(hashes)), len(hashes))
    except CristalError as exc:
        report.skipped.append({"id": "(embeddings)", "reason": f"{len(hashes) - report.embedded} chunks not embedded "
                               f"with {index.model!r}, keyword search has them: {exc}"})
