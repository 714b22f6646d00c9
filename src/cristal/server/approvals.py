"""Human approvals over HTTP: the caller's pending approvals, and approve/reject (which wakes the waiting run)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cristal.server.auth import Caller, current_caller
from cristal.server.state import state_of

router = APIRouter(tags=["approvals"])


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(None, max_length=10_000)


@router.get("/approvals")
def list_approvals(request: Request, all: bool = Query(False, description="Include decided approvals"),  # `all`: the query parameter's name
                   caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.durable.approvals import list_approvals as pending

    items = pending(state_of(request).db, caller.org_slug, caller.email, include_decided=all)
    return {"approvals": [i.as_dict() for i in items]}


def _decide(request: Request, caller: Caller, approval_id: str, decision: str, body: DecisionBody | None) -> dict[str, Any]:
    from cristal.durable.approvals import decide
    db = state_of(request).db
    return decide(db, approval_id, caller.email, decision, comment=body.comment if body else None,
                  org_slug=caller.org_slug).as_dict()


@router.post("/approvals/{approval_id}/approve")
def approve(approval_id: str, request: Request, body: DecisionBody | None = None,
            caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    return _decide(request, caller, approval_id, "approve", body)


@router.post("/approvals/{approval_id}/reject")
def reject(approval_id: str, request: Request, body: DecisionBody | None = None,
           caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    return _decide(request, caller, approval_id, "reject", body)
