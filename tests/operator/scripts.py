"""Scripted "models" for the Operator tests: tool calls that pick elements by what they see.

``act("click", 'button "Log in"')`` is a ScriptedModel step that reads the latest
observation in the request, finds the line ``[ID] button "Log in"`` and calls
``click`` with that ID, as a model would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cristal.testing.scripted_model import Reply, tool_call

from tests.operator.site import USER


def latest_observation(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str) and "Interactive elements:" in content:
            return content
    raise AssertionError("no observation in the request")


def element_id(observation: str, label: str) -> int:
    """The ID of the first element whose line starts with ``role "name"`` (``label``)."""
    section = observation.split("Interactive elements:", 1)[1].split("Visible text:", 1)[0]
    for line in section.splitlines():
        m = re.match(r"\[(\d+)\] (.*)$", line)
        if m and m.group(2).startswith(label):
            return int(m.group(1))
    raise AssertionError(f"no element {label!r} in:\n{section}")


def act(tool: str, label: str, **args: Any) -> Callable[[dict[str, Any]], Reply]:
    def step(body: dict[str, Any]) -> Reply:
        return tool_call(tool, {"element": element_id(latest_observation(body), label), **args})

    return step


def login_steps(password: str = "{{PASSWORD}}") -> list[Any]:
    return [
        act("fill", 'textbox "E-mail"', text=USER),
        act("fill", 'textbox "Password"', text=password),
        act("click", 'button "Log in"'),
    ]


def new_claim_steps(description: str = "Train to Berlin", amount: str = "89.90", category: str = "Travel") -> list[Any]:
    return [
        act("click", 'link "New expense"'),
        act("fill", 'textbox "Description"', text=description),
        act("fill", 'textbox "Amount (EUR)"', text=amount),
        act("select_option", 'combobox "Category"', value=category),
        act("click", 'checkbox "Receipt attached"'),
    ]
