"""A tool call that waits for a person: the approval it asks for, and the call once it is decided.

When the runtime stops a ``write`` or ``destructive`` call (its arguments carry
untrusted text, or the agent's policy asks for a person on every write) in a
*stored* conversation, :func:`request_call` records an approval in the durable
approvals (``workflow_approvals``, subject ``conversation``): the conversation's
id, the call's key, and the exact call — tool, effect, arguments, why it stopped —
as the approval's ``details``, which is what the approvers see and what runs if
they approve. The arguments are fixed there: nothing the model or a document says
later changes them.

Who decides: the agent's ``policy.approvers`` — ``group:NAME``, ``user:EMAIL``,
``admins`` (the organization's admins at the moment of the call) or ``caller`` (the
person asking) — and by default the organization's admins. Admins are the default
because the person asking is the one whose conversation read the untrusted
content: a second pair of eyes is the point, unless the agent's owner decides the
caller suffices.

:func:`decided_call` is the other end: the call as the approval holds it, with its
decision, once the conversation goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cristal.db import Database
from cristal.db.schema import User
from cristal.durable import approvals
from cristal.errors import InvalidInput
from cristal.identity.principal import Principal

__all__ = ["DecidedCall", "approvers_for", "decided_call", "request_call"]


def approvers_for(db: Database, principal: Principal, configured: Sequence[str]) -> list[str]:
    """The approvers' access rules (``user:``/``group:``) for a call made by ``principal``."""
    out: list[str] = []
    for entry in configured or ("admins",):
        if entry == "caller":
            out.append(f"user:{principal.name}")
        elif entry == "admins":
            with db.session() as s:
                out += [f"user:{e}" for e in s.scalars(select(User.email).where(User.org_id == principal.org_id,
                                                                                  User.role == "admin").order_by(User.email))]
        else:
            out.append(entry)
    return list(dict.fromkeys(out))


def request_call(db: Database, principal: Principal, *, conversation_id: str, key: str, agent: str, version: int,
                 call: dict[str, Any], approvers: Sequence[str]) -> tuple[str, list[str]]:
    """Ask for a person to approve ``call`` (``{"id", "name", "effect", "arguments", "reason"}``): its id and approvers.

    ``InvalidInput`` when nobody could decide it (no approver resolves to anyone).
    """
    names = approvers_for(db, principal, approvers)
    if not names:
        raise InvalidInput(f"agent {agent!r}: nobody could approve this call (the organization has no admins and the "
                           "agent's policy names no approvers)")
    arguments = call["arguments"]
    message = (f"{principal.name} asked agent {agent} (version {version}); it wants to call {call['name']} "
               f"({call['effect']}) because {call['reason']}. Approving runs exactly this call once.")
    details = {"agent": agent, "version": version, "conversation_id": conversation_id, "requested_by": principal.name,
               "tool": call["name"], "tool_call_id": call["id"], "effect": call["effect"], "arguments": arguments,
               "reason": call["reason"]}
    if principal.org_id is None:
        raise InvalidInput("the installation principal cannot talk to agents; use --as EMAIL")
    approval_id = approvals.request(db, conversation_id, key, principal.org_id, principal.name, f"agent:{agent}",
                                    {"approvers": names, "message": message}, None, subject="conversation",
                                    details=details)
    return approval_id, names


@dataclass(frozen=True)
class DecidedCall:
    """A call an approval held, once decided: exactly what the approver saw, and the decision."""

    approval_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    key: str
    approved: bool
    decided_by: str | None
    comment: str | None
    status: str  # approved, rejected, timed_out, cancelled

    def refusal(self) -> str:
        """What the model is told when the call did not run."""
        who = f" by {self.decided_by}" if self.decided_by else ""
        why = f": {self.comment}" if self.comment else ""
        return f"not run: a person did not approve this call (approval {self.approval_id} {self.status}{who}{why})"


def decided_call(db: Database, approval_id: str, conversation_id: str) -> DecidedCall | None:
    """The approval's call and decision; ``None`` while it is still pending."""
    state = approvals.check(db, approval_id)
    if state["status"] == "pending":
        return None
    info = approvals.get(db, approval_id)
    details = (info.details if info is not None else None) or {}
    if info is None or info.subject != "conversation" or info.run_id != conversation_id:
        # The approval is gone (its organization was removed) or is not this conversation's: nothing runs.
        return DecidedCall(approval_id, str(details.get("tool_call_id") or ""), str(details.get("tool") or ""),
                           {}, "", False, None, None, "cancelled")
    return DecidedCall(approval_id, str(details["tool_call_id"]), str(details["tool"]), dict(details["arguments"]),
                       info.step_id, state["decision"] == "approved", state["by"], state["comment"], state["status"])
