"""What an action is, what it receives, and what it may return.

An ``Action`` is declared once and used by every caller: workflows run it as a
step, agents will offer it as a tool (``Action.tool`` gives the name, the
description and a JSON schema of the arguments), environments will score it.

``run(ctx, spec)`` receives an ``ActionContext`` (who acts, in which run and
step, with which idempotency key and deadline) and ``spec``: the JSON form of
the action's pydantic model (``model_dump(by_alias=True)`` of a validated
spec, after the caller rendered any templates in it). It authorizes what it
does as ``ctx.principal`` (audited), gives side effects ``ctx.idempotency_key``
and returns JSON-able output of at most ``MAX_OUTPUT_BYTES``; failures are
``ActionError``s, with ``retriable`` saying whether trying again may help.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

MAX_OUTPUT_BYTES = 1024 * 1024

Effect = Literal["read", "write", "destructive"]
"""``read``: looks, changes nothing; ``write``: changes something that can be changed back (or may, as arbitrary code
and outbound requests do); ``destructive``: may do what cannot be undone. Agents ask for an approval before a
``write`` or ``destructive`` call whose arguments come from untrusted content."""


class ActionError(CristalError):
    """An action failed; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable

    def __reduce__(self) -> tuple[Any, ...]:
        # DBOS pickles a step's error into its checkpoint; CristalError's own arguments are not (message, retriable).
        return (type(self), (self.message, self.retriable))


class Spec(BaseModel):
    """Base of action specs: unknown fields are errors, aliases (``json``, ``schema``) and names both accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StepRef(Protocol):
    """Which step (and item) of which run, on whose behalf: what both ``ActionContext`` and the engine's ``Meta`` say."""

    @property
    def run_id(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def item_index(self) -> int | None: ...
    @property
    def org_id(self) -> int: ...
    @property
    def owner_email(self) -> str: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class ActionContext:
    """Who runs an action, where, and until when (the caller builds it; actions never look anything up globally).

    ``principal`` is resolved by the caller just before the action runs (a
    workflow step acts as the run's owner with their groups of that moment).
    ``timeout`` is the time the action may take, from ``started`` (a
    ``time.monotonic()`` instant) to ``deadline`` (``None``: no limit).
    """

    db: Database
    settings: Settings
    principal: Principal
    org_id: int
    org: str
    run_id: str
    step_id: str
    idempotency_key: str
    item_index: int | None = None
    timeout: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return self.idempotency_key

    @property
    def owner_email(self) -> str:
        return self.principal.name

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` instant by which the action must end (``None``: no limit)."""
        return None if self.timeout is None else self.started + self.timeout

    def remaining(self) -> float | None:
        """Seconds left before the deadline (at least a millisecond; ``None``: no limit)."""
        deadline = self.deadline
        return None if deadline is None else max(0.001, deadline - time.monotonic())

    def resource(self, kind: str, id: str = "", *, acl: tuple[str, ...] | None = None) -> Resource:
        """A resource of ``kind`` in the context's organization, for ``authorize``/``require``."""
        return Resource(kind=kind, org_id=self.org_id, id=id, acl=acl, org_slug=self.org)


def is_template(value: Any) -> bool:
    """Whether ``value`` is text with template syntax (fields that must be literal refuse it)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


Run = Callable[[ActionContext, dict[str, Any]], Any]
Authorize = Callable[[Session, ActionContext, dict[str, Any]], None]
Check = Callable[[Any, Settings], tuple[str, str] | None]


@dataclass(frozen=True)
class Action:
    """One action kind, declared once.

    * ``name``: the key in workflow files (``sql:``) and the tool name for agents;
    * ``spec``: the pydantic model of its arguments (validation, JSON schema, documentation);
    * ``effect``: ``read``, ``write`` or ``destructive`` (see ``Effect``);
    * ``retriable``: whether a caller may run it again after a failure (a browser
      session or a human decision cannot be repeated);
    * ``limit``: the kind of per-organization limit it takes a slot of (``cristal workflow limits``), or ``None``;
    * ``run``: does it (``None``: a caller carries it out itself, as the workflow engine does with
      approvals, which wait durably, and sub-workflows, which are child runs);
    * ``authorize``: for an action whose permission follows from its spec alone, the check that
      ``ctx.principal`` may run it (``require``, audited), which the caller runs in the session in
      which it resolved the principal, before ``run`` (one transaction instead of two per call);
      actions without it authorize inside ``run``;
    * ``check``: validation that needs the installation's settings, after the model's own:
      returns ``(field, message)`` of the first problem, or ``None``;
    * ``fans_out``: whether a workflow step may run it once per item (``for_each``);
    * ``no_retry_reason``: said when a workflow step asks to retry an action that may not be retried.
    """

    name: str
    spec: type[BaseModel]
    effect: Effect
    description: str
    run: Run | None
    authorize: Authorize | None = None
    retriable: bool = True
    limit: str | None = None
    check: Check | None = None
    fans_out: bool = True
    no_retry_reason: str = ""
    owner: str = field(default="", compare=False)  # the module that declared it (set by the registry)

    def tool(self) -> dict[str, Any]:
        """The action as a tool: name, description, JSON schema of its arguments (as a workflow file spells them)."""
        return {"name": self.name, "description": self.description,
                "parameters": self.spec.model_json_schema(by_alias=True), "effect": self.effect}


# ---------------------------------------------------------------------------
# Output


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON (decimals, dates, pydantic models converted); anything else is an ``ActionError``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime, date, clock_time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        raise ActionError(f"output contains {len(value)} bytes of binary data; return text or base64")
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    raise ActionError(f"output contains a {type(value).__name__}, which is not JSON")


def check_size(step_id: str, value: Any) -> Any:
    """``value`` as JSON, refused above ``MAX_OUTPUT_BYTES``."""
    value = jsonable(value)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_OUTPUT_BYTES:
        raise ActionError(f"step {step_id!r} output is {size:,} bytes of JSON, above the {MAX_OUTPUT_BYTES:,}-byte limit; "
                          "return less (e.g. select fewer rows or columns)")
    return value


def with_timeout(seconds: float | None, label: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; past ``seconds`` the action fails (the abandoned thread finishes on its own)."""
    if seconds is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"cristal-step-{label}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise ActionError(f"timed out after {seconds:g}s", retriable=True)
    if "error" in box:
        raise box["error"]
    return box.get("value")
