"""Files attached to a stored conversation: parsed to text, kept on the conversation, read by its model only.

A file is parsed by the knowledge parsers (``knowledge.parse.parse_bytes``: PDF, DOCX, HTML, e-mail, Markdown,
text; chosen by the file name's extension), at most ``attachment_max_bytes`` each, its text cut at
``attachment_max_chars``, at most ``attachment_max_count`` per conversation. It is stored as text on the
conversation (``conversation_attachments``) and never indexed into the organization's knowledge.

An attachment is its conversation's: attaching and listing are decided like the conversation's own reads and
changes (``conversations.attach`` and ``conversations.attachments``: the ``SELF`` rule, audited), so another user's conversation, or another
organization's, is ``NotFound`` — for an admin too. In every turn of its conversation the model gets its
attachments as a tool result (``runtime.attachment_messages``): untrusted content, so a write carrying their text
waits for an approval like one carrying a document's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cristal.agents.runtime import AttachedText
from cristal.config import Settings
from cristal.db.schema import Conversation, ConversationAttachment, utcnow
from cristal.errors import InvalidInput
from cristal.knowledge.parse import DocumentLimits, ParseError, parse_bytes

__all__ = ["NewAttachment", "as_text", "check_count", "describe", "of", "parse", "store", "texts"]

FILENAME_MAX = 255


@dataclass(frozen=True)
class NewAttachment:
    """A file parsed for a conversation, not stored yet (``attachment_id``: the id it will be stored with)."""

    attachment_id: str
    filename: str
    size_bytes: int
    text: str
    truncated: bool


def parse(settings: Settings, filename: str, data: bytes) -> NewAttachment:
    """The file's text; ``InvalidInput`` (one line) for an unknown type, an unparseable file or one too large."""
    name = PurePath(str(filename).replace("\\", "/")).name[:FILENAME_MAX]
    if not name:
        raise InvalidInput("the attachment has no file name")
    try:
        # The ingestion's limits too: a small DOCX can inflate to gigabytes.
        doc = parse_bytes(data, name, max_bytes=settings.attachment_max_bytes, limits=DocumentLimits.from_settings(settings))
    except ParseError as exc:
        raise InvalidInput(f"cannot attach {name}: {exc}") from None
    text = doc.text.strip()
    if not text:
        raise InvalidInput(f"cannot attach {name}: no text in it")
    cap = settings.attachment_max_chars
    return NewAttachment(str(uuid.uuid4()), name, len(data), text[:cap], len(text) > cap)


def describe(a: ConversationAttachment) -> dict[str, Any]:
    return {"attachment_id": a.id, "filename": a.filename, "size_bytes": a.size_bytes, "chars": len(a.text),
            "truncated": a.truncated, "created_at": a.created_at.isoformat()}


def of(s: Session, conversation_id: str) -> list[ConversationAttachment]:
    return list(s.scalars(select(ConversationAttachment).where(ConversationAttachment.conversation_id == conversation_id)
                          .order_by(ConversationAttachment.created_at, ConversationAttachment.id)))


def check_count(settings: Settings, count: int, adding: int) -> None:
    """``InvalidInput`` when a conversation with ``count`` attachments may not take ``adding`` more."""
    if count + adding > settings.attachment_max_count:
        raise InvalidInput(f"a conversation has at most {settings.attachment_max_count} attachments "
                           f"(attachment_max_count); this one has {count}")


def store(s: Session, settings: Settings, conv: Conversation, items: Sequence[NewAttachment]) -> list[dict[str, Any]]:
    """Add parsed files to a conversation the caller was authorized to change, in the caller's transaction."""
    count = s.scalar(select(func.count()).select_from(ConversationAttachment)
                     .where(ConversationAttachment.conversation_id == conv.id)) or 0
    check_count(settings, count, len(items))
    rows = [ConversationAttachment(id=i.attachment_id, conversation_id=conv.id, filename=i.filename,
                                   size_bytes=i.size_bytes, text=i.text, truncated=i.truncated, created_at=utcnow())
            for i in items]
    s.add_all(rows)
    s.flush()
    return [describe(r) for r in rows]


def as_text(item: NewAttachment) -> AttachedText:
    """A parsed file as the model reads it."""
    return AttachedText(item.attachment_id, item.filename, item.text)


def texts(s: Session, conversation_id: str) -> tuple[AttachedText, ...]:
    """A conversation's attachments as the model reads them (the caller has read the conversation)."""
    return tuple(AttachedText(a.id, a.filename, a.text) for a in of(s, conversation_id))
