"""``cristal source ...``, ``cristal sync`` and ``cristal search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cristal.cli.app import app
from cristal.cli.runtime import acting, database, err, open_database, out, print_json, settings, unit_of_work
from cristal.errors import InvalidInput
from cristal.knowledge import sources
from cristal.knowledge.search import Searcher
from cristal.knowledge.sync import sync_source

source_app = typer.Typer(help="Connected systems: folders and databases.", no_args_is_help=True)
app.add_typer(source_app, name="source")

AS = typer.Option(None, "--as", help="Act as this employee instead of the installation operator.")
ORG = typer.Option(..., "--org", help="Organization slug.")
JSON = typer.Option(False, "--json", help="Print exactly one JSON document.")


@source_app.command("add")
def source_add(
    name: str,
    org: str = ORG,
    kind: str = typer.Option(..., "--kind", help="files, sql, web, s3, imap or api."),
    uri: str = typer.Option(..., "--uri", help="A folder path, an SQLAlchemy database URL, or the site, bucket, mailbox or API URL."),
    acl: Optional[str] = typer.Option(None, "--acl", help="Default access rules, e.g. org or group:finance,user:a@b.c"),
    redact_pii: bool = typer.Option(False, "--redact-pii", help="Replace e-mail addresses, phone, card and IBAN numbers at ingestion."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="sql: rows indexed per table (default 10000)."),
    max_file_mb: Optional[int] = typer.Option(None, "--max-file-mb", help="files: larger files are skipped (default 50)."),
    config: Optional[Path] = typer.Option(None, "--config", help="web, s3, imap, api: a YAML file with the source's settings."),
    as_email: Optional[str] = AS,
    json_out: bool = JSON,
) -> None:
    """Connect a folder tree, a database, an intranet site, a bucket, a mailbox or an API."""
    options: dict = {}
    if redact_pii:
        options["redact_pii"] = True
    if max_rows is not None:
        if max_rows < 1:
            raise InvalidInput("--max-rows must be at least 1")
        options["max_rows"] = max_rows
    if max_file_mb is not None:
        if max_file_mb < 1:
            raise InvalidInput("--max-file-mb must be at least 1")
        options["max_bytes"] = max_file_mb * 1024 * 1024
    from cristal.knowledge.connectors.settings import read_config_file

    settings = read_config_file(config) if config is not None else None
    with unit_of_work() as s:
        info = sources.add_source(s, acting(s, org, as_email), org, name, kind, uri, acl=acl, options=options, config=settings)
    if json_out:
        print_json(info.as_dict())
    else:
        err.print(f"added {info.kind} source [bold]{info.name}[/] ({info.uri}); default access: {', '.join(info.acl) if info.acl else 'admins only'}")
        err.print(f"next: cristal sync {info.name} --org {org}")


@source_app.command("list")
def source_list(org: str = ORG, as_email: Optional[str] = AS, json_out: bool = JSON) -> None:
    """List an organization's sources."""
    with unit_of_work() as s:
        items = sources.list_sources(s, acting(s, org, as_email), org)
    if json_out:
        print_json({"sources": [i.as_dict() for i in items]})
        return
    table = Table(title=f"Sources of {org}")
    for column in ("name", "kind", "uri", "default access", "documents", "last sync"):
        table.add_column(column)
    for i in items:
        table.add_row(i.name, i.kind, i.uri, ", ".join(i.acl) if i.acl else "admins only", str(i.documents),
                      i.last_sync_at.strftime("%Y-%m-%d %H:%M") if i.last_sync_at else "never")
    out.print(table)


@source_app.command("remove")
def source_remove(name: str, org: str = ORG, as_email: Optional[str] = AS) -> None:
    """Disconnect a source and remove everything indexed from it."""
    with unit_of_work() as s:
        sources.remove_source(s, acting(s, org, as_email), org, name)
    err.print(f"removed source {name} and its documents")


@app.command("sync")
def sync_command(
    name: Optional[str] = typer.Argument(None, help="Source to sync (default: all of the organization's sources)."),
    org: str = ORG,
    as_email: Optional[str] = AS,
    keyword_only: bool = typer.Option(False, "--keyword-only", help="Skip dense embeddings (keyword search is ready at once)."),
    json_out: bool = JSON,
) -> None:
    """Bring the index up to date with new, changed and deleted documents."""
    cfg = settings()
    db = open_database(cfg)
    try:
        with db.session() as s:
            actor = acting(s, org, as_email)
            names = [name] if name else [i.name for i in sources.list_sources(s, actor, org)]
        if not names:
            raise InvalidInput(f"organization {org!r} has no sources: add one with `cristal source add`")
        reports = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=json_out and not err.is_terminal) as bar:
            for source_name in names:
                task = bar.add_task(f"{source_name}: scanning", total=None)

                def progress(phase: str, done: int, total: int, task=task, source_name=source_name) -> None:  # type: ignore[no-untyped-def]
                    bar.update(task, description=f"{source_name}: {phase}", completed=done, total=total or None)

                reports.append(sync_source(db, actor, org, source_name, embed=not keyword_only, progress=progress, settings=cfg))
    finally:
        db.dispose()
    if json_out:
        print_json({"sources": [r.as_dict() for r in reports]})
        return
    for r in reports:
        out.print(
            f"[bold]{r.source}[/]: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.access_changed} access changed, {r.deleted} deleted, {r.chunks_written} chunks, "
            f"{r.embedded} embedded ({r.embeddings_reused} reused) in {r.seconds:.1f}s"
        )
        if r.kept_unseen:
            out.print(f"  kept {r.kept_unseen} documents the scan could not see")
        for problem in r.skipped:
            out.print(f"  [yellow]skipped[/] {problem['id']}: {problem['reason']}")


class BatchQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int
    query: str


def _read_batch(path: Path) -> list[BatchQuery]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    batch = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            batch.append(BatchQuery.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError):
            raise InvalidInput(f"{path}:{number}: expected a JSON object with \"id\" and \"query\"") from None
    return batch


@app.command("search")
def search_command(
    query: Optional[str] = typer.Argument(None, help="What to look for, in any language."),
    org: str = ORG,
    as_email: str = typer.Option(..., "--as", help="Search as this employee: only what they may read."),
    limit: int = typer.Option(10, "--limit"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, keyword or dense."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="JSONL file of {\"id\", \"query\"}; prints JSONL."),
    json_out: bool = JSON,
) -> None:
    """Search the organization's knowledge as an employee."""
    if mode not in ("hybrid", "keyword", "dense"):
        raise InvalidInput(f"invalid --mode {mode!r}: use hybrid, keyword or dense")
    if (query is None) == (queries is None):
        raise InvalidInput("give either a QUERY or --queries FILE.jsonl")
    batch = _read_batch(queries) if queries is not None else None
    with database() as db:
        with db.session() as s:
            principal = acting(s, org, as_email)
        searcher = Searcher(db)
        if batch is not None:
            for item in batch:
                hits = searcher.search(principal, item.query, limit=limit, mode=mode)  # type: ignore[arg-type]
                print_json({"id": item.id, "hits": [h.as_dict() for h in hits]})
            return
        hits = searcher.search(principal, query or "", limit=limit, mode=mode)  # type: ignore[arg-type]
    if json_out:
        print_json({"hits": [h.as_dict() for h in hits]})
        return
    if not hits:
        out.print("no results you may see")
        return
    for n, h in enumerate(hits, 1):
        out.print(f"[bold]{n}. {h.title}[/] [dim]({h.lang}, {h.uri})[/]")
        out.print(f"   {h.snippet}")
