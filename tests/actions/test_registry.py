"""The action registry: every kind declared once, by the layer that owns it, loaded from one list."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cristal.actions import DEFAULT_ACTIONS, ActionContext, build_registry
from cristal.actions.registry import RegistryError
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity.principal import Principal
from cristal.workflows.spec import load_workflow_text

OWNERS = {
    "sql": "cristal.actions.sql", "http": "cristal.actions.http", "python": "cristal.actions.python",
    "llm": "cristal.actions.llm", "search": "cristal.actions.search", "research": "cristal.research.action",
    "operate": "cristal.operator.action", "agent": "cristal.agents.action", "approval": "cristal.workflows.actions",
    "workflow": "cristal.workflows.actions",
}


def test_every_kind_is_declared_by_its_own_layer() -> None:
    actions = build_registry()
    assert actions.names == tuple(OWNERS)
    assert {a.name: a.owner for a in actions} == OWNERS
    assert {a.name for a in actions if not a.retriable} == {"operate", "approval"}
    assert {a.name for a in actions if a.run is None} == {"approval", "workflow"}  # the engine's own
    assert actions["operate"].effect == "destructive" and actions["sql"].effect == "read"


def test_the_limit_kinds_are_the_ones_an_admin_can_limit() -> None:
    from cristal.durable.limits import LIMITED_KINDS

    limited = {a.limit for a in build_registry() if a.limit is not None}
    assert limited == set(LIMITED_KINDS)


def test_building_the_registry_loads_no_heavy_library() -> None:
    code = ("import sys; from cristal.actions import build_registry; build_registry(); "
            "print([m for m in ('openai', 'playwright', 'numpy', 'dbos', 'cristal.research.run', 'cristal.operator.browser') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_a_module_without_actions_or_a_second_declaration_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"cristal\.errors declares no ACTIONS"):
        build_registry(["cristal.actions.sql", "cristal.errors"])
    with pytest.raises(RegistryError, match=r"action 'sql' is declared by cristal\.actions\.sql and by cristal\.actions\.sql"):
        build_registry(["cristal.actions.sql", "cristal.actions.sql"])
    assert len(build_registry(DEFAULT_ACTIONS)) == len(OWNERS)


def test_workflows_accept_exactly_the_kinds_of_their_registry(tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path))
    text = "name: x\nsteps:\n  - id: a\n    http: {url: 'https://example.com/'}\n"
    assert load_workflow_text(text, settings=settings).steps[0]["kind"] == "http"
    only_sql = build_registry(["cristal.actions.sql"])
    with pytest.raises(InvalidInput, match=r"no step kind \(unknown kind 'http'\): give exactly one of sql$"):
        load_workflow_text(text, settings=settings, actions=only_sql)


def test_actions_describe_themselves_as_tools() -> None:
    actions = build_registry()
    for action in actions:
        tool = action.tool()
        assert tool["name"] == action.name and tool["description"] and tool["effect"] == action.effect
        assert tool["parameters"]["type"] == "object"
    http = actions["http"].tool()["parameters"]
    assert "json" in http["properties"] and "json_body" not in http["properties"]  # spelled as in workflow files
    assert http["additionalProperties"] is False
    assert actions["llm"].tool()["parameters"]["required"] == ["prompt", "schema"]


def test_the_context_carries_its_deadline(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    who = Principal(kind="user", name="a@acme.example", org_id=1, org_slug="acme")
    ctx = ActionContext(db=db, settings=Settings(home=str(tmp_path)), principal=who, org_id=1, org="acme",
                        run_id="run_1", step_id="s", idempotency_key="run_1:s", timeout=30)
    assert ctx.key == "run_1:s" and ctx.owner_email == "a@acme.example"
    assert ctx.deadline is not None and ctx.deadline - time.monotonic() <= 30
    remaining = ctx.remaining()
    assert remaining is not None and 0 < remaining <= 30
    resource = ctx.resource("url", "https://example.com/")
    assert (resource.kind, resource.org_id, resource.org_slug) == ("url", 1, "acme")
    unlimited = ActionContext(db=db, settings=ctx.settings, principal=who, org_id=1, org="acme", run_id="r", step_id="s",
                              idempotency_key="r:s")
    assert unlimited.deadline is None and unlimited.remaining() is None
    db.dispose()
