"""Workflow runs over HTTP: start (queued for ``cristal worker``), list, status, cancel.

``POST /api/v1/workflows/runs`` takes a workflow file's text; it is validated
exactly as ``cristal workflow run`` validates a file (text from outside may
not name sub-workflow files on the server's disk), recorded as the caller and
queued, and answers 202 at once: workers execute it, and its status is read
with ``GET /api/v1/runs/{id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cristal.server.auth import Caller, current_caller
from cristal.server.errors import ApiError
from cristal.server.state import state_of

router = APIRouter(tags=["workflows"])


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(description="The workflow file's YAML text")
    inputs: dict[str, Any] = Field(default_factory=dict)


class DeployedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


def _accepted(run_id: str, status: str = "queued") -> JSONResponse:
    return JSONResponse({"run_id": run_id, "status": status}, status_code=202, headers={"Location": f"/api/v1/runs/{run_id}"})


@router.post("/workflows/runs", status_code=202)
def start_run(body: StartBody, request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
    from cristal.workflows import service
    from cristal.workflows.spec import load_workflow_text

    state = state_of(request)
    db = state.db
    compiled = load_workflow_text(body.workflow, origin="<request>", settings=state.settings)
    run = service.create_run(db, compiled, caller.org_slug, caller.email, body.inputs)
    service.enqueue(db, run)
    return _accepted(run.run_id)


@router.post("/workflows/{name}/runs", status_code=202)
def start_deployed_run(name: str, body: DeployedBody, request: Request, caller: Caller = Depends(current_caller),
                       idempotency_key: str | None = Header(None, max_length=200)) -> JSONResponse:
    try:
        from cristal.workflows.deployments import start_deployed
    except ImportError:
        raise ApiError(501, "deployed workflows are not available in this installation yet") from None
    from cristal.workflows.schema import WorkflowRun

    db = state_of(request).db
    run = start_deployed(db, caller.org_slug, name, caller.email, body.inputs, idempotency_key=idempotency_key)
    # A repeated Idempotency-Key returns the first call's run, which may have moved on since.
    with db.session() as s:
        row = s.get(WorkflowRun, run.run_id)
        status = row.status if row is not None else "queued"
    return _accepted(run.run_id, status)


@router.get("/runs")
def list_runs(request: Request, limit: int = Query(50, ge=1, le=500), caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.workflows.service import list_runs as runs_of

    return {"runs": runs_of(state_of(request).db, caller.org_slug, caller.email, limit=limit)}


@router.get("/runs/{run_id}")
def run_status(run_id: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.workflows.service import run_status as status_of

    doc = status_of(state_of(request).db, run_id, caller.email, org_slug=caller.org_slug)
    doc.pop("file", None)  # a server path (or "<request>"): nothing the caller needs
    return doc


@router.post("/runs/{run_id}/cancel")
def cancel_run(run_id: str, request: Request, caller: Caller = Depends(current_caller)) -> dict[str, Any]:
    from cristal.workflows.service import cancel_run as cancel

    doc = cancel(state_of(request).db, run_id, caller.email, org_slug=caller.org_slug)
    doc.pop("file", None)
    return doc

