"""Sources: the systems an organization connects (folders, databases), with their default access rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cristal.db.engine import normalize_url, redact
from cristal.errors import AlreadyExists, InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge.access import parse_rules
from cristal.knowledge.connectors import CONNECTORS, checked_settings
from cristal.knowledge.index import bump_generation, delete_documents, delete_unused_embeddings
from cristal.knowledge.schema import Document, Source

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    uri: str
    acl: tuple[str, ...] | None
    options: dict
    documents: int
    last_sync_at: datetime | None
    last_sync: dict | None

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "uri": self.uri, "acl": list(self.acl) if self.acl else None,
            "options": self.options, "documents": self.documents,
            "last_sync_at": self.last_sync_at.isoformat() if self.last_sync_at else None, "last_sync": self.last_sync,
        }


def _shown_uri(source: Source) -> str:
    return redact(normalize_url(source.uri)) if source.kind == "sql" else source.uri


def _info(session: Session, source: Source) -> SourceInfo:
    count = session.scalar(select(func.count()).select_from(Document).where(Document.source_id == source.id)) or 0
    return SourceInfo(source.name, source.kind, _shown_uri(source), tuple(source.acl) if source.acl else None,
                      dict(source.options or {}), count, source.last_sync_at, source.last_sync)


def add_source(
    session: Session,
    actor: Principal,
    org_slug: str,
    name: str,
    kind: str,
    uri: str,
    *,
    acl: list[str] | str | None = None,
    options: dict | None = None,
    config: dict | None = None,
) -> SourceInfo:
    """Connect a source; ``config`` is the kind's settings (web, s3, imap, api), checked before anything is stored."""
    if not _NAME.match(name or ""):
        raise InvalidInput(f"invalid source name {name!r}: use letters, digits, '.', '_' and '-'")
    if kind not in CONNECTORS:
        raise InvalidInput(f"unknown source kind {kind!r}: use one of {', '.join(sorted(CONNECTORS))}")
    rules = parse_rules(acl)
    org = org_by_slug(session, org_slug)
    require(session, actor, "source.manage", in_org(org, "source", name), details={"op": "add", "kind": kind, "acl": rules})
    if session.scalar(select(Source.id).where(Source.org_id == org.id, Source.name == name)) is not None:
        raise AlreadyExists(f"source {name!r} already exists in organization {org.slug!r}")
    checked_uri = CONNECTORS[kind].validate(uri)
    settings = checked_settings(kind, config)
    if settings is not None:
        options = {**(options or {}), "config": settings}
    source = Source(org_id=org.id, name=name, kind=kind, uri=checked_uri, acl=list(rules) if rules else None, options=options or {})
    session.add(source)
    session.flush()
    return _info(session, source)


def source_by_name(session: Session, org_id: int, name: str) -> Source:
    source = session.scalar(select(Source).where(Source.org_id == org_id, Source.name == name))
    if source is None:
        raise NotFound(f"unknown source {name!r}")
    return source


def list_sources(session: Session, actor: Principal, org_slug: str) -> list[SourceInfo]:
    org = org_by_slug(session, org_slug)
    require(session, actor, "source.list", in_org(org, "sources"))
    return [_info(session, s) for s in session.scalars(select(Source).where(Source.org_id == org.id).order_by(Source.name))]


def remove_source(session: Session, actor: Principal, org_slug: str, name: str) -> None:
    """Remove a source and everything indexed from it."""
    org = org_by_slug(session, org_slug)
    require(session, actor, "source.manage", in_org(org, "source", name), details={"op": "remove"})
    source = source_by_name(session, org.id, name)
    # Chunks are deleted by statement, not by cascade, so the FTS triggers see every row.
    delete_documents(session, [d for d in session.scalars(select(Document.id).where(Document.source_id == source.id))])
    session.delete(source)
    bump_generation(session, org.id)
    session.flush()
    delete_unused_embeddings(session)
