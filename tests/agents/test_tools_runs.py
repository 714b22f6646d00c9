"""The tools that reach systems: sql limited to named queries, run_workflow (a deployed workflow started as the
caller, stopping at its approval) and what the organization allows (model, tool kinds, Operator domains), through
a scripted model on loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cristal.actions.registry import build_registry
from cristal.agents import store
from cristal.agents.definition import load_agent_text
from cristal.agents.runtime import AgentConfig, ToolConfig, TurnContext, run_turn
from cristal.agents.tools import build_tools
from cristal.config import Settings
from cristal.db import Database
from cristal.db.schema import Organization
from cristal.errors import InvalidInput
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.testing.scripted_model import ScriptedModel, text, tool_call
from cristal.workflows import deployments
from cristal.workflows.schema import WorkflowRun
from cristal.workflows.spec import load_workflow_text
from tests.research.company import FINANCE, MEMBER

INSTALLATION = Principal.installation("test")
QUERIES = {"mine": "select id, amount from expenses where owner = :email order by id",
           "over": "select id from expenses where amount > :min and owner = :email"}
SIGN_OFF = """
name: sign-off
inputs:
  amount: null
steps:
  - id: ok
    approval: {approvers: ["group:finance"], message: "Approve {{ inputs.amount }} EUR?"}
