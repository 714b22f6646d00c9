"""An embedder on any OpenAI-compatible ``/v1/embeddings`` endpoint, through the gateway (authorized, metered, in budget).

It has the shape of the knowledge layer's ``Embedder`` (``name``, ``dim``, ``encode``) without
importing it (the two layers do not import each other); ``endpoint_embedders`` is the factory
the processes above hand to ``cristal.knowledge.indexes.Embedders``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cristal.identity.principal import Principal
from cristal.models.gateway import EmbeddingRoute, Gateway


class GatewayEmbedder:
    """Unit-length vectors from one endpoint and model, every request made as ``principal``."""

    def __init__(self, gateway: Gateway, principal: Principal, route: EmbeddingRoute, for_org: int | None = None) -> None:
        self.gateway = gateway
        self.principal = principal
        self.route = route
        self.for_org = for_org  # set: the organization's documents, for its index (see ``Gateway.embed``)
        self.name = route.model
        self.dim = 0  # known from the first answer

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim or 1), dtype=np.float32)
        vectors = np.asarray(self.gateway.embed(self.principal, texts, route=self.route, for_org=self.for_org), dtype=np.float32)
        self.dim = int(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return unit


def endpoint_embedders(
    gateway: Gateway | Callable[[], Gateway],
) -> Callable[[Principal, int | None, str, str, str | None], GatewayEmbedder]:
    """The factory ``Embedders(endpoint=...)`` takes: (principal, for_org, model, base URL, key variable) -> embedder.

    ``gateway`` may be a function giving it, for owners that open their gateway only when first needed.
    """

    def make(principal: Principal, for_org: int | None, model: str, base_url: str, api_key_env: str | None) -> GatewayEmbedder:
        resolved = gateway if isinstance(gateway, Gateway) else gateway()
        return GatewayEmbedder(resolved, principal, EmbeddingRoute(base_url, model, api_key_env), for_org)

    return make
