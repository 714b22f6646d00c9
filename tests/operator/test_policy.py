"""Per-organization allow-lists: admins set them (audited), every run of the organization stays inside them,
page text cannot widen them, and one organization's list does not touch another's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cristal.audit.log import query_audit
from cristal.db import Database
from cristal.errors import AccessDenied, InvalidInput
from cristal.identity import orgs, users
from cristal.identity.directory import resolve_principal
from cristal.models import Gateway
from cristal.operator import AllowList, RunConfig, run_operator
from cristal.operator.policy import domains_policy
from cristal.testing.scripted_model import ScriptedModel, tool_call
from tests.operator.conftest import INSTALLATION, model_settings
from tests.operator.site import USER, Site, SiteServer

ADMIN = "admin@acme.example"


@pytest.fixture
def admin(db: Database) -> str:
    with db.session() as s:
        users.add_user(s, INSTALLATION, "acme", ADMIN, role="admin")
    return ADMIN


def _host(server: SiteServer) -> str:
    return server.url().split("//")[1].rstrip("/")


def _run(db: Database, principal, browser, script, config):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel(script) as model, Gateway(model_settings(model.base_url), db) as gateway:
        result = run_operator(db, principal, config, gateway=gateway, browser=browser)
        answers = [m["content"] for r in model.chat_requests[1:] for m in r.messages if m["role"] == "tool"]
    return result, answers


def test_intersection_of_run_and_organization_lists() -> None:
    allow = AllowList.build(["example.com", "intranet.example:8443"], "https://app.example.com/", ["app.example.com", "intranet.example"])
    assert allow.allows("https://app.example.com/x") and allow.allows("https://a.app.example.com/")
    assert not allow.allows("https://www.example.com/")  # the run allows it, the organization does not
    assert allow.allows("https://intranet.example:8443/") and not allow.allows("https://intranet.example/")
    assert allow.outside_org() == []
    assert AllowList.build(["other.example"], "https://other.example/", ["example.com"]).outside_org() == ["other.example"]
    assert not AllowList.build([], "https://app.example.com/", []).allows("https://app.example.com/")  # an empty list: nowhere


def test_only_admins_change_the_list_and_every_change_is_audited(db: Database, admin: str) -> None:
    with pytest.raises(AccessDenied):
        domains_policy(db, "acme", USER, set_domains=["evil.example"])
    with pytest.raises(AccessDenied):
        domains_policy(db, "acme", USER)  # members do not read it either
    with pytest.raises(InvalidInput, match="not a domain"):
        domains_policy(db, "acme", admin, set_domains=["http://"])
    doc = domains_policy(db, "acme", admin, set_domains=["https://Intranet.Example:8443/", "erp.example"])
    assert doc == {"org": "acme", "allowed_domains": ["intranet.example:8443", "erp.example"], "limited": True, "changed": True}
    assert domains_policy(db, "acme", admin)["allowed_domains"] == ["intranet.example:8443", "erp.example"]
    assert domains_policy(db, "acme", admin, clear=True)["allowed_domains"] is None
    with db.session() as s:
        records = query_audit(s, "acme", action="operator.policy")
    assert [r.decision for r in records].count("deny") == 2 and [r.decision for r in records].count("allow") == 3
    change = next(r for r in records if r.decision == "allow" and (r.details or {}).get("after"))
    assert change.details["after"] == ["intranet.example:8443", "erp.example"] and admin in change.actor


def test_runs_stay_inside_their_organizations_list(db: Database, alice, admin: str, browser, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with db.session() as s:  # a second organization with no list of its own
        orgs.create_org(s, INSTALLATION, "globex", "Globex")
        users.add_user(s, INSTALLATION, "globex", "gina@globex.example")
    with db.session() as s:
        gina = resolve_principal(s, "globex", "gina@globex.example")
    domains_policy(db, "acme", admin, set_domains=["intranet.example"])
    start = site.url("/external")
    with pytest.raises(InvalidInput, match=r"the start URL .* is outside the organization's allowed domains \(intranet.example\)"):
        _run(db, alice, browser, [], RunConfig(task="x", start_url=start))
    result, _ = _run(db, gina, browser, [tool_call("done", {"result": "ok"})], RunConfig(task="x", start_url=start))
    assert result.status == "done", result.reason  # acme's list does not apply to globex

    with SiteServer(Site()) as other:
        other_origin = other.url().replace("127.0.0.1", "localhost").rstrip("/")
        site.site.other_origin = other_origin
        domains_policy(db, "acme", admin, set_domains=[_host(site)])
        with pytest.raises(InvalidInput, match=r"--allow-domain localhost:\d+ is outside the organization's allowed domains"):
            _run(db, alice, browser, [], RunConfig(task="x", start_url=start, allow_domains=(_host(site), other_origin)))
        # The run's own list reaches the other server (any port of 127.0.0.1); the organization's only this one.
        other_origin = other.url().rstrip("/")
        site.site.other_origin = other_origin
        config = RunConfig(task="Read the links page", start_url=start, allow_domains=("127.0.0.1",))
        script = [tool_call("goto", {"url": f"{other_origin}/steal"}), tool_call("done", {"result": "stayed"})]
        result, answers = _run(db, alice, browser, script, config)
        assert result.status == "done", result.reason
        assert other.site.hits == []  # neither the goto nor the page's own requests left the organization's list
        assert "is outside this run's allowed domains" in answers[0] and "organization: " + _host(site) in answers[0]
        assert "BLOCKED" in result.steps[0]["observation"]


def test_the_cli_refuses_members_and_domains_outside_the_list(cli, db_url: str, _org_template: Path, site: SiteServer) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    shutil.copyfile(_org_template, db_url.removeprefix("sqlite:///"))
    assert cli("user", "add", ADMIN, "--org", "acme", "--role", "admin").code == 0
    r = cli("operator", "domains", "--org", "acme", "--as", USER, "--set", "evil.example")
    assert r.code != 0 and r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    r = cli("operator", "domains", "--org", "acme", "--as", ADMIN, "--set", "intranet.example", "--json")
    assert r.code == 0 and json.loads(r.stdout)["allowed_domains"] == ["intranet.example"]
    r = cli("operator", "domains", "--org", "acme", "--as", ADMIN)
    assert r.code == 0 and "may reach only intranet.example" in r.stdout
    env = {"CRISTAL_LLM_BASE_URL": "http://127.0.0.1:9/v1", "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "m"}
    r = cli("operate", "x", "--org", "acme", "--as", USER, "--start-url", site.url("/"), extra_env=env)
    assert r.code == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"the start URL {site.url('/')} is outside the organization's allowed domains (intranet.example)" in r.stderr
    assert cli("operator", "domains", "--org", "acme", "--as", ADMIN, "--set", _host(site)).code == 0
    r = cli("operate", "x", "--org", "acme", "--as", USER, "--start-url", site.url("/"), "--allow-domain", _host(site),
            "--allow-domain", "other.example", extra_env=env)
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"--allow-domain other.example is outside the organization's allowed domains ({_host(site)})" in r.stderr
    r = cli("operator", "domains", "--org", "acme", "--as", ADMIN, "--set", "x.example", "--clear")
    assert r.code == 2 and "either --set" in r.stderr
