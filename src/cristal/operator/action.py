"""The ``operate`` action: an Operator task in a real browser as the acting person; the run's result is the output.

Irreversible-looking actions wait, browser open, for an approval in
``workflow_approvals`` (one per action). A browser session cannot survive a
crash, so a step that runs again after one fails as interrupted instead of
repeating actions, and the action may not be retried (see
``cristal.operator.workflow``, which runs it).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from cristal.actions import Action, ActionContext, Spec
from cristal.actions.base import is_template
from cristal.actions.fields import approver_rules, parse_duration
from cristal.operator.record import RECORD_NAME
from cristal.operator.safety import SECRET_ENV_PREFIX

SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # the placeholder the model writes, {{NAME}}
SECRET_VAR = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,199}$")


class OperateSpec(Spec):
    """An Operator task in a real browser (see ``cristal.operator.workflow``).

    ``secrets`` names the organization's secrets, read from environment variables of the
    executing process named ``CRISTAL_SECRET_<ORG>_<NAME>`` (``[PASSWORD]`` reads
    ``CRISTAL_SECRET_ACME_PASSWORD`` in organization ``acme``; ``{PASSWORD: CRISTAL_SECRET_ACME_ERP}``
    gives the model a different placeholder), so no secret value is ever stored with the run and
    a workflow file can never name another variable of the worker (its LLM key, say). The
    organization part is checked when the step runs. ``record`` is a plain file name ending in
    ``.json`` (or ``true``): the record is written under ``$CRISTAL_HOME/records/<org>/``.
    ``approvers`` decide the state-changing requests an action sends (default: the run's owner),
    except to the hosts of ``allow_writes``; an action waits at most ``approval_timeout``.
    """

    task: str = Field(min_length=1)
    start_url: str = Field(min_length=1)
    allow_domains: list[str] = Field(default_factory=list)
    allow_writes: list[str] = Field(default_factory=list)  # hosts whose state-changing requests need no approval
    secrets: list[str] | dict[str, str] = Field(default_factory=list)
    max_steps: int = Field(30, ge=1, le=1000)
    max_seconds: float = Field(300.0, gt=0, le=86_400)
    model: str | None = None
    approvers: list[str] = Field(default_factory=list)
    approval_timeout: float = Field(3600.0, gt=0, le=30 * 86_400)
    allow_irreversible: bool = False
    record: bool | str | None = None
    screenshots: bool = False
    vision: bool = False

    @field_validator("max_seconds", "approval_timeout", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        # Only the organization's own secret variables: the org part is checked at run time (see operator.workflow).
        for name in v:
            if not SECRET_NAME.match(name):
                raise ValueError(f"invalid secret name {name!r}: use letters, digits and _ (for example PASSWORD)")
        if isinstance(v, dict):
            for name, env in v.items():
                if not env.startswith(SECRET_ENV_PREFIX) or not SECRET_VAR.match(env):
                    raise ValueError(f"secret {name}: {env!r} is not a secret variable; the organization's secrets are "
                                     f"environment variables named {SECRET_ENV_PREFIX}<ORG>_<NAME>")
        return v

    @field_validator("record")
    @classmethod
    def _record_name(cls, v: bool | str | None) -> bool | str | None:
        # A file name only: records of workflow steps live under $CRISTAL_HOME/records/<org>/ (templates are checked when rendered).
        if isinstance(v, str) and not is_template(v) and not RECORD_NAME.match(v):
            raise ValueError(f"invalid record {v!r}: give a plain file name ending in .json (no folders), or true; "
                             "records are kept in $CRISTAL_HOME/records/<org>/")
        return v or None

    @field_validator("approvers")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        return approver_rules(v)


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.operator.workflow import operate

    return operate(ctx.db, ctx.settings, ctx, ctx.principal, spec)


ACTIONS = (Action(
    name="operate", spec=OperateSpec, effect="destructive", run=run, limit="operate", retriable=False,
    no_retry_reason="it would repeat its actions",
    description="Do a task in the organization's web applications through a real browser, within a domain allow-list; "
                "the changes an action sends to a server wait for a human approval.",
),)
