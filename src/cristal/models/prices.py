"""Estimated cost of a model call from a price table.

Prices are US dollars per million tokens, keyed by model-name prefix: the
longest prefix that matches wins, so ``gpt-4o-mini-2024-07-18`` is priced as
``gpt-4o-mini``, not as ``gpt-4o``. The built-in table holds public list
prices of common models at the time of writing; ``Settings.prices``
(``[prices."NAME"]`` in ``config.toml``) adds to it and overrides it. A model
found in neither costs 0 and is reported as unpriced, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class _PriceLike(Protocol):
    input_per_million: float
    output_per_million: float


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float = 0.0


@dataclass(frozen=True)
class Cost:
    usd: float
    priced: bool  # False: the model is in no price table and ``usd`` is 0


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o1": Price(15.00, 60.00),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "text-embedding-3-small": Price(0.02),
    "text-embedding-3-large": Price(0.13),
    "text-embedding-ada-002": Price(0.10),
}


class PriceTable:
    """The built-in prices plus overrides, looked up by longest model-name prefix."""

    def __init__(self, overrides: Mapping[str, _PriceLike] | None = None) -> None:
        self._prices: dict[str, Price] = dict(DEFAULT_PRICES)
        for name, price in (overrides or {}).items():
            self._prices[name] = Price(price.input_per_million, price.output_per_million)
        # Longest first, so the first match is the most specific.
        self._order = sorted(self._prices, key=len, reverse=True)

    def lookup(self, model: str) -> Price | None:
        # Routers and local servers often spell models "provider/name" ("openai/gpt-4o").
        for name in (model, model.rsplit("/", 1)[-1]):
            for prefix in self._order:
                if name.startswith(prefix):
                    return self._prices[prefix]
        return None

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> Cost:
        price = self.lookup(model)
        if price is None:
            return Cost(0.0, priced=False)
        usd = (tokens_in * price.input_per_million + tokens_out * price.output_per_million) / 1_000_000
        return Cost(usd, priced=True)
