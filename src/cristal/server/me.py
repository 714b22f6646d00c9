"""``GET /api/v1/me``: who the API key belongs to (what the UI shows after sign-in)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from cristal.server.auth import Caller, current_caller

router = APIRouter(tags=["identity"])


@router.get("/me")
def me(caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    p = caller.principal
    return {"email": p.email, "org": p.org_slug, "role": p.role, "groups": sorted(p.groups), "is_admin": p.is_admin}
