"""What an organization lets its agents use: the model, the tool kinds, and what each tool names.

``check_agent`` is called when an agent is created, edited or published
(``agents.store``) and at the start of every turn (``agents.runtime``), so an
agent that was fine when published but names something the organization no
longer allows fails with the same one-line ``InvalidInput`` when asked:

* the model: none (the organization's own chat model), that model by name, or
  one the installation lists for the organization (``Settings.agent_models``);
* the tool kinds: those listed for the organization (``Settings.agent_tools``;
  no entry: every kind);
* ``operate``: domains within its Operator allow-list (``cristal operator
  policy``), when it has one;
* at a turn also: ``sql`` names a SQL source of the organization, and
  ``run_workflow`` a workflow deployed in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Organization
from cristal.errors import InvalidInput, NotFound
from cristal.knowledge.sources import source_by_name
from cristal.models.endpoint import resolve_endpoint
from cristal.net.policy import AllowList
from cristal.workflows.schema import WorkflowDeployment


def _listed(table: Mapping[str, tuple[str, ...]], org: str) -> tuple[str, ...] | None:
    if org in table:
        return tuple(table[org])
    if "*" in table:
        return tuple(table["*"])
    return None


def allowed_models(settings: Settings, org: Organization) -> list[str]:
    """The model names agents of ``org`` may name: its own chat model and those the installation lists."""
    own = resolve_endpoint(settings, org).chat_model
    return list(dict.fromkeys([*([own] if own else []), *(_listed(settings.agent_models, org.slug) or ())]))


def check_agent(db: Database, settings: Settings, org_id: int, slug: str, model: str | None,
                tools: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """``InvalidInput`` naming the first thing of agent ``slug`` that its organization does not allow."""
    with db.session() as s:
        org = s.get(Organization, org_id)
        if org is None:
            raise NotFound("the organization no longer exists")
        check_in(s, settings, org, slug, model, tools, names=True)


def check_spec(s: Session, settings: Settings, org: Organization, slug: str, spec: Mapping[str, Any]) -> None:
    """``check_agent`` for a stored definition (``AgentDefinition.spec()``), in the caller's session.

    The source and workflow a tool names may come later (a draft is written before its workflow is deployed):
    only a turn requires them to exist.
    """
    tools = [(kind, options or {}) for entry in spec.get("tools") or [] for kind, options in entry.items()]
    check_in(s, settings, org, slug, spec.get("model"), tools)


def check_in(s: Session, settings: Settings, org: Organization, slug: str, model: str | None,
             tools: Iterable[tuple[str, Mapping[str, Any]]], *, names: bool = False) -> None:
    """The checks of ``check_agent``; ``names``: also that the source and workflow the tools name exist."""
    if model is not None:
        models = allowed_models(settings, org)
        if model not in models:
            raise InvalidInput(f"agent {slug!r}: organization {org.slug!r} does not offer the model {model!r} "
                               f"(it offers: {', '.join(models) or 'only its own model; leave model out'})")
    kinds = _listed(settings.agent_tools, org.slug)
    for kind, options in tools:
        if kinds is not None and kind not in kinds:
            raise InvalidInput(f"agent {slug!r}: organization {org.slug!r} does not allow the tool {kind!r} "
                               f"(it allows: {', '.join(kinds) or 'none'})")
        _check_tool(s, org, slug, kind, options, names)


def _check_tool(s: Session, org: Organization, slug: str, kind: str, options: Mapping[str, Any], names: bool) -> None:
    where = f"agent {slug!r}: tool {kind!r}"
    if kind == "sql" and names:
        try:
            source = source_by_name(s, org.id, str(options.get("source")))
        except NotFound:
            raise InvalidInput(f"{where}: organization {org.slug!r} has no source {options.get('source')!r}") from None
        if source.kind != "sql":
            raise InvalidInput(f"{where}: source {source.name!r} is a {source.kind} source, not a database")
    elif kind == "run_workflow" and names:
        name = str(options.get("workflow"))
        if s.scalar(select(WorkflowDeployment.id).where(WorkflowDeployment.org_id == org.id,
                                                          WorkflowDeployment.name == name)) is None:
            raise InvalidInput(f"{where}: no workflow named {name!r} is deployed in organization {org.slug!r} "
                               "(cristal workflow deploy)")
    elif kind == "operate" and org.operator_allowed_domains is not None:
        domains = [str(d) for d in options.get("allow_domains") or ()]
        outside = AllowList.build(domains, domains[0] if domains else "", org.operator_allowed_domains).outside_org()
        if outside:
            raise InvalidInput(f"{where}: {', '.join(outside)} is outside organization {org.slug!r}'s Operator "
                               f"allow-list ({', '.join(org.operator_allowed_domains) or 'none'})")
