"""Cost, budgets, the usage summary, and who may call and see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from cristal.audit.log import query_audit
from cristal.db.schema import LLMUsage
from cristal.errors import AccessDenied, BudgetExceeded, InvalidInput, LLMError
from cristal.identity import orgs
from cristal.identity.principal import Principal
from cristal.models import PriceTable, usage_summary
from cristal.models.metering import month_start
from cristal.testing import ScriptedModel, http_status, text

INSTALLATION = Principal.installation("test-operator")

USER = [{"role": "user", "content": "one two three four"}]


def set_budget(db, slug: str, usd: float) -> None:
    with db.session() as s:
        orgs.configure_llm(s, INSTALLATION, slug, monthly_budget_usd=usd)


def test_cost_comes_from_the_price_table(gateway, people, usage_rows) -> None:
    words = " ".join(["word"] * 1000)
    with ScriptedModel([text(words)]) as server:
        result = gateway(server.base_url, llm_model="gpt-4o-mini-2024-07-18").chat(people.alice, USER)
    expected = (4 * 0.15 + 1000 * 0.60) / 1_000_000
    assert result.usage.cost_usd == pytest.approx(expected)
    assert usage_rows()[0].cost_usd == pytest.approx(expected)


def test_settings_prices_override_and_extend_the_table(gateway, people) -> None:
    prices = {"house-model": {"input_per_million": 1000, "output_per_million": 2000}}
    with ScriptedModel([text("a b")]) as server:
        result = gateway(server.base_url, llm_model="house-model-v2", prices=prices).chat(people.alice, USER)
    assert result.usage.priced
    assert result.usage.cost_usd == pytest.approx((4 * 1000 + 2 * 2000) / 1_000_000)


def test_budget_is_checked_before_the_call(gateway, people, db, usage_rows) -> None:
    set_budget(db, "acme", 0.0005)
    words = " ".join(["word"] * 1000)  # 1000 output tokens of gpt-4o-mini: $0.0006
    with ScriptedModel([text(words), text("never sent")]) as server:
        gw = gateway(server.base_url)
        gw.chat(people.alice, USER)  # under budget when it starts; overshoots it
        with pytest.raises(BudgetExceeded) as exc:
            gw.chat(people.boss, USER)
    message = str(exc.value)
    assert "\n" not in message
    assert "'acme' has used its monthly LLM budget ($0.0006 of $0.00 this month)" in message
    assert len(server.chat_requests) == 1
    refused = usage_rows()[1]
    assert (refused.status, refused.actor, refused.model, refused.cost_usd) == (
        "refused", "user:boss@acme.example@acme", "gpt-4o-mini", 0.0,
    )
    assert refused.error == message


def test_a_zero_budget_refuses_everything_and_other_orgs_are_unaffected(gateway, people, db, usage_rows) -> None:
    set_budget(db, "acme", 0)
    with ScriptedModel([text("for globex")]) as server:
        gw = gateway(server.base_url)
        with pytest.raises(BudgetExceeded):
            gw.embed(people.alice, ["x"])
        assert gw.chat(people.carol, USER).text == "for globex"
    assert [(r.org_id, r.status) for r in usage_rows()] == [(people.alice.org_id, "refused"), (people.carol.org_id, "ok")]


def test_last_months_spend_does_not_count(gateway, people, db) -> None:
    set_budget(db, "acme", 0.0001)
    with ScriptedModel([text(" ".join(["w"] * 1000)), text("new month")]) as server:
        gw = gateway(server.base_url)
        gw.chat(people.alice, USER)
        with db.session() as s:
            s.execute(update(LLMUsage).values(at=month_start() - timedelta(days=1)))
        assert gw.chat(people.alice, USER).text == "new month"


def test_usage_summary_per_model_and_user(gateway, people, db) -> None:
    set_budget(db, "acme", 10)
    script = [text("a b c"), text("d e"), http_status(400), text("f"), text("g")]
    with ScriptedModel(script) as server:
        gw = gateway(server.base_url)
        gw.chat(people.alice, USER)
        gw.chat(people.alice, USER, model="local-llama")
        with pytest.raises(LLMError):
            gw.chat(people.boss, USER)
        gw.chat(people.boss, USER)
        gw.embed(people.alice, ["x y"])
        gw.chat(people.carol, USER)  # another organization: not in acme's summary
    with db.session() as s:
        summary = usage_summary(s, people.boss, "acme", prices=PriceTable())

    assert summary.org == "acme" and summary.budget_usd == 10
    assert summary.month == month_start().strftime("%Y-%m")
    assert (summary.total.calls, summary.total.errors) == (5, 1)
    by_model = {line.key: line for line in summary.by_model}
    assert set(by_model) == {"gpt-4o-mini", "local-llama", "text-embedding-3-small"}
    mini = by_model["gpt-4o-mini"]
    assert (mini.calls, mini.errors, mini.tokens_in, mini.tokens_out) == (3, 1, 8, 4)
    assert 0 < mini.p50_ms <= mini.p95_ms
    by_user = {line.key: line for line in summary.by_user}
    assert by_user["user:alice@acme.example@acme"].calls == 3
    assert by_user["user:boss@acme.example@acme"].errors == 1
    assert summary.unpriced_models == ["local-llama"]
    assert summary.spend_usd == pytest.approx(sum(line.cost_usd for line in summary.by_model))
    document = summary.as_dict()
    assert document["total"]["calls"] == 5 and document["by_user"][0]["user"].startswith("user:")


def test_usage_summary_is_for_admins_of_the_organization(people, db) -> None:
    with db.session() as s:
        assert usage_summary(s, INSTALLATION, "acme").total.calls == 0  # the operator manages the installation
        assert usage_summary(s, people.boss, "acme").org == "acme"
    with db.session() as s, pytest.raises(AccessDenied, match="requires the admin role"):
        usage_summary(s, people.alice, "acme")
    with db.session() as s, pytest.raises(AccessDenied, match="another organization"):
        usage_summary(s, people.gadmin, "acme")
    with db.session() as s:
        denials = query_audit(s, "acme", action="usage.read", decision="deny")
    assert {d.actor for d in denials} == {"user:alice@acme.example@acme", "user:admin@globex.example@globex"}


def test_usage_summary_of_a_past_month(people, db) -> None:
    with db.session() as s:
        assert usage_summary(s, people.boss, "acme", month="2020-12").month == "2020-12"
        with pytest.raises(InvalidInput, match="YYYY-MM"):
            usage_summary(s, people.boss, "acme", month="December")


def test_calls_are_audited_and_metered_in_the_callers_organization(gateway, people, db, usage_rows) -> None:
    with ScriptedModel([text("a"), text("b")]) as server:
        gw = gateway(server.base_url)
        gw.chat(people.alice, USER, request_id="r-a")
        gw.chat(people.carol, USER, request_id="r-c")
    assert [(r.org_id, r.request_id) for r in usage_rows()] == [(people.alice.org_id, "r-a"), (people.carol.org_id, "r-c")]
    with db.session() as s:
        [acme_call] = query_audit(s, "acme", action="llm.call")
        assert (acme_call.actor, acme_call.resource, acme_call.request_id) == ("user:alice@acme.example@acme", "llm:gpt-4o-mini", "r-a")
        assert [c.request_id for c in query_audit(s, "globex", action="llm.call")] == ["r-c"]
        assert s.scalar(select(LLMUsage.id).where(LLMUsage.org_id == people.carol.org_id, LLMUsage.actor.like("%acme%"))) is None


def test_the_operator_cannot_call_models(gateway, people, usage_rows) -> None:
    with ScriptedModel([text("never")]) as server:
        with pytest.raises(AccessDenied, match="installation principal cannot read company data"):
            gateway(server.base_url).chat(INSTALLATION, USER)
    assert server.requests == [] and usage_rows() == []
