"""The two action kinds the workflow engine carries out itself: ``approval`` and ``workflow`` (a sub-workflow).

They have no ``run``: an approval waits durably for people (``DBOS.recv``,
``cristal.durable.approvals``) and a sub-workflow is a child run, both
handled by ``cristal.workflows.engine``. Declaring them here gives them the
same validation, documentation and registry entry as every other kind.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cristal.actions import Action, Spec
from cristal.actions.base import is_template
from cristal.actions.fields import approver_rules


class ApprovalSpec(Spec):
    approvers: list[str] = Field(min_length=1)
    message: str = ""
    on_timeout: Literal["reject", "approve", "fail"] = "fail"
    on_reject: Literal["stop", "continue"] = "stop"

    @field_validator("approvers")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        return approver_rules(v)


class SubWorkflowSpec(Spec):
    file: str
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _literal(cls, v: str) -> str:
        if is_template(v):
            raise ValueError("the sub-workflow file must be a literal path (it is checked before the run starts)")
        return v


ACTIONS = (
    Action(name="approval", spec=ApprovalSpec, effect="read", run=None, retriable=False, fans_out=False,
           description="Ask the named approvers (group:NAME, user:EMAIL) to approve or reject, and wait for their decision."),
    Action(name="workflow", spec=SubWorkflowSpec, effect="write", run=None,
           description="Run another workflow file as a child run with the given inputs; its outputs are the output."),
)
