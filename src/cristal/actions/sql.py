"""``sql``: one read-only query against an organization's SQL source, as the acting person.

The query is checked to be a single read (``query_readonly``: parser,
read-only transaction, SQLite authorizer) and never contains templates: values
go in ``params`` as ``:name`` placeholders.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from cristal.actions.base import Action, ActionContext, ActionError, Spec, is_template
from cristal.errors import CristalError, NotFound
from cristal.identity.authorize import require


class SqlSpec(Spec):
    source: str
    query: str
    params: dict[str, Any] = Field(default_factory=dict)
    max_rows: int = Field(10_000, ge=1, le=1_000_000)

    @field_validator("query")
    @classmethod
    def _no_templates(cls, v: str) -> str:
        if is_template(v):
            raise ValueError("a query cannot contain templates (they would allow SQL injection): use :name placeholders and params")
        return v


def run(ctx: ActionContext, spec: dict[str, Any]) -> Any:
    from cristal.knowledge.connectors.sql import QueryTimedOut, query_readonly
    from cristal.knowledge.sources import source_by_name

    with ctx.db.session() as s:
        try:
            source = source_by_name(s, ctx.org_id, spec["source"])
        except NotFound:
            raise ActionError(f"unknown source {spec['source']!r} in organization {ctx.org!r}") from None
        resource = ctx.resource("source", source.name, acl=tuple(source.acl) if source.acl else None)
        require(s, ctx.principal, "source.query", resource, request_id=ctx.key, details={"workflow_step": ctx.key})
        uri, kind = source.uri, source.kind
    if kind != "sql":
        raise ActionError(f"source {spec['source']!r} is a {kind} source, not a database")
    max_rows = int(spec.get("max_rows") or 10_000)
    try:
        found = query_readonly(uri, spec["query"], spec.get("params") or {}, max_rows=max_rows, timeout=ctx.timeout)
    except QueryTimedOut as exc:
        raise ActionError(str(exc), retriable=True) from None
    except CristalError as exc:  # refused by the parser, the database or the authorizer
        raise ActionError(str(exc)) from None
    if found.more:
        raise ActionError(f"query returned more than max_rows={max_rows} rows; narrow it or raise max_rows")
    return found.rows


ACTIONS = (Action(
    name="sql", spec=SqlSpec, effect="read", run=run, limit="sql",
    description="Run one read-only SQL query (parameters as :name placeholders) against a SQL source of the organization; "
                "returns the rows.",
),)
