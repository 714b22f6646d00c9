"""An agent's tools: actions of the registry, offered to the model and run as the caller.

Each configured tool names a registry action and fixes part of its spec from
the agent's definition (the model never chooses those fields):

* ``search_knowledge`` -> the ``search`` action's searcher, within the agent's
  knowledge scope (``knowledge.search.Scope``) intersected with the caller's
  access; the hits are shown as numbered passages the answer cites ``[n]``;
* ``sql`` (options ``source``) -> the ``sql`` action on that source only (read-only);
* ``http`` (options ``endpoints``: URL prefixes) -> the ``http`` action, to a
  declared endpoint only (and within the network policy, which the action applies);
* ``research`` -> the ``research`` action.

Each tool carries its action's effect class (``read``, ``write``,
``destructive``), which decides whether untrusted text may reach it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cristal.actions.base import Action, Effect
from cristal.actions.registry import Registry
from cristal.errors import InvalidInput

# Tool name -> the registry action it runs.
ACTION_OF = {"search_knowledge": "search", "sql": "sql", "http": "http", "research": "research"}
# Spec fields the agent's definition fixes, per tool: hidden from the model, set from the options.
FIXED = {"search_knowledge": ("mode",), "sql": ("source",), "http": (), "research": ()}
# Options each tool accepts in the definition, and those it needs.
OPTIONS = {"search_knowledge": ("mode",), "sql": ("source",), "http": ("endpoints",), "research": ()}
REQUIRED = {"search_knowledge": (), "sql": ("source",), "http": ("endpoints",), "research": ()}
DESCRIPTIONS = {
    "search_knowledge": "Search the documents this agent may use (and you may read); returns numbered passages. "
                        "Cite a passage as [n] after each statement it supports.",
}


@dataclass(frozen=True)
class Tool:
    """One tool of an agent: the action it runs, its effect, what the model sees, what the definition fixed."""

    name: str
    action: Action
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effect(self) -> Effect:
        return self.action.effect

    def definition(self) -> dict[str, Any]:
        """The OpenAI tool definition (the action's JSON schema without the fields the agent fixes)."""
        schema = copy.deepcopy(self.action.spec.model_json_schema(by_alias=True))
        for name in FIXED[self.name]:
            schema.get("properties", {}).pop(name, None)
            if name in schema.get("required", []):
                schema["required"].remove(name)
        description = DESCRIPTIONS.get(self.name, self.action.description)
        if self.name == "http":
            description += " Only these endpoints: " + ", ".join(self.endpoints) + "."
        return {"type": "function", "function": {"name": self.name, "description": description, "parameters": schema}}

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.options.get("endpoints") or ())

    def spec(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The action's validated spec from the model's arguments and the fixed options; ``InvalidInput`` says what is wrong."""
        fixed = [k for k in arguments if k in FIXED[self.name]]
        if fixed:
            raise InvalidInput(f"argument {fixed[0]!r} is set by the agent's definition, not by the model")
        values = dict(arguments)
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
