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
  policy``), when it has one.

The source a ``sql`` tool names and the workflow ``run_workflow`` starts are
not checked here: they may come later, and a call to a missing one is a tool
error the model is told about (``unknown source``, ``unknown deployment``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Organization
from cristal.errors import InvalidInput, NotFound
from cristal.models.endpoint import resolve_endpoint
from cristal.net.policy import AllowList


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
        check_in(settings, org, slug, model, tools)


def check_spec(settings: Settings, org: Organization, slug: str, spec: Mapping[str, Any]) -> None:
    """``check_agent`` for a stored definition (``AgentDefinition.spec()``) of a loaded organization."""
    tools = [(kind, options or {}) for entry in spec.get("tools") or [] for kind, options in entry.items()]
    check_in(settings, org, slug, spec.get("model"), tools)


def check_in(settings: Settings, org: Organization, slug: str, model: str | None,
             tools: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """The checks of ``check_agent`` on a loaded organization."""
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
        _check_tool(org, slug, kind, options)


def _check_tool(org: Organization, slug: str, kind: str, options: Mapping[str, Any]) -> None:
    if kind == "operate" and org.operator_allowed_domains is not None:
        domains = [str(d) for d in options.get("allow_domains") or ()]
        outside = AllowList.build(domains, domains[0] if domains else "", org.operator_allowed_domains).outside_org()
        if outside:
            raise InvalidInput(f"agent {slug!r}: tool {kind!r}: {', '.join(outside)} is outside organization {org.slug!r}'s "
                               f"Operator allow-list ({', '.join(org.operator_allowed_domains) or 'none'})")
