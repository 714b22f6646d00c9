"""The ``agent`` action: a workflow step that asks a custom agent one question as the run's owner.

```yaml
- id: answer
  agent: {agent: expense-helper, question: "Is {{ steps.claim.output.amount }} EUR within the Munich hotel cap?"}
```

The step acts as the run's owner, resolved again before it runs (``workflows.steps``): the store authorizes
``agent.use`` for that person now (audited), so an agent no longer shared with them fails the step, and the
agent's tools run with their rights only. ``agent`` names the version the owner gets (``SLUG``) or pins one
(``SLUG@N``). The output is the ``ask`` JSON (``answer``, ``citations``, ``tool_calls``, ``tokens``,
``cost_usd``) with ``conversation_id`` null: nothing is stored as a conversation; the turn is counted in
``cristal agent stats`` (way in ``workflow``).

The question is rendered from templates over inputs and earlier steps' outputs, which nobody typed: it
counts as untrusted text (``TurnContext.trusted_message``), so words that came from it cannot steer one of
the agent's ``write`` or ``destructive`` tool calls. Tool calls get idempotency keys derived from the
step's key, the same on every attempt of the step.

Workflows and agents do not import each other: the workflow engine reaches this module through the action
registry (``DEFAULT_ACTIONS``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import Field, field_validator

from cristal.actions import Action, ActionContext, ActionError, Spec
from cristal.actions.base import is_template, with_timeout

_REF = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:@[1-9][0-9]{0,8})?$")


class AgentSpec(Spec):
    agent: str = Field(min_length=1, max_length=80)
    question: str = Field(min_length=1, max_length=10_000)

    @field_validator("agent")
    @classmethod
    def _agent(cls, v: str) -> str:
        # Literal: which agent a step asks (with the owner's rights) is part of the reviewed file, not of the data.
        if is_template(v):
            raise ValueError("the agent is named literally (SLUG or SLUG@N), not by a template")
        if not _REF.match(v):
            raise ValueError(f"invalid agent {v!r}: its name (SLUG), or SLUG@N for a published version")
        return v


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.agents.ask import counted_turn, usable_config
    from cristal.agents.runtime import TurnContext, TurnStopped
    from cristal.errors import CristalError

    question = str(spec["question"])
    if not question.strip():
        raise ActionError("the question is empty (after its templates were rendered)")
    try:
        config = usable_config(ctx.db, ctx.org, ctx.principal.name, str(spec["agent"]))
    except CristalError as exc:  # unknown to the owner (now), unpublished, a tool conversations cannot run
        raise ActionError(exc.message) from None
    # The same ids on every attempt of this step: a retried turn repeats its tool calls' idempotency keys.
    turn = TurnContext(db=ctx.db, settings=ctx.settings, principal=ctx.principal,
                       conversation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"cristal:agent-step:{ctx.key}")),
                       trusted_message=False)
    try:
        result = with_timeout(ctx.timeout, ctx.key, lambda: counted_turn(turn, config, [], question, "workflow"))
    except TurnStopped as exc:  # the same turn would spend the same budget again
        raise ActionError(exc.message) from None
    except ActionError:
        raise
    except CristalError as exc:
        raise ActionError(exc.message, retriable=True) from None
    return {**result.as_dict(), "conversation_id": None}


ACTIONS = (Action(
    name="agent", spec=AgentSpec, effect="write", run=run,
    description="Ask a custom agent one question as the acting person (its tools run with that person's rights); "
                "returns the answer with its citations and tool calls.",
),)
