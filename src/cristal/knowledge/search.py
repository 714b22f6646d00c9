"""Hybrid search as the asking user: keyword + compound + dense, fused by reciprocal rank.

``search(db, principal, query)`` is what every later layer calls. It checks
``knowledge.search`` for the principal, filters by the principal's access
rules inside each retrieval query, and leaves one audit record naming the
documents whose text was returned.

A ranking names chunks by id, and an id alone is never trusted: the text of
a hit is fetched only for chunks of the principal's organization that they
may read, checked again in that query, so a stale cache or any other
mistake upstream can drop a hit but never show one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Set
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, TypeGuard, get_args

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased

from cristal.audit.log import write_audit
from cristal.db import Database
from cristal.errors import CristalError, InvalidInput
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource
from cristal.knowledge.keyword import compound_search, keyword_search
from cristal.knowledge.language import detect_language
from cristal.knowledge.schema import Chunk, Document, DocumentAccess, Source
from cristal.knowledge.tokenize import tokens

if TYPE_CHECKING:
    from cristal.db.schema import Organization
    from cristal.knowledge.dense import DenseIndex
    from cristal.knowledge.indexes import Embedders

Mode = Literal["hybrid", "keyword", "dense"]


def is_mode(value: str) -> TypeGuard[Mode]:
    """Whether ``value`` names a search mode (for input that is not yet checked, e.g. a CLI option)."""
    return value in get_args(Mode)


# Fusion settings measured on XQuAD/JSQuAD (benchmarks/bench_knowledge.py): a
# small k lets a list's top ranks dominate, and dense votes at half weight
# because the multilingual model ranks below BM25 within one language...
RRF_K = 10
MAX_QUERY_CHARS = 2000
WEIGHTS = {"keyword": 1.0, "compound": 0.25, "dense": 0.5}
# The multilingual model is weakest within Japanese (JSQuAD nDCG@10 0.80 vs 0.95 for keywords).
WEIGHTS_BY_LANG = {"ja": {"keyword": 1.0, "compound": 0.25, "dense": 0.25}}
# ...except for chunks in another language than the query, where word matches
# are mostly accidents and only the dense model understands both sides.
CROSS_LINGUAL_WEIGHTS = {"keyword": 0.25, "compound": 0.125, "dense": 1.0}


@dataclass(frozen=True)
class Hit:
    doc_id: int
    chunk_id: int
    title: str
    uri: str
    score: float
    snippet: str
    lang: str
    # Not part of the CLI's hit shape, but what citing agents need:
    text: str = ""
    start: int = 0
    end: int = 0
    heading: str = ""
    page: int | None = None

    def as_dict(self) -> dict:
        """The search-hit shape of DESIGN.md."""
        d = asdict(self)
        return {k: d[k] for k in ("doc_id", "chunk_id", "title", "uri", "score", "snippet", "lang")}


def rrf(
    rankings: dict[str, list[tuple[int, float]]],
    weights: dict[str, float] = WEIGHTS,
    *,
    foreign: Set[int] = frozenset(),
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: each list votes weight / (k + rank) for its items.

    Items in ``foreign`` (chunks in another language than the query) use the
    cross-lingual weights.
    """
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        for rank, (item, _) in enumerate(ranking):
            w = (CROSS_LINGUAL_WEIGHTS if item in foreign else weights).get(name, 1.0)
            fused[item] = fused.get(item, 0.0) + w / (RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def readable_chunks(org_id: int, matchers: list[str] | None) -> ColumnElement[bool]:
    """Chunks of ``org_id`` whose document one of ``matchers`` may read (``None``: an admin, all of them)."""
    doc = aliased(Document)  # the caller's query may join Document itself
    in_org = and_(
        Chunk.org_id == org_id,
        select(doc.id).where(doc.id == Chunk.doc_id, doc.org_id == org_id).correlate(Chunk).exists(),
    )
    if matchers is None:
        return in_org
    allowed = (
        select(DocumentAccess.doc_id)
        .where(DocumentAccess.doc_id == Chunk.doc_id, DocumentAccess.rule.in_(matchers))
        .correlate(Chunk)
    )
    return and_(in_org, allowed.exists())


@dataclass(frozen=True)
class Scope:
    """A narrower part of the organization's knowledge: documents of these sources, under these folders.

    Empty tuples do not narrow. A path is a prefix of the document's path within its source
    (``public/richtlinien/``). It only ever narrows what the principal may read (an agent's scope).
    """

    sources: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def condition(self, org_id: int) -> ColumnElement[bool]:
        """Chunks whose document lies within the scope."""
        doc = aliased(Document)
        inside = select(doc.id).where(doc.id == Chunk.doc_id, doc.org_id == org_id)
        if self.sources:
            inside = inside.join(Source, Source.id == doc.source_id).where(Source.name.in_(self.sources))
        if self.paths:
            inside = inside.where(or_(*(doc.external_id.startswith(p, autoescape=True) for p in self.paths)))
        return inside.correlate(Chunk).exists()


def _foreign(session: Session, rankings: dict[str, list[tuple[int, float]]], lang: str, where: ColumnElement[bool]) -> set[int]:
    """The candidate chunks written in another language than the query."""
    if lang == "und":
        return set()
    ids = {cid for ranking in rankings.values() for cid, _ in ranking}
    if not ids:
        return set()
    rows = session.execute(select(Chunk.id, Chunk.lang).where(Chunk.id.in_(ids), where))
    return {cid for cid, chunk_lang in rows if chunk_lang not in (lang, "und")}


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]?")


