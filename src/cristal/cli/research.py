"""``cristal research``: a cited report from the company's knowledge, researched as the asking employee."""

from __future__ import annotations

from pathlib import Path

import typer

from cristal.cli.runtime import JSON, acting, note, open_database, print_json, quiet_progress, settings, show_text
from cristal.errors import InvalidInput

app = typer.Typer()


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


@app.command("research")
def research_command(
    question: str | None = typer.Argument(None, help="The question (in English, German or Japanese)."),
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str = typer.Option(..., "--as", help="The employee asking: the research sees only what they may read."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the report: Markdown, or HTML when FILE ends in .html."),
    html_file: Path | None = typer.Option(None, "--html", help="Also write a standalone HTML page with clickable citations."),
    json_out: bool = JSON,
    lang: str | None = typer.Option(None, "--lang", help="Answer in en, de or ja (default: the question's language)."),
    mode: str = typer.Option("auto", "--mode", help="auto (LLM when an endpoint is configured), extractive or llm."),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted run by its id."),
    max_steps: int = typer.Option(30, "--max-steps", help="Budget: searches plus model calls."),
    max_tokens: int = typer.Option(60_000, "--max-tokens", help="Budget: model tokens (in + out)."),
    max_seconds: float = typer.Option(300.0, "--max-seconds", help="Budget: wall-clock seconds."),
) -> None:
    """Plan, search as the employee, read, and write a report in which every claim cites its passage.

    The research is a durable workflow run (see `cristal workflow status RUN_ID`): if this process
    dies, `cristal worker` or `cristal research --resume RUN_ID` finishes it from its checkpoint.
    """
    from cristal.research import Budget, render_html
    from cristal.workflows import research_runs

    if resume is None and question is None:
        raise InvalidInput("empty question: pass a QUESTION (or --resume RUN_ID)")
    if min(max_steps, max_tokens) < 1 or max_seconds <= 0:
        raise InvalidInput("--max-steps, --max-tokens and --max-seconds must be positive")
    cfg = settings()
    db = open_database(cfg)
    quiet = quiet_progress(json_out)

    def progress(kind: str, message: str) -> None:
        if not quiet or kind in ("partial", "refused"):
            note("[dim]{:>8}[/] {}", kind, message)

    budget = Budget(max_steps=max_steps, max_tokens=max_tokens, max_seconds=max_seconds)
    try:
        with db.session() as s:
            principal = acting(s, org, as_email)
        if resume is not None:
            document = research_runs.resume(db, cfg, principal, resume, lang=lang, budget=budget, progress=progress)
        else:
            document = research_runs.start(db, cfg, principal, question, mode=mode, lang=lang, budget=budget, progress=progress)
    finally:
        db.dispose()
    if out_file is not None:
        _write(out_file, render_html(document) if out_file.suffix.lower() in (".html", ".htm") else document["report"])
        note("wrote {}", out_file)
    if html_file is not None:
        _write(html_file, render_html(document))
        note("wrote {}", html_file)
    if document["status"] == "partial":
        note("[yellow]partial report[/]: {}; resume with `cristal research --resume {} --org {} --as {}`",
             document["error"], document["run_id"], org, as_email)
    elif document["status"] == "no_results":
        note("no documents you may read match this question")
    if json_out:
        print_json(document)
    elif out_file is None:
        show_text(document["report"])
    else:
        st = document["stats"]
        note("{}: {} citation(s) from {} source(s); {} search(es), {} source(s) read, run {}", document["status"],
             len(document["citations"]), len(document["sources"]), st["searches"], st["sources_read"], document["run_id"])
