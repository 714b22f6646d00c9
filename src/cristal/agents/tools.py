"""An agent's tools: actions of the registry, offered to the model and run as the caller.

Each configured tool names a registry action and fixes part of its spec from
the agent's definition (the model never chooses those fields):

* ``search_knowledge`` -> the ``search`` action's searcher, within the agent's
  knowledge scope (``knowledge.search.Scope``) intersected with the caller's
  access; the hits are shown as numbered passages the answer cites ``[n]``;
* ``sql`` (options ``source``, optionally ``queries``) -> the ``sql`` action on
  that source only (read-only); with ``queries`` the model picks one of those
  named queries and gives its ``:name`` parameters, never its own SQL;
* ``http`` (options ``endpoints``: URL prefixes) -> the ``http`` action, to a
  declared endpoint only (and within the network policy, which the action applies);
* ``research`` -> the ``research`` action;
* ``run_workflow`` (option ``workflow``) -> a run of that deployed workflow as
  the caller (the engine's ``workflow`` kind: effect ``write``), started by
  ``agents.runs``;
* ``operate`` (option ``allow_domains``) -> the ``operate`` action as a
  durable one-step run (``agents.runs``), within those domains.

Each tool carries its action's effect class (``read``, ``write``,
``destructive``), which decides whether untrusted text may reach it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cristal.actions.base import Action, Effect
from cristal.actions.registry import Registry
from cristal.errors import InvalidInput

# Tool name -> the registry action it runs.
ACTION_OF = {"search_knowledge": "search", "sql": "sql", "http": "http", "research": "research",
             "run_workflow": "workflow", "operate": "operate"}
# Spec fields the agent's definition fixes, per tool: hidden from the model, set from the options.
FIXED = {"search_knowledge": ("mode",), "sql": ("source",), "http": (), "research": (), "run_workflow": ("workflow",),
         "operate": ("allow_domains", "approvers")}
# Options each tool accepts in the definition, and those it needs.
OPTIONS = {"search_knowledge": ("mode",), "sql": ("source", "queries"), "http": ("endpoints",), "research": (),
           "run_workflow": ("workflow",), "operate": ("allow_domains", "approvers")}
REQUIRED = {"search_knowledge": (), "sql": ("source",), "http": ("endpoints",), "research": (),
            "run_workflow": ("workflow",), "operate": ("allow_domains",)}
DESCRIPTIONS = {
    "search_knowledge": "Search the documents this agent may use (and you may read); returns numbered passages. "
                        "Cite a passage as [n] after each statement it supports.",
    "run_workflow": "Start a run of the deployed workflow {workflow!r} as the person you talk to, with these inputs; "
                    "returns the run's id and status.",
    "operate": "Do a task in the organization's web applications through a real browser, only within {domains}; "
               "irreversible actions wait for a person's approval. Returns the run's id and status "
               "(waiting_for_approval with the approval id when it stopped for one).",
}
# What the model gives the tools whose arguments are not their action's spec (the rest is fixed by the definition).
ARGUMENTS: dict[str, dict[str, Any]] = {
    "run_workflow": {"type": "object", "properties": {"inputs": {"type": "object", "description": "input name: value"}},
                     "additionalProperties": False},
    "operate": {"type": "object", "properties": {"task": {"type": "string", "description": "what to do, in plain words"},
                                                 "start_url": {"type": "string", "description": "the page to start on"}},
                "required": ["task", "start_url"], "additionalProperties": False},
}
# ``:name`` placeholders of a named query (``::`` is a PostgreSQL cast, not a parameter).
PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
# The status a started run's output has when it stopped for a person's approval (the call is then needs_approval).
WAITING_FOR_APPROVAL = "waiting_for_approval"


def query_params(query: str) -> list[str]:
    """The parameter names of a named query, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(query)))


