"""Deep Research: cited reports from the company's own knowledge, searched as the asking employee.

``run_research(db, principal, question, settings=...)`` plans, searches (in
parallel, as the user), reads, searches again for what is missing and writes
a report whose every claim cites a verbatim quote. With an LLM endpoint the
model plans and writes (its draft is verified citation by citation); without
one an extractive report is built from quotes. ``render_html`` turns the
result into a standalone page.
"""

from cristal.research.html import render_html
from cristal.research.run import Budget, ResearchResult, run_research

__all__ = ["Budget", "ResearchResult", "render_html", "run_research"]
