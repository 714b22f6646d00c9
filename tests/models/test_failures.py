"""What goes wrong at the endpoint becomes one-line ``LLMError`` and an ``error`` usage row."""

from __future__ import annotations

import socket

import pytest

from cristal.errors import LLMError
from cristal.testing import ScriptedModel, garbage, hang, http_status, malformed, text, tool_call

USER = [{"role": "user", "content": "hello"}]


def one_line(exc: pytest.ExceptionInfo[LLMError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_rate_limit_is_retried_then_succeeds(gateway, people, usage_rows) -> None:
    with ScriptedModel([http_status(429, times=2), text("finally")]) as server:
        result = gateway(server.base_url, llm_max_retries=2).chat(people.alice, USER)
    assert result.text == "finally"
    assert len(server.chat_requests) == 3
    assert [r.status for r in usage_rows()] == ["ok"]


def test_server_errors_are_retried_too(gateway, people) -> None:
    with ScriptedModel([http_status(500), http_status(503), text("up again")]) as server:
        assert gateway(server.base_url, llm_max_retries=3).chat(people.alice, USER).text == "up again"


def test_rate_limit_beyond_the_retries_is_an_llm_error(gateway, people, usage_rows) -> None:
    with ScriptedModel([http_status(429, times=3, message="slow down")]) as server:
        with pytest.raises(LLMError) as exc:
            gateway(server.base_url, llm_max_retries=2).chat(people.alice, USER)
    message = one_line(exc)
    assert "HTTP 429" in message and "after 2 retries" in message and "slow down" in message
    assert server.remaining == 0
    [row] = usage_rows()
    assert row.status == "error" and "HTTP 429" in row.error


def test_client_errors_are_not_retried(gateway, people) -> None:
    with ScriptedModel([http_status(400, message="bad tool schema"), text("unused")]) as server:
        with pytest.raises(LLMError, match="HTTP 400 for gpt-4o-mini: bad tool schema"):
            gateway(server.base_url).chat(people.alice, USER)
    assert server.remaining == 1


def test_a_wrong_key_says_so(gateway, people) -> None:
    with ScriptedModel([text("unused")], api_key="right") as server:
        with pytest.raises(LLMError, match=r"HTTP 401.*check the API key"):
            gateway(server.base_url, llm_api_key="wrong").chat(people.alice, USER)


def test_garbage_is_an_llm_error(gateway, people, usage_rows) -> None:
    with ScriptedModel([garbage()]) as server:
        with pytest.raises(LLMError) as exc:
            gateway(server.base_url).chat(people.alice, USER)
    assert "unusable answer" in one_line(exc) and "not a JSON chat completion" in str(exc.value)
    assert usage_rows()[0].status == "error"


def test_json_without_choices_is_an_llm_error(gateway, people) -> None:
    with ScriptedModel([malformed()]) as server:
        with pytest.raises(LLMError, match="no choice with a message"):
            gateway(server.base_url).chat(people.alice, USER)


def test_tool_arguments_that_are_not_json_are_an_llm_error(gateway, people, usage_rows) -> None:
    with ScriptedModel([tool_call("search", '{"query": "unterminated')]) as server:
        with pytest.raises(LLMError, match="arguments of tool call 'search' are not valid JSON"):
            gateway(server.base_url).chat(people.alice, USER)
    [row] = usage_rows()
    assert row.status == "error" and row.tokens_out > 0  # the answer was paid for


def test_a_call_of_a_tool_kind_never_offered_is_an_llm_error(gateway, people, usage_rows) -> None:
    completion = {
        "id": "chatcmpl-custom", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "custom", "custom": {"name": "grep", "input": "x"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    with ScriptedModel([malformed(document=completion)]) as server:
        with pytest.raises(LLMError, match="a tool call has no function name"):
            gateway(server.base_url).chat(people.alice, USER)
    [row] = usage_rows()
    assert row.status == "error" and row.tokens_out == 2  # the answer was paid for


def test_a_hang_times_out_as_an_llm_error(gateway, people, usage_rows) -> None:
    with ScriptedModel([hang(30)]) as server:
        with pytest.raises(LLMError) as exc:
            gateway(server.base_url, llm_timeout_seconds=0.2, llm_max_retries=0).chat(people.alice, USER)
    assert "did not answer within 0.2s" in one_line(exc)
    assert usage_rows()[0].status == "error"


def test_an_unreachable_endpoint_is_an_llm_error(gateway, people) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMError) as exc:
        gateway(f"http://127.0.0.1:{port}/v1", llm_max_retries=0).chat(people.alice, USER)
    assert one_line(exc).startswith(f"cannot reach model endpoint http://127.0.0.1:{port}/v1")


def test_stream_garbage_is_an_llm_error(gateway, people, usage_rows) -> None:
    with ScriptedModel([garbage()]) as server:
        stream = gateway(server.base_url).chat_stream(people.alice, USER)
        with pytest.raises(LLMError, match="stream ended without a finish reason"):
            list(stream)
    assert [r.status for r in usage_rows()] == ["error"]


def test_stream_http_errors_raise_before_iteration(gateway, people, usage_rows) -> None:
    with ScriptedModel([http_status(500, times=3)]) as server:
        with pytest.raises(LLMError, match="HTTP 500"):
            gateway(server.base_url, llm_max_retries=2).chat_stream(people.alice, USER)
    assert [r.status for r in usage_rows()] == ["error"]


def test_no_endpoint_names_the_variables_to_set(gateway, people, usage_rows) -> None:
    with pytest.raises(LLMError) as exc:
        gateway(None).chat(people.alice, USER)
    message = one_line(exc)
    for name in ("CRISTAL_LLM_BASE_URL", "CRISTAL_LLM_API_KEY", "OPENAI_API_KEY", "CRISTAL_LLM_MODEL", "cristal org llm"):
        assert name in message
    assert usage_rows() == []


def test_no_model_says_which_variable_to_set(gateway, people) -> None:
    with pytest.raises(LLMError, match="no LLM model configured: set CRISTAL_LLM_MODEL"):
        gateway("http://127.0.0.1:9/v1", llm_model=None).chat(people.alice, USER)
