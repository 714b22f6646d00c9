"""``llm``: one structured model call through the gateway (authorized as ``llm.call``, metered, budgeted)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cristal.actions.base import Action, ActionContext, Spec, with_timeout


class LlmSpec(Spec):
    prompt: str
    system: str | None = None
    output_schema: dict[str, Any] = Field(alias="schema")
    model: str | None = None


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.models.gateway import Gateway

    messages = []
    if spec.get("system"):
        messages.append({"role": "system", "content": str(spec["system"])})
    messages.append({"role": "user", "content": str(spec["prompt"])})
    with Gateway(ctx.settings, ctx.db) as gateway:  # authorizes "llm.call" (audited) and meters the call
        return with_timeout(ctx.timeout, ctx.key, lambda: gateway.structured(
            ctx.principal, messages, spec["schema"], model=spec.get("model"), request_id=ctx.key))


ACTIONS = (Action(
    name="llm", spec=LlmSpec, effect="read", run=run, limit="llm",
    description="Ask the organization's language model one question and get an answer that follows a JSON schema.",
),)
