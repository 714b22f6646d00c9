"""``GET /api/v1/me``: who the API key or session belongs to (what the UI shows after sign-in).

For a session it also returns ``csrf_token``, which the page sends back in
``X-CSRF-Token`` with every state-changing request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from cristal.identity.sessions import csrf_token
from cristal.server.auth import Caller, current_caller

router = APIRouter(tags=["identity"])


@router.get("/me")
def me(caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    p = caller.principal
    doc: dict[str, Any] = {"email": p.email, "org": p.org_slug, "role": p.role, "groups": sorted(p.groups),
                           "is_admin": p.is_admin}
    if caller.session_token is not None:
        doc["csrf_token"] = csrf_token(caller.session_token)
    return doc
