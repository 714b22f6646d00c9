"""Chat, tools, structured output, streaming and embeddings through the real ``openai`` client."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from cristal.errors import LLMError
from cristal.models import function_tool, tool_message
from cristal.models import gateway as gateway_module
from cristal.testing import (
    ScriptedModel,
    count_tokens,
    fake_embedding,
    json_reply,
    text,
    tool_call,
    tool_calls,
)

USER = [{"role": "user", "content": "What is the expense limit?"}]


def test_chat_text_is_answered_and_metered(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("The limit is 100 dollars.")]) as server:
        result = gateway(server.base_url).chat(people.alice, USER, request_id="req-1")

    assert result.text == "The limit is 100 dollars."
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert result.model == "gpt-4o-mini"
    assert (result.usage.tokens_in, result.usage.tokens_out) == (count_tokens(USER[0]["content"]), 5)
    assert result.usage.priced and not result.usage.estimated

    sent = server.chat_requests[0]
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["messages"] == USER
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.headers["x-request-id"] == "req-1"

    [row] = usage_rows()
    assert (row.kind, row.status, row.model, row.actor) == ("chat", "ok", "gpt-4o-mini", "user:alice@acme.example@acme")
    assert (row.org_id, row.user_id, row.request_id) == (people.alice.org_id, people.alice.user_id, "req-1")
    assert (row.tokens_in, row.tokens_out) == (5, 5)
    assert row.cost_usd == pytest.approx(result.usage.cost_usd)
    assert row.latency_ms > 0


def test_tool_calls_round_trip(gateway, people) -> None:
    search = function_tool("search", "Search the knowledge base.", {"type": "object", "properties": {"query": {"type": "string"}}})
    script = [
        tool_calls(("search", {"query": "expense policy"}), ("search", {"query": "limits"})),
        text("Found it."),
    ]
    with ScriptedModel(script) as server:
        gw = gateway(server.base_url)
        first = gw.chat(people.alice, USER, tools=[search], tool_choice="search")
        assert first.finish_reason == "tool_calls"
        assert [(c.name, c.arguments) for c in first.tool_calls] == [
            ("search", {"query": "expense policy"}),
            ("search", {"query": "limits"}),
        ]
        history = USER + [first.assistant_message()] + [tool_message(c, {"hits": 1}) for c in first.tool_calls]
        second = gw.chat(people.alice, history, tools=[search])

    assert second.text == "Found it."
    request = server.chat_requests[0].json
    assert request["tools"] == [search]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    replayed = server.chat_requests[1].messages
    assert replayed[1]["tool_calls"][0]["function"]["name"] == "search"
    assert [m["tool_call_id"] for m in replayed[2:]] == [c.id for c in first.tool_calls]


class Verdict(BaseModel):
    approved: bool
    reason: str


def test_structured_output_validates_into_the_model(gateway, people) -> None:
    with ScriptedModel([json_reply({"approved": True, "reason": "within policy"})]) as server:
        verdict = gateway(server.base_url).structured(people.alice, USER, Verdict)

    assert verdict == Verdict(approved=True, reason="within policy")
    response_format = server.chat_requests[0].json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Verdict"
    assert response_format["json_schema"]["schema"]["required"] == ["approved", "reason"]


def test_structured_output_gets_one_repair_turn(gateway, people, usage_rows) -> None:
    script = [text("Sure! approved"), text('```json\n{"approved": false, "reason": "over limit"}\n```')]
    with ScriptedModel(script) as server:
        verdict = gateway(server.base_url).structured(people.alice, USER, Verdict)

    assert verdict.approved is False
    repair = server.chat_requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": "Sure! approved"}
    assert "not valid" in repair[-1]["content"]
    assert [r.status for r in usage_rows()] == ["ok", "ok"]


def test_structured_result_returns_the_usage_of_every_call(gateway, people, usage_rows) -> None:
    # Callers that keep a token budget (research) read the cost from the answer, not from the llm_usage table.
    script = [text("Sure! approved"), json_reply({"approved": True, "reason": "ok"})]
    with ScriptedModel(script) as server:
        answer = gateway(server.base_url).structured_result(people.alice, USER, Verdict, request_id="req-9")

    assert answer.value == Verdict(approved=True, reason="ok")
    rows = usage_rows()
    assert [(u.tokens_in, u.tokens_out) for u in answer.calls] == [(r.tokens_in, r.tokens_out) for r in rows]
    assert len(answer.calls) == 2 and answer.tokens == sum(r.tokens_in + r.tokens_out for r in rows) > 0


def test_structured_output_gives_up_after_the_repair(gateway, people) -> None:
    with ScriptedModel([json_reply({"approved": "maybe"}), json_reply({"approved": "maybe"})]) as server:
        with pytest.raises(LLMError, match=r"did not answer valid JSON for Verdict after 2 attempts: approved"):
            gateway(server.base_url).structured(people.alice, USER, Verdict)


def test_structured_output_with_a_json_schema(gateway, people) -> None:
    schema = {"title": "Tags", "type": "object", "properties": {"tags": {"type": "array"}}}
    with ScriptedModel([json_reply({"tags": ["a", "b"]})]) as server:
        value = gateway(server.base_url).structured(people.alice, USER, schema)
    assert value == {"tags": ["a", "b"]}
    assert server.chat_requests[0].json["response_format"]["json_schema"]["name"] == "Tags"


def test_streaming_yields_deltas_and_meters_at_the_end(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("Expenses over one hundred need approval.")]) as server:
        stream = gateway(server.base_url).chat_stream(people.alice, USER)
        assert usage_rows() == []  # nothing is metered before the answer is read
        deltas = list(stream)

    assert len(deltas) > 1
    assert "".join(deltas) == "Expenses over one hundred need approval."
    assert stream.result is not None and stream.result.text == "".join(deltas)
    assert (stream.result.usage.tokens_in, stream.result.usage.tokens_out) == (5, 6)
    assert not stream.result.usage.estimated
    assert server.chat_requests[0].json["stream_options"] == {"include_usage": True}
    [row] = usage_rows()
    assert (row.status, row.tokens_out) == ("ok", 6)


def test_streaming_assembles_tool_calls(gateway, people) -> None:
    with ScriptedModel([tool_call("fill", {"element": "E7", "text": "Ada Lovelace"}, content="Filling in.")]) as server:
        stream = gateway(server.base_url).chat_stream(people.alice, USER)
        assert stream.text() == "Filling in."
    [call] = stream.result.tool_calls
    assert (call.name, call.arguments) == ("fill", {"element": "E7", "text": "Ada Lovelace"})
    assert stream.result.finish_reason == "tool_calls"


def test_streaming_estimates_usage_when_the_server_sends_none(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("twelve chars", usage=False)]) as server:
        stream = gateway(server.base_url).chat_stream(people.alice, USER)
        list(stream)
    assert stream.result.usage.estimated
    assert stream.result.usage.tokens_out == 3  # 12 characters, about four a token
    assert usage_rows()[0].tokens_in > 0


def test_an_abandoned_stream_is_still_metered(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("one two three four five six")]) as server:
        stream = gateway(server.base_url).chat_stream(people.alice, USER)
        for _delta in stream:
            break
    [row] = usage_rows()
    assert row.status == "ok"
    assert "closed by the caller" in row.error
    assert stream.result is None


def assert_vectors(got: list[list[float]], expected: list[list[float]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e)


def test_embeddings_are_ordered_vectors_and_metered(gateway, people, usage_rows) -> None:
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    with ScriptedModel(dimension=16) as server:
        vectors = gateway(server.base_url).embed(people.alice, texts)

    assert_vectors(vectors, [fake_embedding(t, 16) for t in texts])
    assert server.embedding_requests[0].json["model"] == "text-embedding-3-small"
    [row] = usage_rows()
    assert (row.kind, row.model, row.tokens_in, row.tokens_out) == ("embedding", "text-embedding-3-small", 6, 0)
    assert row.cost_usd == pytest.approx(6 * 0.02 / 1_000_000)


def test_embeddings_are_sent_in_batches(gateway, people, usage_rows, monkeypatch) -> None:
    monkeypatch.setattr(gateway_module, "EMBED_BATCH", 2)
    texts = [f"text {n}" for n in range(5)]
    with ScriptedModel() as server:
        vectors = gateway(server.base_url).embed(people.alice, texts)
    assert_vectors(vectors, [fake_embedding(t) for t in texts])
    assert [len(r.json["input"]) for r in server.embedding_requests] == [2, 2, 1]
    assert len(usage_rows()) == 3


def test_no_texts_means_no_call(gateway, people, usage_rows) -> None:
    assert gateway("http://127.0.0.1:9/v1").embed(people.alice, []) == []
    assert usage_rows() == []


def test_embedding_model_must_be_configured(gateway, people) -> None:
    with pytest.raises(LLMError, match="CRISTAL_LLM_EMBEDDING_MODEL"):
        gateway("http://127.0.0.1:9/v1", llm_embedding_model=None).embed(people.alice, ["x"])


def test_per_call_model_override(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("ok")]) as server:
        result = gateway(server.base_url).chat(people.alice, USER, model="my-local-llama", temperature=0.2)
    assert server.chat_requests[0].json["model"] == "my-local-llama"
    assert server.chat_requests[0].json["temperature"] == 0.2
    assert not result.usage.priced and result.usage.cost_usd == 0
    assert usage_rows()[0].model == "my-local-llama"
