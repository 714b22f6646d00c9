"""Connectors: each kind of source is one module that lists its documents.

Adding a connector (HTTP/JSON API, mail server, wiki) means adding one module
with a class implementing ``Connector`` and registering it in ``CONNECTORS``.
A kind with settings beyond its URI names their pydantic model as
``settings_model`` (see ``settings.py``).
"""

from __future__ import annotations

from cristal.errors import InvalidInput
from cristal.knowledge.connectors.api import ApiConnector
from cristal.knowledge.connectors.base import Connector, ConnectorClass, Item, ScanProblem
from cristal.knowledge.connectors.files import FilesConnector
from cristal.knowledge.connectors.imap import ImapConnector
from cristal.knowledge.connectors.s3 import S3Connector
from cristal.knowledge.connectors.settings import check_settings
from cristal.knowledge.connectors.sql import SqlConnector
from cristal.knowledge.connectors.web import WebConnector

CONNECTORS: dict[str, ConnectorClass] = {"files": FilesConnector, "sql": SqlConnector, "web": WebConnector, "s3": S3Connector,
                                         "imap": ImapConnector, "api": ApiConnector}


def checked_settings(kind: str, raw: dict | None) -> dict | None:
    """The kind's settings in stored form (``None`` for kinds without settings), or ``InvalidInput``."""
    model = getattr(CONNECTORS[kind], "settings_model", None)
    if model is None:
        if raw:
            with_settings = sorted(k for k, c in CONNECTORS.items() if getattr(c, "settings_model", None))
            raise InvalidInput(f"{kind} sources take no settings file (--config is for {', '.join(with_settings)})")
        return None
    return check_settings(kind, model, raw)


__all__ = ["CONNECTORS", "Connector", "Item", "ScanProblem", "checked_settings"]
