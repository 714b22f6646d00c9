"""The research part of ``cristal demo``: one extractive question over the sample company."""

from __future__ import annotations

from pathlib import Path

from cristal.config import Settings
from cristal.db import Database
from cristal.identity.directory import resolve_principal
from cristal.research.html import render_html
from cristal.research.run import run_research

DEMO_ORG = "aozora-de"
DEMO_AS = "jonas.becker@aozora-de.example"
DEMO_QUESTION = "Wie hoch ist die Hotelobergrenze pro Nacht in München?"


def demo_research(db: Database, home: Path | str) -> dict:
    """Research ``DEMO_QUESTION`` as an aozora-de employee (extractive, offline) and write
    ``$CRISTAL_HOME/reports/research-demo.md`` and ``.html``; returns a summary for the demo's output."""
    home = Path(home)
    with db.session() as s:
        principal = resolve_principal(s, DEMO_ORG, DEMO_AS)
    result = run_research(db, principal, DEMO_QUESTION, settings=Settings(home=home), mode="extractive")
    reports = home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    markdown, page = reports / "research-demo.md", reports / "research-demo.html"
    markdown.write_text(result.report, encoding="utf-8")
    page.write_text(render_html(result.as_dict()), encoding="utf-8")
    return {
        "org": DEMO_ORG, "as": DEMO_AS, "question": DEMO_QUESTION, "mode": result.mode, "status": result.status,
        "citations": len(result.citations), "sources": [s["title"] for s in result.sources],
        "disagreements": [" vs ".join(v["value"] for v in d["values"]) for d in result.disagreements],
        "markdown": str(markdown), "html": str(page), "run_id": result.run_id,
    }
