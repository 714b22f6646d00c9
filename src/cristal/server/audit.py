"""``GET /api/v1/audit``: the caller's organization's audit trail, newest first (organization admins only)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from cristal.audit.log import query_audit
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.server.auth import Caller, current_caller
from cristal.server.state import state_of

router = APIRouter(tags=["audit"])


@router.get("/audit")
def audit(request: Request, limit: int = Query(200, ge=1, le=10_000), action: str | None = Query(None, max_length=100),
          decision: Literal["allow", "deny"] | None = Query(None), caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    with state_of(request).db.session() as s:
        org = org_by_slug(s, caller.org_slug)
        require(s, caller.principal, "audit.read", in_org(org, "audit"), request_id=caller.request_id)
        entries = query_audit(s, org.slug, limit=limit, action=action, decision=decision)
    return {"org": caller.org_slug, "records": [e.as_dict() for e in entries]}
