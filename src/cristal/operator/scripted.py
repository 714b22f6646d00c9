"""A scripted policy for the Operator: tool calls that pick elements by what they see.

``act("click", 'button "Sign in"')`` is a ScriptedModel step that reads the
latest observation in the request, finds the line ``[ID] button "Sign in"``
and calls ``click`` with that ID, as a model would. The demo records a run
with it (no model, no network) and the tests drive their scenarios with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cristal.errors import CristalError
from cristal.testing.scripted_model import Reply, tool_call


def latest_observation(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str) and "Interactive elements:" in content:
            return content
    raise CristalError("no observation in the request")


def element_id(observation: str, label: str, after: str | None = None) -> int:
    """The ID of the first element whose line starts with ``role "name"`` (``label``); with ``after``, the first
    such element listed after the line that starts with ``after`` (a star in a given row, say)."""
    section = observation.split("Interactive elements:", 1)[1].split("Visible text:", 1)[0]
    seen = after is None
    for line in section.splitlines():
        m = re.match(r"\[(\d+)\] (.*)$", line)
        if not m:
            continue
        if not seen:
            seen = m.group(2).startswith(after or "")
            continue
        if m.group(2).startswith(label):
            return int(m.group(1))
    where = f" after {after!r}" if after else ""
    raise CristalError(f"no element {label!r}{where} in the observation")


def act(tool: str, label: str, *, after: str | None = None, to: str | None = None, **args: Any) -> Callable[[dict[str, Any]], Reply]:
    """A step that calls ``tool`` on the element ``label`` (``to``: the element ``drag`` drops it on)."""
    def step(body: dict[str, Any]) -> Reply:
        observation = latest_observation(body)
        extra = {"to": element_id(observation, to)} if to is not None else {}
        return tool_call(tool, {"element": element_id(observation, label, after), **extra, **args})

    return step
