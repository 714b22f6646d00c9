"""The model's tools, as OpenAI function tools, and the checking of their arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cristal.models.shapes import function_tool

_ELEMENT = {"type": "integer", "description": "The element's ID: the number in [brackets] in the latest observation."}

TOOLS: list[dict[str, Any]] = [
    function_tool("click", "Click an element (a link, button, checkbox, radio button, tab, row, option ...). "
                  "On an option of a multi-select list box, a click adds or removes that option.",
                  {"type": "object", "properties": {"element": _ELEMENT}, "required": ["element"]}),
    function_tool("fill", "Replace the text in a text field. To type a secret, write its placeholder, e.g. {{PASSWORD}}.",
                  {"type": "object", "properties": {"element": _ELEMENT, "text": {"type": "string"}}, "required": ["element", "text"]}),
    function_tool("select_option", "Choose an option of a drop-down list (combobox) by its visible label; for a list box that "
                  "takes several (multiselectable), give values: exactly those end up selected.",
                  {"type": "object", "properties": {"element": _ELEMENT, "value": {"type": "string"},
                                                    "values": {"type": "array", "items": {"type": "string"}}},
                   "required": ["element"]}),
    function_tool("press", "Press a key on the focused element: Enter, Tab, Escape, ArrowDown, Backspace, Control+A ...",
                  {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
    function_tool("scroll", "Scroll the page.",
                  {"type": "object", "properties": {"direction": {"type": "string", "enum": ["up", "down", "top", "bottom"]}},
                   "required": ["direction"]}),
    function_tool("hover", "Move the mouse over an element (menus that open on hover, tooltips).",
                  {"type": "object", "properties": {"element": _ELEMENT}, "required": ["element"]}),
    function_tool("drag", "Drag an element and drop it onto another one.",
                  {"type": "object",
                   "properties": {"element": _ELEMENT, "to": {**_ELEMENT, "description": "The ID of the element to drop it on."}},
                   "required": ["element", "to"]}),
    function_tool("upload", "Put one of this run's files into a file field (or the button that opens the file chooser).",
                  {"type": "object",
                   "properties": {"element": _ELEMENT,
                                  "file": {"type": "string", "description": "The file's name, as listed in the task."}},
                   "required": ["element", "file"]}),
    function_tool("wait", "Wait for the page: a number of seconds, or until a text or an element appears (a list of suggestions, "
                  "a result), then look again. Bounded by the run's limits.",
                  {"type": "object", "properties": {
                      "seconds": {"type": "number", "description": "How long at most."},
                      "text": {"type": "string", "description": "Wait until this text is on the page."},
                      "element": {"type": "string", "description": "Wait until an element appears, as listed: "
                                  "'option \"Bern\"', or a name; or an ID to wait until it is enabled."}}}),
    function_tool("goto", "Open a URL (absolute, or relative to the current page). Only the run's allowed domains can be reached.",
                  {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}),
    function_tool("done", "Finish the task and report the result (what was done, or why it cannot be done).",
                  {"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]}),
]
# Only with --vision: the model sees a screenshot and may click what no listing reaches.
CLICK_POINT = function_tool("click_point", "Click a point of the latest screenshot (x, y in its pixels, from the top left), "
                            "for something the element list does not show. Prefer click(element) whenever the element is listed.",
                            {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]})
TOOL_NAMES = [t["function"]["name"] for t in TOOLS]
ELEMENT_TOOLS = {"click", "fill", "select_option", "hover", "drag", "upload"}
_REQUIRED = {t["function"]["name"]: t["function"]["parameters"].get("required", []) for t in [*TOOLS, CLICK_POINT]}
_ID = re.compile(r"^\s*\[?\s*(\d{1,7})\s*\]?\s*$")
_ARGS = ("element", "to", "text", "value", "values", "key", "direction", "url", "result", "file", "seconds", "x", "y")


def tools_for(*, vision: bool) -> list[dict[str, Any]]:
    """The tools offered to the model: ``click_point`` only when it sees screenshots."""
    return [*TOOLS, CLICK_POINT] if vision else list(TOOLS)


class BadCall(Exception):
    """A tool call that cannot be carried out; the message goes back to the model."""


@dataclass(frozen=True)
class Action:
    tool: str
    args: dict[str, Any]  # as the model wrote them (placeholders, never secret values)
    element_id: int | None = None


def _element_id(raw: Any, what: str = "element") -> int:
    match = _ID.match(str(raw)) if not isinstance(raw, bool) else None
    if match is None:
        raise BadCall(f"error: {what} must be an ID number from the latest observation, not {str(raw)[:40]!r}")
    return int(match.group(1))


def parse_call(name: str, arguments: dict[str, Any], *, vision: bool = False) -> Action:
    """Check a tool call's name and arguments; ``BadCall`` says what is wrong in one line."""
    names = TOOL_NAMES + (["click_point"] if vision else [])
    if name not in names:
        if name == "click_point":
            raise BadCall("error: click_point is only available in runs with --vision (screenshots); click an element by its ID")
        raise BadCall(f"error: unknown tool {name[:60]!r}; the tools are {', '.join(names)}")
    missing = [a for a in _REQUIRED[name] if a not in arguments or arguments[a] is None]
    if missing:
        raise BadCall(f"error: {name} needs {', '.join(missing)}")
    args = {k: arguments[k] for k in _ARGS if k in arguments and arguments[k] is not None}
    element_id = None
    if name in ELEMENT_TOOLS:
        element_id = _element_id(arguments["element"])
        args["element"] = element_id
    if name == "drag":
        args["to"] = _element_id(arguments["to"], "to")
    for key in ("text", "value", "key", "url", "result", "direction", "file"):
        if key in args and not isinstance(args[key], str):
            args[key] = str(args[key])
    if name == "wait" and isinstance(args.get("element"), (int, float)) and not isinstance(args.get("element"), bool):
        args["element"] = str(int(args["element"]))
    if name == "select_option":
        values = args.get("values")
        if values is not None:
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float)) for v in values):
                raise BadCall("error: values must be a list of option labels, e.g. [\"Berlin\", \"Hamburg\"]")
            args["values"] = [str(v) for v in values][:100]
        elif "value" not in args:
            raise BadCall("error: select_option needs value (one option) or values (several)")
    if name == "wait" and not any(args.get(k) not in (None, "") for k in ("seconds", "text", "element")):
        raise BadCall("error: wait needs seconds, text or element")
    if name == "goto" and not args["url"].strip():
        raise BadCall("error: goto needs a URL")
    return Action(name, args, element_id)
