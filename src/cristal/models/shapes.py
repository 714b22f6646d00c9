"""What agents exchange with the gateway: results, tool calls, usage, and message builders.

Messages themselves stay plain OpenAI-format dicts (``{"role", "content"}``),
the lingua franca of every compatible server; these helpers build the ones
that are fiddly to get right (tool definitions, tool results, the assistant
turn that carried tool calls).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

_NAME = re.compile(r"[^A-Za-z0-9_-]")

T = TypeVar("T")


class BadResponse(Exception):
    """The endpoint answered, but not with a usable completion (not JSON, fields missing).

    ``tokens_in``/``tokens_out`` carry the usage the response did report, so a
    useless answer is still metered at its cost. (Defined here, not next to the
    ``openai`` failures, so that reading results does not import the client.)
    """

    def __init__(self, reason: str, *, tokens_in: int = 0, tokens_out: int = 0) -> None:
        super().__init__(reason)
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call, with its arguments parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]
    # Set (and ``arguments`` empty) when the model sent arguments that are not a JSON object and the caller
    # asked to get such calls instead of a ``BadResponse`` (an agent tells the model, which may correct itself).
    malformed: str = ""

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


@dataclass(frozen=True)
class Usage:
    """What one call cost, as metered."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    priced: bool  # False: the model has no known price and ``cost_usd`` is 0
    latency_ms: float
    estimated: bool = False  # True: the server reported no usage and tokens were estimated


@dataclass(frozen=True)
class StructuredResult(Generic[T]):
    """A validated structured answer and the usage of each call it took (a repair turn is a second call)."""

    value: T
    calls: list[Usage]

    @property
    def tokens(self) -> int:
        """Tokens in and out over all the calls."""
        return sum(u.tokens_in + u.tokens_out for u in self.calls)


@dataclass(frozen=True)
class ChatResult:
    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    model: str
    finish_reason: str | None
    request_id: str | None = field(default=None, compare=False)

    def assistant_message(self) -> dict[str, Any]:
        """This answer as the assistant turn to append to the conversation before tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.as_openai() for call in self.tool_calls]
        return message


def tool_message(call: ToolCall | str, content: str | dict | list) -> dict[str, Any]:
    """The result of a tool call, as the message that answers it."""
    call_id = call.id if isinstance(call, ToolCall) else call
    body = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
    return {"role": "tool", "tool_call_id": call_id, "content": body}


def function_tool(name: str, description: str, parameters: dict[str, Any] | type[BaseModel] | None = None) -> dict[str, Any]:
    """A tool definition; ``parameters`` is a JSON schema or a pydantic model of the arguments."""
    if isinstance(parameters, type) and issubclass(parameters, BaseModel):
        schema = parameters.model_json_schema()
    else:
        schema = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


def schema_name(name: str) -> str:
    """A name OpenAI accepts for a function or a response schema (``[A-Za-z0-9_-]{1,64}``)."""
    return _NAME.sub("_", name)[:64] or "result"


def parse_tool_call(call_id: str | None, name: str | None, raw_arguments: str | None, *, lenient: bool = False) -> ToolCall:
    """A tool call from the wire, or ``BadResponse`` when it is incomplete or its arguments are not a JSON object.

    ``lenient``: arguments that are not a JSON object give a call with ``malformed`` set instead.
    """
    if not name:
        raise BadResponse("a tool call has no function name")
    raw = raw_arguments or ""
    problem = ""
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError:
        problem = f"the arguments of tool call {name!r} are not valid JSON: {raw[:120]!r}"
    else:
        if not isinstance(arguments, dict):
            problem = f"the arguments of tool call {name!r} are not a JSON object"
    if problem and not lenient:
        raise BadResponse(problem)
    if problem:
        return ToolCall(id=call_id or f"call_{name}", name=name, arguments={}, malformed=problem)
    return ToolCall(id=call_id or f"call_{name}", name=name, arguments=arguments)
