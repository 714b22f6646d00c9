"""The OpenAI-compatible API, driven by the real ``openai`` client, with a scripted model server upstream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest
from sqlalchemy import select

from cristal.config import Settings
from cristal.db.schema import AuditRecord, LLMUsage
from cristal.identity import orgs
from cristal.testing.scripted_model import ScriptedModel, count_tokens, http_status, prompt_tokens, text, tool_call
from tests.server.conftest import INSTALLATION, Company, LiveServer, error_of, person

PROVIDER_KEY = "sk-provider-secret-never-shown"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello to the team"}]


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(models=("scripted",), api_key=PROVIDER_KEY) as m:
        yield m


@pytest.fixture
def settings(company: Company, model: ScriptedModel) -> Settings:
    return Settings(home=company.home, llm_base_url=model.base_url, llm_model="scripted", llm_api_key=PROVIDER_KEY,
                    llm_timeout_seconds=5, llm_max_retries=0)


def oai(live: LiveServer, company: Company, email: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=company.key(email), max_retries=0, timeout=30)


def usage_rows(company: Company) -> list[LLMUsage]:
    with company.db.session() as s:
        return list(s.scalars(select(LLMUsage).order_by(LLMUsage.id)))


def test_chat_through_the_gateway_is_metered_as_the_caller(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    model.push(text("Hello team, have a good day"))
    reply = oai(live, company, person("eng", "acme")).chat.completions.create(model="scripted", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello team, have a good day"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_tokens(MESSAGES), 6)
    # The upstream saw the provider's key and the conversation, never the employee's Cristal key.
    upstream = model.chat_requests[-1]
    assert upstream.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert upstream.json["messages"] == MESSAGES
    assert company.key(person("eng", "acme")) not in upstream.body.decode()
    rows = usage_rows(company)
    assert len(rows) == 1
    row = rows[0]
    assert (row.status, row.model, row.tokens_in, row.tokens_out) == ("ok", "scripted", prompt_tokens(MESSAGES), 6)
    assert row.actor.startswith("user:eng@acme.example")
    with company.db.session() as s:
        audit = s.scalar(select(AuditRecord).where(AuditRecord.action == "llm.call"))
    assert audit is not None and audit.decision == "allow" and audit.org_slug == "acme"
    assert audit.request_id == row.request_id == reply.id.removeprefix("chatcmpl-")


def test_streaming_chat_arrives_in_pieces_and_is_metered(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    answer = "Streaming works word by word over SSE"
    model.push(text(answer))
    client = oai(live, company, person("fin", "globex"))
    stream = client.chat.completions.create(model="scripted", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    deltas, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(deltas) == answer
    assert len([d for d in deltas if d]) > 1  # really streamed, not one block
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == count_tokens(answer)
    upstream = model.chat_requests[-1].json
    assert upstream["stream"] is True
    rows = usage_rows(company)
    assert [(r.status, r.tokens_out) for r in rows] == [("ok", count_tokens(answer))]
    assert rows[0].actor.startswith("user:fin@globex.example")


def test_tool_calls_pass_through_plain_and_streamed(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up",
                                               "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    model.push(tool_call("lookup", {"q": "hotel cap"}), tool_call("lookup", {"q": "per diem"}))
    client = oai(live, company, person("eng", "acme"))
    reply = client.chat.completions.create(model="scripted", messages=MESSAGES, tools=tools)
    call = reply.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments, reply.choices[0].finish_reason) == ("lookup", '{"q": "hotel cap"}', "tool_calls")
    assert model.chat_requests[-1].json["tools"] == tools
    names, args, finish = [], "", None
    for chunk in client.chat.completions.create(model="scripted", messages=MESSAGES, tools=tools, stream=True):
        if chunk.choices:
            for piece in chunk.choices[0].delta.tool_calls or []:
                names.append(piece.function.name)
                args += piece.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
    assert names == ["lookup"] and args == '{"q": "per diem"}' and finish == "tool_calls"


def test_models_lists_what_the_organization_offers(live: LiveServer, company: Company) -> None:
    listed = oai(live, company, person("eng", "acme")).models.list()
    assert [m.id for m in listed.data] == ["scripted"]


def test_refusals_are_openai_errors(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    client = oai(live, company, person("eng", "acme"))
    with pytest.raises(openai.NotFoundError, match="not offered"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.url + "/v1", api_key="cri_nope_nope", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="scripted", messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="scripted", messages=[])
    # The upstream failing is a 502 with Cristal's one-line message; the failed call is metered.
    model.push(http_status(500, message="upstream exploded"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="scripted", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert PROVIDER_KEY not in str(caught.value.body)
    assert [r.status for r in usage_rows(company)] == ["error"]
    assert not model.remaining


def test_over_budget_is_429_and_other_orgs_are_unaffected(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    with company.db.session() as s:
        orgs.configure_llm(s, INSTALLATION, "acme", monthly_budget_usd=0)
    with pytest.raises(openai.RateLimitError, match="budget"):
        oai(live, company, person("eng", "acme")).chat.completions.create(model="scripted", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError, match="budget"):
        oai(live, company, person("eng", "acme")).chat.completions.create(model="scripted", messages=MESSAGES, stream=True)
    assert model.chat_requests == []  # refused before anything went upstream
    model.push(text("fine"))
    reply = oai(live, company, person("eng", "globex")).chat.completions.create(model="scripted", messages=MESSAGES)
    assert reply.choices[0].message.content == "fine"
    assert [(r.status, r.org_id) for r in usage_rows(company)][-1][0] == "ok"
    assert [r.status for r in usage_rows(company)][:2] == ["refused", "refused"]


def test_no_model_configured_is_a_clear_error(live: LiveServer, company: Company) -> None:
    with company.db.session() as s:
        orgs.configure_llm(s, INSTALLATION, "acme", base_url="http://127.0.0.1:9/v1", model="other",
                           api_key_env="CRISTAL_ORG_KEY_ACME")
    r = httpx.post(live.url + "/v1/chat/completions", json={"model": "other", "messages": MESSAGES},
                   headers={"Authorization": f"Bearer {company.key(person('eng', 'acme'))}"})
    assert r.status_code == 502
    assert "CRISTAL_ORG_KEY_ACME" in error_of(r)["message"]


def test_a_stream_the_client_abandons_is_still_metered(live: LiveServer, company: Company, model: ScriptedModel) -> None:
    from tests.server.conftest import wait_for

    model.push(text(" ".join(f"word{i}" for i in range(400))))
    headers = {"Authorization": f"Bearer {company.key(person('eng', 'acme'))}"}
    body = {"model": "scripted", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        first = next(r.iter_lines())
        assert first.startswith("data: {")
    rows = wait_for(lambda: usage_rows(company), what="the abandoned stream's usage row")
    assert len(rows) == 1 and rows[0].status == "ok" and rows[0].tokens_in > 0
    # Usually the server notices the gone client mid-answer and meters what it had (tokens then estimated);
    # on a slow machine it may have finished the answer first, and then the usage is the upstream's own.
    assert rows[0].error in (None, "stream closed by the caller before its end")
