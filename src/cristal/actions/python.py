"""``python``: call a function of a module the installation allows, as the acting person.

The call is authorized as ``workflow.python`` on the function (``authorize``, audited).

Nothing is allowed by default: an installation lists its modules in
``workflow_python_modules`` (``CRISTAL_WORKFLOW_PYTHON_MODULES``). The list is
checked when a workflow is validated (``check``) and again when the call runs,
since a queued run may predate a change of the setting. A function that has an
``idempotency_key`` parameter receives the action's key; one with a
``context`` parameter receives a ``StepContext``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from cristal.actions.base import Action, ActionContext, ActionError, Spec, with_timeout
from cristal.config import Settings
from cristal.errors import CristalError
from cristal.identity.authorize import require

CALL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class PythonSpec(Spec):
    call: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("call")
    @classmethod
    def _call(cls, v: str) -> str:
        if not CALL.match(v):
            raise ValueError(f"invalid call {v!r}: use 'package.module:function'")
        return v


@dataclass(frozen=True)
class StepContext:
    """What a python step may learn about where it runs (pass a ``context`` parameter to receive it)."""

    run_id: str
    step_id: str
    item_index: int | None
    idempotency_key: str
    org: str
    owner: str


def python_refusal(settings: Settings, module: str) -> str | None:
    """Why a ``python`` step may not call functions of ``module`` (``None``: it may)."""
    if settings.python_module_allowed(module):
        return None
    allowed = ", ".join(settings.workflow_python_modules)
    listed = f"this installation allows {allowed}" if allowed else "this installation allows none"
    return (f"python module {module!r} is not allowed in workflows ({listed}; "
            "an administrator lists modules in CRISTAL_WORKFLOW_PYTHON_MODULES)")


def check(spec: PythonSpec, settings: Settings) -> tuple[str, str] | None:
    refusal = python_refusal(settings, spec.call.partition(":")[0])
    return None if refusal is None else ("call", refusal)


def _import(settings: Settings, call: str) -> Callable[..., Any]:
    module_name, _, func_name = call.partition(":")
    refusal = python_refusal(settings, module_name)
    if refusal is not None:  # checked again here: a queued run may predate a change of the setting
        raise ActionError(refusal)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ActionError(f"{call!r} is not a function")
    return fn  # type: ignore[no-any-return]  # any callable the installation allowed


def authorize(session: Session, ctx: ActionContext, spec: dict[str, Any]) -> None:
    require(session, ctx.principal, "workflow.python", ctx.resource("function", spec["call"]), request_id=ctx.key,
            details={"workflow_step": ctx.key})


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    fn = _import(ctx.settings, spec["call"])
    kwargs = dict(spec.get("args") or {})
    params = inspect.signature(fn).parameters
    if "idempotency_key" in params:
        kwargs["idempotency_key"] = ctx.key
    if "context" in params:
        kwargs["context"] = StepContext(ctx.run_id, ctx.step_id, ctx.item_index, ctx.key, ctx.org, ctx.principal.name)
    try:
        return with_timeout(ctx.timeout, ctx.key, lambda: fn(**kwargs))
    except CristalError:
        raise
    except TypeError as exc:
        raise ActionError(f"{spec['call']}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the function's failure is the step's failure
        raise ActionError(f"{spec['call']} raised {type(exc).__name__}: {exc}", retriable=True) from None


ACTIONS = (Action(
    name="python", spec=PythonSpec, effect="write", run=run, authorize=authorize, limit="python", check=check,
    description="Call a Python function ('package.module:function') of a module this installation allows, "
                "with keyword arguments; returns what it returns.",
),)
