"""Connectors: each kind of source is one module that lists its documents.

Adding a connector (HTTP/JSON API, mail server, wiki) means adding one module
with a class implementing ``Connector`` and registering it in ``CONNECTORS``.
"""

from __future__ import annotations

from cristal.knowledge.connectors.base import Connector, Item, ScanProblem
from cristal.knowledge.connectors.files import FilesConnector
from cristal.knowledge.connectors.sql import SqlConnector

CONNECTORS: dict[str, type] = {"files": FilesConnector, "sql": SqlConnector}

__all__ = ["CONNECTORS", "Connector", "Item", "ScanProblem"]
