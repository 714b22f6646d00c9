"""Workflow steps run as actions: who a step acts as, its identity, and the call into the action registry.

A step of kind K runs the action K of the run's registry (``cristal.actions``).
Before every attempt ``perform`` re-resolves the run's owner (so a group
change applies to the next step) and builds the ``ActionContext`` the action
receives; the action authorizes what it does (audited), does the work, and
returns a JSON-able output no larger than ``MAX_OUTPUT_BYTES``. Side-effecting
kinds get the step's idempotency key ``run_id:step_id[:item_index]``:
``http`` sends it as the ``Idempotency-Key`` header, ``python`` passes it as
the ``idempotency_key`` keyword (or inside a ``context`` object) to functions
that ask for it, ``llm`` uses it as the gateway's request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cristal.actions import MAX_OUTPUT_BYTES, ActionContext, ActionError, Registry
from cristal.actions.base import check_size, jsonable
from cristal.config import Settings
from cristal.db import Database
from cristal.durable.store import OwnerGone, run_owner

StepError = ActionError  # a failed step is a failed action

__all__ = ["MAX_OUTPUT_BYTES", "Meta", "StepError", "check_size", "context", "jsonable", "perform"]


@dataclass(frozen=True)
class Meta:
    """Which step (and item) of which run, on whose behalf, and its time limit."""

    run_id: str
    step_id: str
    item_index: int | None
    org_id: int
    owner_email: str
    timeout: float | None

    @property
    def key(self) -> str:
        base = f"{self.run_id}:{self.step_id}"
        return base if self.item_index is None else f"{base}:{self.item_index}"


def context(session: Session, db: Database, settings: Settings, meta: Meta) -> ActionContext:
    """The context an action of this step receives: the owner as of now, the step's key and time limit."""
    try:
        org, principal = run_owner(session, meta.org_id, meta.owner_email)
    except OwnerGone as exc:  # the step fails, not retried: the owner does not come back by waiting
        raise StepError(exc.message) from None
    return ActionContext(db=db, settings=settings, principal=principal, org_id=org.id, org=org.slug, run_id=meta.run_id,
                         step_id=meta.step_id, idempotency_key=meta.key, item_index=meta.item_index, timeout=meta.timeout)


def perform(actions: Registry, db: Database, settings: Settings, kind: str, meta: Meta, spec: dict[str, Any]) -> Any:
    """Run the step's action once (the engine retries, checkpoints and takes limit slots around it)."""
    action = actions.get(kind)
    if action is None or action.run is None:
        raise StepError(f"step kind {kind!r} cannot run here")
    with db.session() as s:  # the owner and, where the action declares it, its authorization: one transaction
        ctx = context(s, db, settings, meta)
        if action.authorize is not None:
            action.authorize(s, ctx, spec)
    return action.run(ctx, spec)
