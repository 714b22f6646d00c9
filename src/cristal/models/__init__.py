"""The LLM gateway: chat with tools, streaming, structured output and embeddings over any
OpenAI-compatible endpoint, authorized per principal, metered per organization, within budget.

Names are imported on first use: the ``openai`` client takes a noticeable
fraction of a second to import, and CLI commands that only read usage
(``cristal usage``) should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Gateway": "gateway",
    "ChatStream": "stream",
    "ChatResult": "shapes",
    "StructuredResult": "shapes",
    "ToolCall": "shapes",
    "Usage": "shapes",
    "function_tool": "shapes",
    "tool_message": "shapes",
    "Endpoint": "endpoint",
    "resolve_endpoint": "endpoint",
    "UsageLine": "metering",
    "UsageSummary": "metering",
    "month_spend": "metering",
    "usage_summary": "metering",
    "DEFAULT_PRICES": "prices",
    "Cost": "prices",
    "Price": "prices",
    "PriceTable": "prices",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:
    from cristal.models.endpoint import Endpoint, resolve_endpoint
    from cristal.models.gateway import Gateway
    from cristal.models.metering import UsageLine, UsageSummary, month_spend, usage_summary
    from cristal.models.prices import DEFAULT_PRICES, Cost, Price, PriceTable
    from cristal.models.shapes import ChatResult, StructuredResult, ToolCall, Usage, function_tool, tool_message
    from cristal.models.stream import ChatStream


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cristal.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cristal.models.{module}"), name)
