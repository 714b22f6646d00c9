"""A model call that authorization and the budget have cleared, and what meters it.

Both the gateway and a streamed answer (``stream.py``) need these; keeping
them here lets the gateway import the stream without the stream importing
the gateway back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cristal.errors import LLMError
from cristal.identity.principal import Principal
from cristal.models.endpoint import Kind
from cristal.models.metering import Status
from cristal.models.shapes import Usage


@dataclass(frozen=True)
class Call:
    """A call that authorization and the budget have cleared."""

    principal: Principal
    org_id: int
    kind: Kind
    model: str
    base_url: str
    api_key: str
    request_id: str | None


class CallMeter(Protocol):
    """What records the cost of a call once it is known (the gateway is one)."""

    def meter(self, call: Call, status: Status, *, tokens_in: int = 0, tokens_out: int = 0, latency_ms: float = 0.0,
              estimated: bool = False, error: str | None = None) -> Usage:
        """Record one call's usage in ``llm_usage`` and return it."""
        ...

    def meter_failure(self, call: Call, exc: BaseException, latency_ms: float, tokens_in: int = 0,
                      tokens_out: int = 0) -> LLMError:
        """Record a failed call and return the one-line ``LLMError`` to raise."""
        ...
