"""``cristal source ...``, ``cristal sync`` and ``cristal search``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn

from cristal.cli.runtime import (
    JSON,
    acting,
    database,
    markup,
    note,
    open_database,
    print_json,
    progress,
    quiet_progress,
    settings,
    show,
    show_table,
    unit_of_work,
)
from cristal.errors import InvalidInput

if TYPE_CHECKING:
    from cristal.db import Database
    from cristal.knowledge.search import Searcher

app = typer.Typer()
source_app = typer.Typer(help="Connected systems: folders and databases.", no_args_is_help=True)
app.add_typer(source_app, name="source")

AS = typer.Option(None, "--as", help="Act as this employee instead of the installation principal.")
ORG = typer.Option(..., "--org", help="Organization slug.")


@source_app.command("add")
def source_add(
    name: str,
    org: str = ORG,
    kind: str = typer.Option(..., "--kind", help="files, sql, web, s3, imap or api."),
    uri: str = typer.Option(..., "--uri", help="A folder path, an SQLAlchemy database URL, or the site, bucket, mailbox or API URL."),
    acl: str | None = typer.Option(None, "--acl", help="Default access rules, e.g. org or group:finance,user:a@b.c"),
    redact_pii: bool = typer.Option(False, "--redact-pii", help="Replace e-mail addresses, phone, card and IBAN numbers at ingestion."),
    max_rows: int | None = typer.Option(None, "--max-rows", help="sql: rows indexed per table (default 10000)."),
    max_file_mb: int | None = typer.Option(None, "--max-file-mb", help="files: larger files are skipped (default 50)."),
    config: Path | None = typer.Option(None, "--config", help="web, s3, imap, api: a YAML file with the source's settings."),
    as_email: str | None = AS,
    json_out: bool = JSON,
) -> None:
    """Connect a folder tree, a database, an intranet site, a bucket, a mailbox or an API."""
    from cristal.knowledge import sources
    from cristal.knowledge.connectors.settings import read_config_file

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
    source_config = read_config_file(config) if config is not None else None
    with unit_of_work() as s:
        info = sources.add_source(s, acting(s, org, as_email), org, name, kind, uri, acl=acl, options=options, config=source_config)
    if json_out:
        print_json(info.as_dict())
    else:
        note("added {} source [bold]{}[/] ({}); default access: {}", info.kind, info.name, info.uri,
             ", ".join(info.acl) if info.acl else "admins only")
        note("next: cristal sync {} --org {}", info.name, org)


@source_app.command("list")
def source_list(org: str = ORG, as_email: str | None = AS, json_out: bool = JSON) -> None:
    """List an organization's sources."""
    from cristal.knowledge import sources

    with unit_of_work() as s:
        items = sources.list_sources(s, acting(s, org, as_email), org)
    if json_out:
        print_json({"sources": [i.as_dict() for i in items]})
        return
    show_table(f"Sources of {org}", ["name", "kind", "uri", "default access", "documents", "last sync"], [
        [i.name, i.kind, i.uri, ", ".join(i.acl) if i.acl else "admins only", i.documents,
         i.last_sync_at.strftime("%Y-%m-%d %H:%M") if i.last_sync_at else "never"]
        for i in items
    ])


@source_app.command("remove")
def source_remove(name: str, org: str = ORG, as_email: str | None = AS) -> None:
    """Disconnect a source and remove everything indexed from it."""
    from cristal.knowledge import sources

    with unit_of_work() as s:
        sources.remove_source(s, acting(s, org, as_email), org, name)
    note("removed source {} and its documents", name)