def snippet(text: str, query_tokens: set[str], lang: str, width: int = 280) -> str:
    """The sentence sharing most tokens with the query, trimmed to ``width`` characters."""
    best, best_score = text[:width], -1
    for m in _SENTENCE.finditer(text):
        sentence = m.group().strip()
        if not sentence:
            continue
        score = len(query_tokens.intersection(tokens(sentence, lang)))
        if score > best_score:
            best, best_score = sentence, score
    best = " ".join(best.split())
    return best if len(best) <= width else best[: width - 1] + "…"


class Searcher:
    """Search for one database; holds the embedders and the dense matrices so queries share them.

    ``embedders`` gives the embedder of each organization's serving index; without one only the
    bundled model is available (an organization searching an endpoint index then gets keyword
    results in hybrid mode, and an error in dense mode).
    """

    def __init__(self, db: Database, embedders: Embedders | None = None) -> None:
        self.db = db
        self._embedders = embedders
        self._dense: DenseIndex | None = None

    # numpy and the embedding model load with the first dense search, not with this module:
    # `cristal search --mode keyword` needs neither.
    @property
    def embedders(self) -> Embedders:
        if self._embedders is None:
            from cristal.knowledge.indexes import Embedders

            self._embedders = Embedders()
        return self._embedders

    @property
    def dense(self) -> DenseIndex:
        if self._dense is None:
            from cristal.knowledge.dense import DenseIndex

            self._dense = DenseIndex()
        return self._dense

    def search(
        self,
        principal: Principal,
        query: str,
        *,
        limit: int = 10,
        mode: Mode = "hybrid",
        request_id: str | None = None,
        scope: Scope | None = None,
    ) -> list[Hit]:
        query = (query or "").strip()
        if not query:
            raise InvalidInput("empty query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query too long ({len(query)} characters, at most {MAX_QUERY_CHARS})")
        if not 1 <= limit <= 100:
            raise InvalidInput("--limit must be between 1 and 100")
        request_id = request_id or uuid.uuid4().hex[:16]
        with self.db.session() as s:
            if principal.org_slug is None:  # the installation principal: refused (and audited) by the policy
                require(s, principal, "knowledge.search", Resource("knowledge", None, "search"), request_id=request_id)
            org = org_by_slug(s, principal.org_slug or "")
            require(s, principal, "knowledge.search", in_org(org, "knowledge", "search"),
                    request_id=request_id, details={"query": query[:300], "mode": mode})
            # The decision's audit record is written at commit, not flushed by the next read: on SQLite the
            # first write takes the database's one write lock, and holding it for the whole search made
            # parallel searches (research's sub-questions, other requests) wait past the busy timeout.
            with s.no_autoflush:
                hits = self._ranked(s, principal, org, query, limit, mode, scope)
            write_audit(
                s, principal=principal, action="document.read", resource=in_org(org, "documents", "search-results"),
                decision="allow", reason="search results", request_id=request_id,
                details={"docs": sorted({h.doc_id for h in hits})},
            )
        return hits

    def _ranked(self, s: Session, principal: Principal, org: Organization, query: str, limit: int, mode: Mode,
                scope: Scope | None = None) -> list[Hit]:
        """The hits of one search, read with ``principal``'s access filter (and within ``scope``, if given)."""
        matchers = None if principal.is_admin else sorted(principal.acl_matchers())
        # A scope is applied to the fused candidates, so retrieve deeper: candidates outside it are dropped.
        depth = max(limit * 4, 40) * (4 if scope else 1)
        lang = detect_language(query)
        query_tokens = tokens(query, lang if lang != "und" else "en")
        rankings: dict[str, list[tuple[int, float]]] = {}
        if mode in ("hybrid", "keyword"):
            rankings["keyword"] = keyword_search(s, org.id, query_tokens, matchers, depth)
            rankings["compound"] = compound_search(s, org.id, query, matchers, depth)
        if mode in ("hybrid", "dense"):
            try:
                rankings["dense"] = self._dense_ranking(s, principal, org.id, query, matchers, depth)
            except CristalError:
                if mode == "dense":
                    raise
                # An endpoint down or over budget: hybrid search still answers from the keyword index.
        readable = readable_chunks(org.id, matchers)
        if scope is not None:
            readable = and_(readable, scope.condition(org.id))
        fused = rrf(rankings, WEIGHTS_BY_LANG.get(lang, WEIGHTS), foreign=_foreign(s, rankings, lang, readable))
        hits = self._hits(s, fused, set(query_tokens), readable, limit)
        return hits

    def _dense_ranking(self, s: Session, principal: Principal, org_id: int, query: str, matchers: list[str] | None,
                       depth: int) -> list[tuple[int, float]]:
        """The dense ranking from the organization's serving index, the query embedded by that index's own model."""
        from cristal.knowledge.indexes import encode_for, serving_index

        index = serving_index(s, org_id)
        vector = encode_for(self.embedders.for_index(principal, index), index, [query])[0]
        return self.dense.search(s, org_id, index.key, vector, matchers, depth)

    @staticmethod
    def _hits(
        session: Session, fused: list[tuple[int, float]], query_tokens: set[str], readable: ColumnElement[bool], limit: int
    ) -> list[Hit]:
        """The best ``limit`` fused chunks that pass ``readable`` now, with their text."""
        hits: list[Hit] = []
        # In slices of the ranking: a chunk refused here makes room for the next one.
        for start in range(0, len(fused), limit):
            ranked = fused[start : start + limit]
            rows = {
                r.id: r for r in session.execute(
                    select(Chunk.id, Chunk.doc_id, Chunk.text, Chunk.lang, Chunk.start, Chunk.end, Chunk.heading, Chunk.page,
                           Document.title, Document.uri)
                    .join(Document, Document.id == Chunk.doc_id).where(Chunk.id.in_([cid for cid, _ in ranked]), readable)
                )
            }
            hits.extend(
                Hit(doc_id=r.doc_id, chunk_id=r.id, title=r.title, uri=r.uri, score=round(score, 6),
                    snippet=snippet(r.text, query_tokens, r.lang), lang=r.lang, text=r.text, start=r.start, end=r.end,
                    heading=r.heading, page=r.page)
                for cid, score in ranked if (r := rows.get(cid)) is not None
            )
            if len(hits) >= limit:
                break
        return hits[:limit]


def search(db: Database, principal: Principal, query: str, *, limit: int = 10, mode: Mode = "hybrid") -> list[Hit]:
    """One search as ``principal``; see ``Searcher`` to reuse the embedder across queries."""
    return Searcher(db).search(principal, query, limit=limit, mode=mode)
