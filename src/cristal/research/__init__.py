"""Deep Research: cited reports from the company's own knowledge, searched as the asking employee.

``run_research(db, principal, question, settings=...)`` plans, searches (in
parallel, as the user), reads, searches again for what is missing and writes
a report whose every claim cites a verbatim quote. With an LLM endpoint the
model plans and writes (its draft is verified citation by citation); without
one an extractive report is built from quotes. ``render_html`` turns the
result into a standalone page. The notes are checkpointed in the database
(``research_runs``); ``cristal research`` runs each question as a durable
one-step workflow run (:mod:`cristal.workflows.research_runs`; a step finds
its checkpoint with :mod:`cristal.research.checkpoints`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Budget", "ResearchResult", "render_html", "run_research"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the migrations import ``cristal.research.schema`` and need none of this.
    if name == "render_html":
        from cristal.research.html import render_html

        return render_html
    if name in ("Budget", "ResearchResult", "run_research"):
        from cristal.research import run

        return getattr(run, name)
    raise AttributeError(f"module 'cristal.research' has no attribute {name!r}")