@app.command("sync")
def sync_command(
    name: str | None = typer.Argument(None, help="Source to sync (default: all of the organization's sources)."),
    org: str = ORG,
    as_email: str | None = AS,
    keyword_only: bool = typer.Option(False, "--keyword-only", help="Skip dense embeddings (keyword search is ready at once)."),
    json_out: bool = JSON,
) -> None:
    """Bring the index up to date with new, changed and deleted documents."""
    from cristal.knowledge import sources
    from cristal.knowledge.indexes import Embedders, build_pending
    from cristal.knowledge.sync import sync_source
    from cristal.models.embedder import endpoint_embedders
    from cristal.models.gateway import Gateway

    cfg = settings()
    db = open_database(cfg)
    gateway = Gateway(cfg, db)  # embeddings from an endpoint go through it (authorized, metered, within budget)
    embedders = Embedders(endpoint_embedders(gateway))
    reindex = None
    try:
        with db.session() as s:
            actor = acting(s, org, as_email)
            names = [name] if name else [i.name for i in sources.list_sources(s, actor, org)]
        if not names:
            raise InvalidInput(f"organization {org!r} has no sources: add one with `cristal source add`")
        reports = []
        with progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      quiet=quiet_progress(json_out)) as bar:
            for source_name in names:
                task = bar.add_task(markup("{}: scanning", source_name), total=None)

                def on_progress(phase: str, done: int, total: int, task: TaskID = task, source_name: str = source_name) -> None:
                    bar.update(task, description=markup("{}: {}", source_name, phase), completed=done, total=total or None)

                reports.append(sync_source(db, actor, org, source_name, embed=not keyword_only, embedders=embedders,
                                           progress=on_progress, settings=cfg))
            if not keyword_only:
                bar.add_task(markup("new embedding index"), total=None)
                reindex = build_pending(db, actor, org, embedders)
    finally:
        gateway.close()
        db.dispose()
    if json_out:
        print_json({"sources": [r.as_dict() for r in reports], "reindex": reindex.as_dict() if reindex else None})
        return
    for r in reports:
        show("[bold]{}[/]: {} added, {} updated, {} unchanged, {} access changed, {} deleted, {} chunks, "
             "{} embedded ({} reused) in {:.1f}s", r.source, r.added, r.updated, r.unchanged, r.access_changed, r.deleted,
             r.chunks_written, r.embedded, r.embeddings_reused, r.seconds)
        if r.kept_unseen:
            show("  kept {} documents the scan could not see", r.kept_unseen)
        for problem in r.skipped:
            show("  [yellow]skipped[/] {}: {}", problem["id"], problem["reason"])
    if reindex is not None:
        if reindex.state == "ready":
            show("new embedding index [bold]{}[/] is complete ({} embedded): searches use it now", reindex.model, reindex.embedded)
        else:
            show("  [yellow]new embedding index[/] {}: {} ({} embedded so far)", reindex.model, reindex.reason or reindex.state,
                 reindex.embedded)


@app.command("search")
def search_command(
    query: str | None = typer.Argument(None, help="What to look for, in any language."),
    org: str = ORG,
    as_email: str = typer.Option(..., "--as", help="Search as this employee: only what they may read."),
    limit: int = typer.Option(10, "--limit"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, keyword or dense."),
    queries: Path | None = typer.Option(None, "--queries", help="JSONL file of {\"id\", \"query\"}; prints JSONL."),
    json_out: bool = JSON,
) -> None:
    """Search the organization's knowledge as an employee."""
    from cristal.knowledge.batch import read_queries
    from cristal.knowledge.search import is_mode

    if not is_mode(mode):
        raise InvalidInput(f"invalid --mode {mode!r}: use hybrid, keyword or dense")
    if (query is None) == (queries is None):
        raise InvalidInput("give either a QUERY or --queries FILE.jsonl")
    batch = read_queries(queries) if queries is not None else None
    with database() as db, searcher_for(db) as searcher:
        with db.session() as s:
            principal = acting(s, org, as_email)
        if batch is not None:
            for item in batch:
                hits = searcher.search(principal, item.query, limit=limit, mode=mode)
                print_json({"id": item.id, "hits": [h.as_dict() for h in hits]})
            return
        hits = searcher.search(principal, query or "", limit=limit, mode=mode)
    if json_out:
        print_json({"hits": [h.as_dict() for h in hits]})
        return
    if not hits:
        show("no results you may see")
        return
    for n, h in enumerate(hits, 1):
        show("[bold]{}. {}[/] [dim]({}, {})[/]", n, h.title, h.lang, h.uri)
        show("   {}", h.snippet)


@contextmanager
def searcher_for(db: Database) -> Iterator[Searcher]:
    """A searcher that embeds queries with each organization's own model (an endpoint's through the gateway)."""
    from cristal.knowledge.indexes import Embedders
    from cristal.knowledge.search import Searcher
    from cristal.models.embedder import endpoint_embedders
    from cristal.models.gateway import Gateway

    with Gateway(settings(), db) as gateway:
        yield Searcher(db, Embedders(endpoint_embedders(gateway)))
