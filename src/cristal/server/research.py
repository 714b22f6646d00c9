"""``POST /api/v1/research``: a cited Deep Research report, researched as the caller, within the server's budget.

The run happens inside the request (in a worker thread of the server): the
caller may ask for a smaller budget but never a larger one than the server
allows, and only a few runs go at once (more are refused with 429), so
research cannot hold the server's threads or spend tokens without bound.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.server.auth import Caller, current_caller
from cristal.server.openapi import error_responses
from cristal.server.state import slot, state_of

router = APIRouter(tags=["research"])


class ResearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    lang: Literal["en", "de", "ja"] | None = None
    mode: Literal["auto", "extractive", "llm"] = "auto"
    max_seconds: float | None = Field(None, gt=0)
    max_steps: int | None = Field(None, ge=1)


@router.post("/research", responses=error_responses(429, 502))
def research(body: ResearchBody, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.research import Budget, run_research

    state = state_of(request)
    limits = state.limits
    budget = Budget(
        max_steps=min(body.max_steps or limits.research_max_steps, limits.research_max_steps),
        max_tokens=limits.research_max_tokens,
        max_seconds=min(body.max_seconds or limits.research_max_seconds, limits.research_max_seconds),
    )
    with slot(state.research_slots, f"{limits.research_concurrency} research runs are in progress on this server; "
              "try again shortly"):
        result = run_research(state.db, caller.principal, body.question, settings=state.settings, mode=body.mode,
                              lang=body.lang, budget=budget, searcher=state.searcher(), gateway=state.gateway())
    doc: dict[str, Any] = result.as_dict()
    return doc
