"""Actions: everything Cristal can do on someone's behalf, each declared once.

``base`` defines an action (``Action``), what it receives (``ActionContext``)
and how it fails (``ActionError``); ``registry`` collects the declared actions
into a ``Registry`` value; ``sql``, ``http``, ``python``, ``llm`` and
``search`` are the actions of this layer. ``research`` and ``operate`` are
declared by their own layers, ``approval`` and ``workflow`` by the workflow
engine (see ``registry.DEFAULT_ACTIONS`` and docs/architecture.md).
"""

from cristal.actions.base import MAX_OUTPUT_BYTES, Action, ActionContext, ActionError, Effect, Spec
from cristal.actions.registry import DEFAULT_ACTIONS, Registry, build_registry

__all__ = ["DEFAULT_ACTIONS", "MAX_OUTPUT_BYTES", "Action", "ActionContext", "ActionError", "Effect", "Registry", "Spec",
           "build_registry"]