@dataclass(frozen=True)
class Tool:
    """One tool of an agent: the action it runs, its effect, what the model sees, what the definition fixed."""

    name: str
    action: Action
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def starts_run(self) -> bool:
        """Whether the tool starts a durable run (``agents.runs``) instead of running its action inside the turn."""
        return self.name in ARGUMENTS

    @property
    def effect(self) -> Effect:
        return self.action.effect

    @property
    def queries(self) -> Mapping[str, str]:
        return self.options.get("queries") or {} if self.name == "sql" else {}

    def definition(self) -> dict[str, Any]:
        """The OpenAI tool definition (the action's JSON schema without the fields the agent fixes)."""
        if self.queries:
            return self._named_queries_definition()
        if self.name in ARGUMENTS:
            description = DESCRIPTIONS[self.name].format(workflow=self.options.get("workflow"),
                                                         domains=", ".join(self.options.get("allow_domains") or ()))
            return {"type": "function", "function": {"name": self.name, "description": description,
                                                     "parameters": copy.deepcopy(ARGUMENTS[self.name])}}
        schema = copy.deepcopy(self.action.spec.model_json_schema(by_alias=True))
        for name in FIXED[self.name]:
            schema.get("properties", {}).pop(name, None)
            if name in schema.get("required", []):
                schema["required"].remove(name)
        description = DESCRIPTIONS.get(self.name, self.action.description)
        if self.name == "http":
            description += " Only these endpoints: " + ", ".join(self.endpoints) + "."
        return {"type": "function", "function": {"name": self.name, "description": description, "parameters": schema}}

    def _named_queries_definition(self) -> dict[str, Any]:
        listed = "; ".join(f"{name}({', '.join(query_params(q)) or 'no parameters'})" for name, q in self.queries.items())
        description = (f"Run one of the named read-only queries on the {self.options['source']!r} database, "
                       f"with its parameters: {listed}. Returns the rows.")
        parameters = {"type": "object", "properties": {
            "query": {"type": "string", "enum": list(self.queries), "description": "the name of the query"},
            "params": {"type": "object", "description": "the query's parameters, name: value"}},
            "required": ["query"], "additionalProperties": False}
        return {"type": "function", "function": {"name": self.name, "description": description, "parameters": parameters}}

    def _named_query_values(self, arguments: dict[str, Any]) -> dict[str, Any]:
        name = str(arguments.get("query"))
        if name not in self.queries:
            raise InvalidInput(f"invalid arguments for sql: query must be one of {', '.join(self.queries)}, not {name!r}")
        params = arguments.get("params") or {}
        unknown = sorted(set(arguments) - {"query", "params"})
        if unknown or not isinstance(params, dict):
            raise InvalidInput(f"invalid arguments for sql: give only query and params (an object), not {unknown or 'params'}")
        wanted = query_params(self.queries[name])
        missing = [p for p in wanted if p not in params]
        extra = sorted(set(params) - set(wanted))
        if missing or extra:
            raise InvalidInput(f"invalid arguments for sql: query {name!r} takes {', '.join(wanted) or 'no parameters'}"
                               + (f"; missing {missing[0]!r}" if missing else f"; unknown {extra[0]!r}"))
        return {"source": self.options["source"], "query": self.queries[name], "params": params}

    def _run_values(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The spec of a tool that starts a run (``run_workflow``, ``operate``) from the model's few arguments."""
        allowed = set(ARGUMENTS[self.name]["properties"])
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise InvalidInput(f"invalid arguments for {self.name}: unknown argument {unknown[0]!r} "
                               f"(it takes: {', '.join(sorted(allowed))})")
        if self.name == "run_workflow":
            inputs = arguments.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise InvalidInput("invalid arguments for run_workflow: inputs must be an object of name: value")
            return {"workflow": self.options["workflow"], "inputs": inputs}
        values = {k: arguments.get(k) for k in ("task", "start_url")}
        try:
            spec = self.action.spec.model_validate({**values, "allow_domains": list(self.options["allow_domains"]),
                                                    "approvers": list(self.options.get("approvers") or ())})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"invalid arguments for operate: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        return spec.model_dump(by_alias=True)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.options.get("endpoints") or ())

    def spec(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The action's validated spec from the model's arguments and the fixed options; ``InvalidInput`` says what is wrong."""
        fixed = [k for k in arguments if k in FIXED[self.name]]
        if fixed:
            raise InvalidInput(f"argument {fixed[0]!r} is set by the agent's definition, not by the model")
        if self.name in ARGUMENTS:
            return self._run_values(arguments)
        values = self._named_query_values(arguments) if self.queries else dict(arguments)
        if self.name == "sql":
            values["source"] = self.options["source"]
        if self.name == "search_knowledge":
            values["mode"] = self.options.get("mode", "hybrid")
        try:
            spec = self.action.spec.model_validate(values).model_dump(by_alias=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            raise InvalidInput(f"invalid arguments for {self.name}: {where}: {first['msg']}") from None
        if self.name == "http" and not any(str(spec["url"]).startswith(e) for e in self.endpoints):
            raise InvalidInput(f"{spec['url']!r} is not one of the endpoints this agent declares")
        return spec


def build_tools(registry: Registry, configs: tuple[tuple[str, Mapping[str, Any]], ...]) -> dict[str, Tool]:
    """The tools of an agent by name; an unknown tool, a missing option or an unknown option is ``InvalidInput``."""
    tools: dict[str, Tool] = {}
    for name, options in configs:
        if name not in ACTION_OF:
            raise InvalidInput(f"unknown tool {name!r}: use one of {', '.join(ACTION_OF)}")
        action = registry.get(ACTION_OF[name])
        if action is None:
            raise InvalidInput(f"tool {name!r} needs the {ACTION_OF[name]!r} action, which this installation does not register")
        unknown = sorted(set(options) - set(OPTIONS[name]))
        if unknown:
            raise InvalidInput(f"tool {name!r} has no option {unknown[0]!r}")
        missing = [o for o in REQUIRED[name] if not options.get(o)]
        if missing:
            raise InvalidInput(f"tool {name!r} needs the option {missing[0]!r}")
        if name in tools:
            raise InvalidInput(f"tool {name!r} is listed twice")
        tools[name] = Tool(name, action, dict(options))
    return tools
