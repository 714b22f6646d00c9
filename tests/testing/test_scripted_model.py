"""The scripted model server, through the official ``openai`` client."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from cristal.testing import (
    ScriptedModel,
    count_tokens,
    fake_embedding,
    garbage,
    hang,
    http_status,
    json_reply,
    malformed,
    text,
    tool_call,
    tool_calls,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How are you today?"}]


def client(server: ScriptedModel, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="k", **({"max_retries": 0} | kwargs))


def ask(server: ScriptedModel, **kwargs: Any) -> Any:
    return client(server).chat.completions.create(model="m", messages=MESSAGES, **kwargs)


def test_text_reply_with_deterministic_usage() -> None:
    with ScriptedModel([text("Fine, thanks.")]) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        response = ask(server)
    assert response.choices[0].message.content == "Fine, thanks."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "m"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (2 + 4, 2)
    assert count_tokens("How are you today?") == 4


def test_plain_strings_and_dicts_are_replies_too() -> None:
    with ScriptedModel(["just text", {"a": 1}]) as server:
        assert ask(server).choices[0].message.content == "just text"
        assert json.loads(ask(server).choices[0].message.content) == {"a": 1}


def test_tool_call_replies() -> None:
    with ScriptedModel([tool_call("search", {"q": "x"}, id="call_a"), tool_calls(("a", {}), ("b", {"n": 2}))]) as server:
        first = ask(server).choices[0]
        second = ask(server).choices[0]
    assert first.finish_reason == "tool_calls"
    [call] = first.message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_a", "search", {"q": "x"})
    assert [c.function.name for c in second.message.tool_calls] == ["a", "b"]
    assert len({c.id for c in second.message.tool_calls}) == 2


class Answer(BaseModel):
    value: int


def test_json_reply_from_a_pydantic_instance() -> None:
    with ScriptedModel([json_reply(Answer(value=42))]) as server:
        assert Answer.model_validate_json(ask(server).choices[0].message.content) == Answer(value=42)


def test_callable_steps_see_the_request() -> None:
    def echo(request: dict) -> str:
        return "you said: " + request["messages"][-1]["content"]

    with ScriptedModel([echo, lambda request: tool_call("t", {"model": request["model"]})]) as server:
        assert ask(server).choices[0].message.content == "you said: How are you today?"
        assert json.loads(ask(server).choices[0].message.tool_calls[0].function.arguments) == {"model": "m"}


def test_streaming_text_tool_calls_and_final_usage() -> None:
    with ScriptedModel([tool_call("fill", {"element": "E3", "text": "hello"}, content="Let me fill it in.")]) as server:
        chunks = list(ask(server, stream=True, stream_options={"include_usage": True}))
    text_deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(text_deltas) == "Let me fill it in." and len(text_deltas) == 5
    pieces = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].function.name == "fill" and pieces[0].id
    assert json.loads("".join(p.function.arguments for p in pieces)) == {"element": "E3", "text": "hello"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_streaming_usage_only_when_asked_and_allowed() -> None:
    with ScriptedModel([text("a b"), text("c d", usage=False)]) as server:
        assert all(c.usage is None for c in ask(server, stream=True))
        assert all(c.usage is None for c in ask(server, stream=True, stream_options={"include_usage": True}))


def test_embeddings_are_deterministic_in_float_and_base64() -> None:
    with ScriptedModel(dimension=12) as server:
        floats = client(server).embeddings.create(model="e", input=["a", "b c"], encoding_format="float")
        packed = client(server).embeddings.create(model="e", input=["a", "b c"])  # the client's default: base64
    assert floats.data[1].embedding == pytest.approx(fake_embedding("b c", 12))
    assert packed.data[1].embedding == pytest.approx(fake_embedding("b c", 12), abs=1e-6)
    assert floats.usage.prompt_tokens == 3
    assert fake_embedding("x") == fake_embedding("x") != fake_embedding("y")
    assert sum(v * v for v in fake_embedding("x", 64)) == pytest.approx(1.0)


def test_models_are_listed() -> None:
    with ScriptedModel(models=["small", "large"]) as server:
        assert [m.id for m in client(server).models.list()] == ["small", "large"]


def test_http_faults_repeat_then_the_script_goes_on() -> None:
    with ScriptedModel([http_status(429, times=2), text("ok")]) as server:
        with pytest.raises(openai.RateLimitError):
            ask(server)
        assert server.remaining == 2
        retried = client(server, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
        assert retried.choices[0].message.content == "ok"
        assert len(server.chat_requests) == 3


def test_garbage_and_malformed_bodies() -> None:
    with ScriptedModel([garbage(), malformed()]) as server:
        assert isinstance(ask(server), str)  # the client hands back what is not JSON as text
        assert ask(server).choices is None


def test_a_hang_is_a_client_timeout_and_shutdown_is_prompt() -> None:
    with ScriptedModel([hang(60)]) as server:
        port = server.port
        with pytest.raises(openai.APITimeoutError):
            client(server, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES)
    # Leaving the block released the hung handler and closed the socket.
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/v1/models")


def test_an_exhausted_script_says_so_unless_there_is_a_default() -> None:
    with ScriptedModel([text("only one")]) as server:
        ask(server)
        with pytest.raises(openai.BadRequestError, match="script exhausted after 1 chat requests"):
            ask(server)
        server.push(text("pushed"))
        assert ask(server).choices[0].message.content == "pushed"
    with ScriptedModel(default=text("again")) as server:
        assert {ask(server).choices[0].message.content for _ in range(3)} == {"again"}


def test_a_broken_callable_is_reported_not_swallowed() -> None:
    with ScriptedModel([lambda request: 1 / 0]) as server:
        with pytest.raises(openai.BadRequestError, match="ZeroDivisionError"):
            ask(server)


def test_requests_are_recorded_with_headers_and_json() -> None:
    with ScriptedModel([text("a")], api_key="secret") as server:
        with pytest.raises(openai.AuthenticationError):
            ask(server)
        openai.OpenAI(base_url=server.base_url, api_key="secret", max_retries=0).chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"X-Request-ID": "r1"}
        )
    first, second = server.requests
    assert (first.method, first.path, first.headers["authorization"]) == ("POST", "/v1/chat/completions", "Bearer k")
    assert second.headers["x-request-id"] == "r1"
    assert second.messages == MESSAGES and second.json["model"] == "m"
