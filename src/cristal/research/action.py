"""The ``research`` action: Deep Research as the acting person; the report and its citations are the output.

The notes' checkpoint id is the one ``cristal research`` pinned (set by code,
never by workflow text) or derived from the organization and the action's
idempotency key, so if the process dies mid-step and the engine runs the step
again (a worker taking over, or ``cristal research --resume``), the research
resumes from its checkpoint in the database instead of starting over. Notes
that belong to someone else are never resumed: the step takes the next
derived id and starts fresh. A foreground ``cristal research`` in this process
receives the progress of its run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cristal.actions import Action, ActionContext, ActionError, Spec
from cristal.actions.base import with_timeout
from cristal.research.ceilings import RESEARCH_MAX_SECONDS, RESEARCH_MAX_TOKENS

# The most one research step may spend (`cristal research` enforces the same limits on its options).


class ResearchSpec(Spec):
    question: str
    mode: Literal["auto", "extractive", "llm"] = "auto"
    lang: Literal["en", "de", "ja"] | None = None
    max_steps: int = Field(30, ge=1, le=500)
    max_tokens: int = Field(60_000, ge=1)
    max_seconds: float = Field(300.0, gt=0)
    # No ``checkpoint`` field: checkpoint ids are derived from (organization, run, step) by the step itself,
    # and `cristal research` pins one only programmatically, after validation. Text from outside (the REST
    # API takes workflow YAML from any employee) must not choose whose notes a step resumes.

    @model_validator(mode="before")
    @classmethod
    def _no_checkpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and "checkpoint" in data:
            raise ValueError("checkpoint: research checkpoints are chosen by Cristal (per organization, run and step), "
                             "not by workflow files; remove it")
        return data

    @field_validator("max_tokens")
    @classmethod
    def _tokens_cap(cls, v: int) -> int:
        # A step spends the organization's model budget on behalf of whoever submitted the file.
        if v > RESEARCH_MAX_TOKENS:
            raise ValueError(f"at most {RESEARCH_MAX_TOKENS} tokens per research step, not {v}")
        return v

    @field_validator("max_seconds")
    @classmethod
    def _seconds_cap(cls, v: float) -> float:
        if v > RESEARCH_MAX_SECONDS:
            raise ValueError(f"at most {RESEARCH_MAX_SECONDS:g} seconds per research step, not {v:g}")
        return v


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.research.checkpoints import claim_checkpoint, progress_for
    from cristal.research.run import Budget, run_research
    from cristal.research.store import CheckpointStore

    store = CheckpointStore(ctx.db)
    run_id = claim_checkpoint(store, ctx.org_id, ctx.principal.label, ctx.key, spec.get("checkpoint"))
    budget = Budget(max_steps=spec["max_steps"], max_tokens=spec.get("max_tokens", 60_000), max_seconds=spec["max_seconds"])
    resumable = store.exists(run_id)
    result = with_timeout(ctx.timeout, ctx.key, lambda: run_research(
        ctx.db, ctx.principal, None if resumable else str(spec["question"]), settings=ctx.settings, mode=spec["mode"],
        lang=spec.get("lang"), budget=budget, resume=run_id if resumable else None, run_id=None if resumable else run_id,
        store=store, progress=progress_for(ctx.run_id), workflow_run_id=ctx.run_id))
    doc = result.as_dict()
    if doc.get("status") == "partial":
        raise ActionError(f"research stopped early: {doc.get('error')}", retriable=True)
    return {k: doc.get(k) for k in ("run_id", "research_id", "status", "mode", "lang", "report", "citations", "disagreements")}


ACTIONS = (Action(
    name="research", spec=ResearchSpec, effect="read", run=run, limit="research",
    description="Research a question over the organization's documents the acting person may read; returns a report "
                "that cites its sources, with verbatim quotes.",
),)
