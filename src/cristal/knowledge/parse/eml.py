"""E-mail messages (.eml) via the stdlib ``email`` package (``policy.default``).

The document starts with a ``header`` block (From, To, Cc, Date, Subject) so
a search for the sender or subject finds the mail, then the body: the
text/plain part, or the HTML part rendered by the HTML parser when there is
no plain text. Body bytes are decoded by our decoder with the part's declared
charset (so Shift_JIS / ISO-2022-JP mail works and binary is refused).
Attachments are not parsed; their file names are listed in
``metadata["attachments"]``. The title is the Subject.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from cristal.knowledge.parse.builder import DocumentBuilder, add_paragraphs, collapse_spaces
from cristal.knowledge.parse.decoding import decode_text
from cristal.knowledge.parse.document import DEFAULT_LIMITS, DocumentLimits, ParsedDocument, ParseError
from cristal.knowledge.parse.html import render_html

_HEADERS = (("From", "from"), ("To", "to"), ("Cc", "cc"), ("Date", "date"), ("Subject", "subject"))


def parse(data: bytes, filename: str, limits: DocumentLimits = DEFAULT_LIMITS) -> ParsedDocument:
    if b"\x00" in data[:8192]:
        raise ParseError("binary content in a text file (NUL bytes)")
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not message.keys():  # with policy.default the parser always builds an EmailMessage
        raise ParseError("not an e-mail message (no headers)")
    if message.defects and not any(message.get(name) for name, _ in _HEADERS):
        raise ParseError("not an e-mail message (no From/To/Subject/Date header)")

    metadata: dict[str, str] = {}
    header_lines: list[str] = []
    for name, key in _HEADERS:
        value = _header(message, name)
        if value:
            metadata[key] = value
            header_lines.append(f"{name}: {value}")
    attachments = _attachment_names(message)
    if attachments:
        metadata["attachments"] = ", ".join(attachments)

    builder = DocumentBuilder(limits)
    builder.add("header", "\n".join(header_lines))
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        payload = body.get_payload(decode=True)  # the bytes of a leaf part (None if it has none)
        raw = payload if isinstance(payload, bytes) else b""
        if raw.strip():
            text = decode_text(raw, body.get_content_charset())
            if body.get_content_subtype() == "html":
                render_html(builder, text)
            else:
                add_paragraphs(builder, text)
    return builder.build(filename=filename, title=metadata.get("subject"), metadata=metadata)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        return collapse_spaces(str(value)) if value is not None else ""
    except Exception:  # noqa: BLE001 - a malformed header must not lose the mail; use it raw
        for key, raw in message.raw_items():
            if key.lower() == name.lower():
                return collapse_spaces(str(raw))
        return ""


def _attachment_names(message: EmailMessage) -> list[str]:
    names: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            name = part.get_filename()
        except Exception:  # noqa: BLE001 - an undecodable file name is just skipped
            name = None
        if name and collapse_spaces(name) not in names:
            names.append(collapse_spaces(name))
    return names
