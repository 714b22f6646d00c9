"""``search``: the organization's knowledge, searched as the acting person (only what they may read)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cristal.actions.base import Action, ActionContext, ActionError, Spec, with_timeout
from cristal.errors import InvalidInput


class SearchSpec(Spec):
    query: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "keyword", "dense"] = "hybrid"


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.knowledge.indexes import Embedders
    from cristal.knowledge.search import Searcher
    from cristal.models.embedder import endpoint_embedders
    from cristal.models.gateway import Gateway

    def go() -> list[dict[str, Any]]:
        # Searcher authorizes "knowledge.search" and writes the document.read audit record; the gateway embeds
        # the query only if the organization's index comes from an endpoint.
        with Gateway(ctx.settings, ctx.db) as gateway:
            hits = Searcher(ctx.db, Embedders(endpoint_embedders(gateway))).search(
                ctx.principal, str(spec["query"]), limit=int(spec.get("limit") or 10),
                mode=spec.get("mode") or "hybrid", request_id=ctx.key)
        return [hit.as_dict() for hit in hits]

    try:
        return {"hits": with_timeout(ctx.timeout, ctx.key, go)}
    except InvalidInput as exc:  # an empty or too long query after templates were rendered
        raise ActionError(exc.message) from None


ACTIONS = (Action(
    name="search", spec=SearchSpec, effect="read", run=run, limit=None,
    description="Search the organization's documents the acting person may read; returns the best passages "
                "(title, uri, snippet, score).",
),)
