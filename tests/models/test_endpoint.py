"""Per-organization endpoints, keys and models, and the price table's lookup."""

from __future__ import annotations

import pytest

from cristal.errors import LLMError
from cristal.identity import orgs
from cristal.identity.principal import Principal
from cristal.models import PriceTable
from cristal.testing import ScriptedModel, text

INSTALLATION = Principal.installation("test-operator")

USER = [{"role": "user", "content": "hi"}]


def configure(db, slug: str, **changes) -> None:
    with db.session() as s:
        orgs.configure_llm(s, INSTALLATION, slug, **changes)


def test_an_organization_can_use_its_own_endpoint_key_and_model(gateway, people, db, monkeypatch, usage_rows) -> None:
    monkeypatch.setenv("CRISTAL_ORG_KEY_ACME", "acme-secret")
    with ScriptedModel([text("from the default")]) as default, ScriptedModel([text("from acme's")]) as own:
        configure(db, "acme", base_url=own.base_url, model="acme-model", api_key_env="CRISTAL_ORG_KEY_ACME")
        gw = gateway(default.base_url)
        assert gw.chat(people.alice, USER).text == "from acme's"
        assert gw.chat(people.carol, USER).text == "from the default"

    [acme_request] = own.chat_requests
    assert acme_request.headers["authorization"] == "Bearer acme-secret"
    assert acme_request.json["model"] == "acme-model"
    [globex_request] = default.chat_requests
    assert (globex_request.headers["authorization"], globex_request.json["model"]) == ("Bearer test-key", "gpt-4o-mini")
    assert [r.model for r in usage_rows()] == ["acme-model", "gpt-4o-mini"]


def test_the_installation_key_never_goes_to_an_organizations_own_url(gateway, people, db) -> None:
    with ScriptedModel([text("ok")]) as own:
        configure(db, "acme", base_url=own.base_url)
        gateway("http://127.0.0.1:9/v1").chat(people.alice, USER)
    assert own.chat_requests[0].headers["authorization"] != "Bearer test-key"


def test_a_missing_organization_key_variable_is_named(gateway, people, db) -> None:
    configure(db, "acme", base_url="http://127.0.0.1:9/v1", api_key_env="CRISTAL_ORG_KEY_UNSET")
    with pytest.raises(LLMError, match=r"organization 'acme' takes its LLM key from \$CRISTAL_ORG_KEY_UNSET, which is not set"):
        gateway(None).chat(people.alice, USER)


def test_an_organization_endpoint_works_without_a_process_endpoint(gateway, people, db) -> None:
    with ScriptedModel([text("only acme is configured")]) as own:
        configure(db, "acme", base_url=own.base_url, model="m")
        gw = gateway(None, llm_model=None)
        assert gw.chat(people.alice, USER).text == "only acme is configured"
        with pytest.raises(LLMError, match="no LLM endpoint configured"):
            gw.chat(people.carol, USER)


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4.1-nano", "gpt-4.1-nano"),
        ("text-embedding-3-large", "text-embedding-3-large"),
    ],
)
def test_prices_match_the_longest_prefix(model: str, prefix: str) -> None:
    table = PriceTable()
    assert table.lookup(model) == table.lookup(prefix) is not None
    assert table.cost(model, 1_000_000, 0).usd == table.lookup(prefix).input_per_million


def test_unknown_models_cost_nothing_and_say_so() -> None:
    cost = PriceTable().cost("llama3:8b", 1000, 1000)
    assert (cost.usd, cost.priced) == (0.0, False)