"""


def settings_for(model: ScriptedModel, home: Path, **kw: Any) -> Settings:
    return Settings(home=home, llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted",
                    llm_timeout_seconds=5.0, llm_max_retries=0, agent_run_wait_seconds=0.2, **kw)


def results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


@pytest.fixture
def erp(rdb: Database, tmp_path: Path) -> Database:
    path = tmp_path / "erp.db"
    with sqlite3.connect(path) as c:
        c.execute("create table expenses (id integer primary key, owner text, amount real)")
        c.executemany("insert into expenses (owner, amount) values (?, ?)",
                      [(FINANCE, 120.0), (FINANCE, 80.0), (MEMBER, 300.0)])
    with rdb.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "erp", "sql", f"sqlite:///{path}", acl=["group:finance"])
    return rdb


def turn(db: Database, who: Any, settings: Settings, cfg: AgentConfig, message: str, conversation: str = "c1") -> Any:
    return run_turn(TurnContext(db=db, settings=settings, principal=who, conversation_id=conversation), cfg, [], message)


def analyst(*tools: ToolConfig, **kw: Any) -> AgentConfig:
    return AgentConfig(slug="analyst", version=1, instructions="Answer from the ERP.", tools=tools, **kw)


def test_named_queries_only_with_their_parameters_read_only_as_the_caller(erp, who, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    sql = ToolConfig("sql", {"source": "erp", "queries": QUERIES})
    script = [tool_call("sql", {"query": "select * from expenses"}),  # its own SQL: not one of the named queries
              tool_call("sql", {"query": "over", "params": {"min": 100}}),  # a parameter missing
              tool_call("sql", {"query": "mine", "params": {"email": FINANCE, "x": 1}}),  # one too many
              tool_call("sql", {"query": "mine", "params": {"email": FINANCE}}),
              text("You have two expenses.")]
    with ScriptedModel(script) as model:
        result = turn(erp, who(FINANCE), settings_for(model, tmp_path), analyst(sql), "my expenses?")
        offered = model.chat_requests[0].json["tools"][0]["function"]
        last = model.chat_requests[-1].json
    assert offered["parameters"]["properties"]["query"]["enum"] == ["mine", "over"]
    assert "mine(email)" in offered["description"] and "over(min, email)" in offered["description"]
    assert [c.status for c in result.tool_calls] == ["error", "error", "error", "ok"]
    assert "must be one of mine, over" in result.tool_calls[0].message
    assert "missing 'email'" in result.tool_calls[1].message and "unknown 'x'" in result.tool_calls[2].message
    assert results(last)[-1]["output"] == [{"id": 1, "amount": 120.0}, {"id": 2, "amount": 80.0}]

    # Someone outside finance runs the same named query: the source's access list refuses it.
    with ScriptedModel([tool_call("sql", {"query": "mine", "params": {"email": MEMBER}}), text("no")]) as model:
        result = turn(erp, who(MEMBER), settings_for(model, tmp_path), analyst(sql), "mine?")
    assert [c.status for c in result.tool_calls] == ["refused"]


def test_run_workflow_starts_the_deployed_workflow_as_the_caller(erp, who, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    deployments.deploy(erp, load_workflow_text(SIGN_OFF, origin="sign-off.yaml"), "acme", "admin@acme.example")
    cfg = analyst(ToolConfig("run_workflow", {"workflow": "sign-off"}))
    call = tool_call("run_workflow", {"inputs": {"amount": 120}})
    with ScriptedModel([call, call, text("Started.")]) as model:
        result = turn(erp, who(MEMBER), settings_for(model, tmp_path), cfg, "file my 120 EUR claim")
        offered = model.chat_requests[0].json["tools"][0]["function"]
        outputs = [r.get("output", r) for r in results(model.chat_requests[-1].json)]
    assert "sign-off" in offered["description"] and set(offered["parameters"]["properties"]) == {"inputs"}
    # No worker runs here: the run is queued, and each call of the turn starts its own (its own idempotency key).
    assert [c.status for c in result.tool_calls] == ["ok", "ok"], [c.message for c in result.tool_calls]
    assert outputs[0]["status"] == "queued" and outputs[0]["workflow"] == "sign-off" and "cristal worker" in outputs[0]["note"]
    with erp.session() as s:
        runs = {r.id: r for r in s.scalars(select(WorkflowRun))}
    assert {o["run_id"] for o in outputs} <= set(runs) and outputs[0]["run_id"] != outputs[1]["run_id"]
    assert {runs[o["run_id"]].owner_email for o in outputs} == {MEMBER}
    assert runs[outputs[0]["run_id"]].inputs == {"amount": 120}

    # The model cannot name another workflow, nor give unknown arguments.
    with ScriptedModel([tool_call("run_workflow", {"workflow": "other"}), text("no")]) as model:
        result = turn(erp, who(MEMBER), settings_for(model, tmp_path), cfg, "x", conversation="c2")
    assert result.tool_calls[0].status == "error" and "set by the agent's definition" in result.tool_calls[0].message


def test_a_run_stopped_at_its_approval_is_needs_approval_with_the_id(erp, who, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    import cristal.workflows.engine  # noqa: F401 - registers the workflow DBOS runs, before launching
    from cristal.durable.runtime import launch, shutdown

    deployments.deploy(erp, load_workflow_text(SIGN_OFF, origin="sign-off.yaml"), "acme", "admin@acme.example")
    cfg = analyst(ToolConfig("run_workflow", {"workflow": "sign-off"}))
    with ScriptedModel([tool_call("run_workflow", {"inputs": {"amount": 120}}), text("It waits for finance.")]) as model:
        settings = settings_for(model, tmp_path).model_copy(update={"agent_run_wait_seconds": 20.0,
                                                                    "worker_poll_seconds": 0.05})
        launch(erp, settings, kind="worker", worker_concurrency=2)  # this process works the queue, as `cristal worker`
        try:
            result = turn(erp, who(MEMBER), settings, cfg, "file my 120 EUR claim")
            output = results(model.chat_requests[-1].json)[-1]
        finally:
            shutdown()
    [call] = result.tool_calls
    assert call.status == "needs_approval" and call.approval_id and call.approval_id == output["output"]["approval_id"]
    assert result.as_dict()["tool_calls"][0]["approval_id"] == call.approval_id
    assert output["output"]["status"] == "waiting_for_approval" and output["output"]["approvers"] == ["group:finance"]


def test_what_the_organization_allows(erp, who, tmp_path) -> None:  # type: ignore[no-untyped-def]  # fixtures
    with ScriptedModel([], default=text("ok")) as model:
        base = settings_for(model, tmp_path)
        # A model the organization does not offer, at the turn and at create/publish.
        with pytest.raises(InvalidInput, match="does not offer the model 'large' \\(it offers: scripted\\)"):
            turn(erp, who(FINANCE), base, analyst(model="large"), "hi")
        offering = base.model_copy(update={"agent_models": {"acme": ("large",)}})
        assert turn(erp, who(FINANCE), offering, analyst(model="large"), "hi").answer == "ok"
        # Tool kinds: only those listed for the organization ("*" for the others).
        only_search = base.model_copy(update={"agent_tools": {"*": ("search_knowledge",)}})
        with pytest.raises(InvalidInput, match="does not allow the tool 'sql' \\(it allows: search_knowledge\\)"):
            turn(erp, who(FINANCE), only_search, analyst(ToolConfig("sql", {"source": "erp"})), "hi")
    # A workflow that is not deployed (yet) is a tool error the model is told about, not a refused turn.
    with ScriptedModel([tool_call("run_workflow", {"inputs": {}}), text("It is not there.")]) as model:
        result = turn(erp, who(FINANCE), settings_for(model, tmp_path), analyst(ToolConfig("run_workflow", {"workflow": "nope"})),
                      "hi")
    assert result.tool_calls[0].status == "error" and "unknown deployment 'nope'" in result.tool_calls[0].message
    with ScriptedModel([], default=text("ok")) as model:
        base = settings_for(model, tmp_path)

        agent_file = "name: filer\ninstructions: File claims.\nmodel: {model}\ntools:\n  - operate: {{allow_domains: [{domain}]}}\n"
        with pytest.raises(InvalidInput, match="does not offer the model 'large'"):
            store.create(erp, load_agent_text(agent_file.format(model="large", domain="apps.example")), "acme", FINANCE,
                         settings=base)
        with erp.session() as s:
            s.execute(update(Organization).where(Organization.slug == "acme").values(operator_allowed_domains=["apps.example"]))
        with pytest.raises(InvalidInput, match=r"evil\.example is outside organization 'acme'"):
            store.create(erp, load_agent_text(agent_file.format(model="scripted", domain="evil.example")), "acme", FINANCE,
                         settings=base)
        store.create(erp, load_agent_text(agent_file.format(model="scripted", domain="apps.example")), "acme", FINANCE,
                     settings=base)
        # Allowed when drafted, not any more when published: publish says why.
        with pytest.raises(InvalidInput, match="does not allow the tool 'operate'"):
            store.publish(erp, "acme", FINANCE, "filer", settings=only_search)


def test_operate_arguments_are_task_and_start_url_within_the_definitions_domains() -> None:
    [tool] = build_tools(build_registry(), (("operate", {"allow_domains": ["apps.example"]}),)).values()
    definition = tool.definition()["function"]
    assert set(definition["parameters"]["properties"]) == {"task", "start_url"} and "apps.example" in definition["description"]
    spec = tool.spec({"task": "file a claim", "start_url": "http://apps.example/"})
    assert spec["allow_domains"] == ["apps.example"] and spec["approvers"] == [] and not spec["allow_irreversible"]
    with pytest.raises(InvalidInput, match="set by the agent's definition"):
        tool.spec({"task": "x", "start_url": "http://apps.example/", "allow_domains": ["evil.example"]})
    with pytest.raises(InvalidInput, match="unknown argument 'allow_irreversible'"):
        tool.spec({"task": "x", "start_url": "http://apps.example/", "allow_irreversible": True})
    assert tool.effect == "destructive" and tool.starts_run
