"""Keyword retrieval with the access filter inside the query.

SQLite: BM25 over the FTS5 table of Cristal's tokens, plus a trigram FTS5
table that finds German compound parts (``abrechnung`` in
``Reisekostenabrechnungen``). PostgreSQL: ``ts_rank`` over a GIN-indexed
``to_tsvector('simple', terms)`` plus ``pg_trgm`` for compound parts.
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from cristal.knowledge.tokenize import normalize

# Latin-script words only: Japanese has no spaces, so a "long word" there is a
# whole sentence, and the Sudachi tokens already cover it.
_LONG_WORD = re.compile(r"[a-z\u00c0-\u024f]{5,}")


def _access_clause(matchers: list[str] | None) -> str:
    if matchers is None:  # admins: everything in the organization
        return ""
    return " AND EXISTS (SELECT 1 FROM document_access a WHERE a.doc_id = c.doc_id AND a.rule IN :matchers)"


def _params(org_id: int, matchers: list[str] | None, k: int, **extra: object) -> dict:
    params = {"org": org_id, "k": k, **extra}
    if matchers is not None:
        params["matchers"] = matchers
    return params


def _run(session: Session, sql: str, params: dict) -> list[tuple[int, float]]:
    stmt = text(sql)
    if "matchers" in params:
        stmt = stmt.bindparams(bindparam("matchers", expanding=True))
    return [(int(r[0]), float(r[1])) for r in session.execute(stmt, params)]


def _fts5(session: Session, table: str, phrases: list[str], org_id: int, matchers: list[str] | None, k: int) -> list[tuple[int, float]]:
    """BM25 over one FTS5 table (``chunk_fts`` or ``chunk_tri``), any of ``phrases``, filtered by access."""
    match = " OR ".join('"' + p.replace('"', '""') + '"' for p in phrases)
    sql = (
        f"SELECT c.id, -bm25({table}) AS score FROM {table} JOIN chunks c ON c.id = {table}.rowid "
        f"WHERE {table} MATCH :q AND c.org_id = :org" + _access_clause(matchers) + f" ORDER BY bm25({table}) LIMIT :k"
    )
    return _run(session, sql, _params(org_id, matchers, k, q=match))


def keyword_search(session: Session, org_id: int, query_terms: list[str], matchers: list[str] | None, k: int) -> list[tuple[int, float]]:
    """(chunk id, score) best first; higher is better on both backends."""
    unique = list(dict.fromkeys(t for t in query_terms if t))
    if not unique:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return _fts5(session, "chunk_fts", unique, org_id, matchers, k)
    tsquery = " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in unique)
    sql = (
        "SELECT c.id, ts_rank(to_tsvector('simple', c.terms), to_tsquery('simple', :q)) AS score FROM chunks c "
        "WHERE to_tsvector('simple', c.terms) @@ to_tsquery('simple', :q) AND c.org_id = :org"
        + _access_clause(matchers) + " ORDER BY score DESC LIMIT :k"
    )
    return _run(session, sql, _params(org_id, matchers, k, q=tsquery))


def compound_search(session: Session, org_id: int, query: str, matchers: list[str] | None, k: int) -> list[tuple[int, float]]:
    """Chunks containing long query words as substrings (compound parts); empty when there are none."""
    words = list(dict.fromkeys(_LONG_WORD.findall(normalize(query))))[:8]
    if not words:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return _fts5(session, "chunk_tri", words, org_id, matchers, k)
    patterns = ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
    score = " + ".join(f"(CASE WHEN c.text ILIKE :p{i} THEN 1 ELSE 0 END)" for i in range(len(patterns)))
    where = " OR ".join(f"c.text ILIKE :p{i}" for i in range(len(patterns)))
    sql = (
        f"SELECT c.id, ({score}) AS score FROM chunks c WHERE ({where}) AND c.org_id = :org"
        + _access_clause(matchers) + " ORDER BY score DESC, c.id LIMIT :k"
    )
    return _run(session, sql, _params(org_id, matchers, k, **{f"p{i}": p for i, p in enumerate(patterns)}))
