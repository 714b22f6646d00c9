"""Test doubles shipped with Cristal, for its own tests, benchmarks and anyone building on it.

``ScriptedModel`` is a real OpenAI-compatible HTTP server on loopback that
answers from a script, so code under test talks to it through the official
``openai`` client exactly as it would to a production endpoint.
"""

from cristal.testing.scripted_model import (
    Fault,
    RecordedRequest,
    Reply,
    ScriptedModel,
    ToolCallSpec,
    completion_tokens,
    count_tokens,
    fake_embedding,
    garbage,
    hang,
    http_status,
    json_reply,
    malformed,
    prompt_tokens,
    text,
    tool_call,
    tool_calls,
)

__all__ = [
    "Fault",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "ToolCallSpec",
    "completion_tokens",
    "count_tokens",
    "fake_embedding",
    "garbage",
    "hang",
    "http_status",
    "json_reply",
    "malformed",
    "prompt_tokens",
    "text",
    "tool_call",
    "tool_calls",
]
