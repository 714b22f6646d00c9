"""The model's tools, as OpenAI function tools, and the checking of their arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cristal.models.shapes import function_tool

_ELEMENT = {"type": "integer", "description": "The element's ID: the number in [brackets] in the latest observation."}

TOOLS: list[dict[str, Any]] = [
    function_tool("click", "Click an element (a link, button, checkbox, radio button, tab ...).",
                  {"type": "object", "properties": {"element": _ELEMENT}, "required": ["element"]}),
    function_tool("fill", "Replace the text in a text field. To type a secret, write its placeholder, e.g. {{PASSWORD}}.",
                  {"type": "object", "properties": {"element": _ELEMENT, "text": {"type": "string"}}, "required": ["element", "text"]}),
    function_tool("select_option", "Choose an option of a drop-down list (combobox/listbox) by its visible label.",
                  {"type": "object", "properties": {"element": _ELEMENT, "value": {"type": "string"}}, "required": ["element", "value"]}),
    function_tool("press", "Press a key on the focused element: Enter, Tab, Escape, ArrowDown, Backspace, Control+A ...",
                  {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
    function_tool("scroll", "Scroll the page.",
                  {"type": "object", "properties": {"direction": {"type": "string", "enum": ["up", "down", "top", "bottom"]}},
                   "required": ["direction"]}),
    function_tool("goto", "Open a URL (absolute, or relative to the current page). Only the run's allowed domains can be reached.",
                  {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}),
    function_tool("done", "Finish the task and report the result (what was done, or why it cannot be done).",
                  {"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]}),
]
TOOL_NAMES = [t["function"]["name"] for t in TOOLS]
ELEMENT_TOOLS = {"click", "fill", "select_option"}
_REQUIRED = {t["function"]["name"]: t["function"]["parameters"].get("required", []) for t in TOOLS}
_ID = re.compile(r"^\s*\[?\s*(\d{1,7})\s*\]?\s*$")


class BadCall(Exception):
    """A tool call that cannot be carried out; the message goes back to the model."""


@dataclass(frozen=True)
class Action:
    tool: str
    args: dict[str, Any]  # as the model wrote them (placeholders, never secret values)
    element_id: int | None = None


def parse_call(name: str, arguments: dict[str, Any]) -> Action:
    """Check a tool call's name and arguments; ``BadCall`` says what is wrong in one line."""
    if name not in _REQUIRED:
        raise BadCall(f"error: unknown tool {name[:60]!r}; the tools are {', '.join(TOOL_NAMES)}")
    missing = [a for a in _REQUIRED[name] if a not in arguments or arguments[a] is None]
    if missing:
        raise BadCall(f"error: {name} needs {', '.join(missing)}")
    args = {k: arguments[k] for k in ("element", "text", "value", "key", "direction", "url", "result") if k in arguments}
    element_id = None
    if name in ELEMENT_TOOLS:
        raw = arguments["element"]
        match = _ID.match(str(raw)) if not isinstance(raw, bool) else None
        if match is None:
            raise BadCall(f"error: element must be an ID number from the latest observation, not {str(raw)[:40]!r}")
        element_id = int(match.group(1))
        args["element"] = element_id
    for key in ("text", "value", "key", "url", "result", "direction"):
        if key in args and not isinstance(args[key], str):
            args[key] = str(args[key])
    if name == "goto" and not args["url"].strip():
        raise BadCall("error: goto needs a URL")
    return Action(name, args, element_id)
