"""The HTTP layer of ``cristal serve``: REST API (``/api/v1``), OpenAI-compatible API (``/v1``) and a small web UI.

It sits beside the CLI at the top of the layers and calls the same service
functions, always as the employee whose API key made the request.
"""

from __future__ import annotations

from cristal.server.app import create_app
from cristal.server.state import Limits

__all__ = ["Limits", "create_app"]
