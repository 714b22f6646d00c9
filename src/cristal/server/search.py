"""``GET|POST /api/v1/search``: the company's knowledge, searched as the caller (hits filtered by their access)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cristal.knowledge.search import MAX_QUERY_CHARS
from cristal.server.auth import Caller, current_caller
from cristal.server.state import state_of

router = APIRouter(tags=["knowledge"])

Mode = Literal["hybrid", "keyword", "dense"]


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    limit: int = Field(10, ge=1, le=100)
    mode: Mode = "hybrid"


def _search(request: Request, caller: Caller, query: str, limit: int, mode: Mode) -> dict[str, Any]:
    # Searcher.search authorizes knowledge.search, filters inside the retrieval query and audits the documents returned.
    hits = state_of(request).searcher().search(caller.principal, query, limit=limit, mode=mode, request_id=caller.request_id)
    return {"hits": [h.as_dict() for h in hits]}


@router.get("/search")
def search_get(request: Request, q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS), limit: int = Query(10, ge=1, le=100),
               mode: Mode = Query("hybrid"), caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    return _search(request, caller, q, limit, mode)


@router.post("/search")
def search_post(body: SearchBody, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    return _search(request, caller, body.query, body.limit, body.mode)
