"""The registry of action kinds, filled at start-up from one list of modules.

Each module named in ``DEFAULT_ACTIONS`` declares its actions in a tuple
``ACTIONS`` of ``Action`` values; ``build_registry()`` imports the modules and
returns an immutable ``Registry``, which callers pass around (the workflow
engine builds one per run, validation one per file). The layer that owns an
action declares it: ``cristal.research.action`` declares ``research``,
``cristal.operator.action`` declares ``operate``, ``cristal.agents.action`` ``agent``, ``cristal.workflows.actions``
the two kinds the engine carries out itself (``approval``, ``workflow``). The
registry names them by string only, so this low layer never imports the
layers above it; importing a module must stay cheap (heavy libraries are
imported inside ``run``).

A new action is one module with ``ACTIONS = (Action(...),)`` and one line in
``DEFAULT_ACTIONS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from cristal.actions.base import Action

# The order is the order in which documentation and error messages list the kinds.
DEFAULT_ACTIONS = (
    "cristal.actions.sql",
    "cristal.actions.http",
    "cristal.actions.python",
    "cristal.actions.llm",
    "cristal.actions.search",
    "cristal.research.action",
    "cristal.operator.action",
    "cristal.agents.action",
    "cristal.workflows.actions",
)


class RegistryError(Exception):
    """A module in the list declares no actions, or two modules declare the same name (a programming error)."""


@dataclass(frozen=True)
class Registry:
    """Action kinds by name, in declaration order."""

    actions: Mapping[str, Action]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.actions)

    def get(self, name: str) -> Action | None:
        return self.actions.get(name)

    def __getitem__(self, name: str) -> Action:
        return self.actions[name]

    def __contains__(self, name: object) -> bool:
        return name in self.actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions.values())

    def __len__(self) -> int:
        return len(self.actions)


def build_registry(modules: Iterable[str] = DEFAULT_ACTIONS) -> Registry:
    """Import ``modules`` and collect the ``ACTIONS`` each declares."""
    found: dict[str, Action] = {}
    for name in modules:
        module = importlib.import_module(name)
        declared = getattr(module, "ACTIONS", None)
        if not isinstance(declared, tuple) or not declared or not all(isinstance(a, Action) for a in declared):
            raise RegistryError(f"{name} declares no ACTIONS (a tuple of cristal.actions.Action)")
        for action in declared:
            if action.name in found:
                raise RegistryError(f"action {action.name!r} is declared by {found[action.name].owner} and by {name}")
            found[action.name] = replace(action, owner=name)
    return Registry(MappingProxyType(found))
