"""The command line end to end, as a user runs it: exit codes, one-line errors, JSON.

The tables of refusals run the command line in this process (``company_in_process``): the exit
codes and one-line errors come from ``cristal.cli.app.run``, which is what the process runs too;
the other tests start real processes.
"""

from __future__ import annotations

import json

import pytest

from cristal.db import Database
from cristal.identity import orgs, users
from cristal.identity.principal import Principal
from tests.conftest import Invoke

INSTALLATION = Principal.installation("test-operator")

BACKENDS = ("sqlite",)  # test_cli_postgres.py runs the main cases on PostgreSQL


def no_traceback(result) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def company_db(db: Database) -> Database:
    """Two organizations, set up through the Python API (fast); the tests then use the CLI."""
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme", "ACME Corp")
        orgs.create_org(s, INSTALLATION, "globex")
        for org in ("acme", "globex"):
            users.add_user(s, INSTALLATION, org, f"boss@{org}.example", role="admin")
            users.add_user(s, INSTALLATION, org, f"fin@{org}.example", groups=["finance", "audit"])
    return db


@pytest.fixture
def company(cli, company_db: Database):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """The company, driven by real ``python -m cristal`` processes."""
    return cli


@pytest.fixture
def company_in_process(cli_in_process: Invoke, company_db: Database) -> Invoke:
    """The company, driven by the command line run in this process."""
    return cli_in_process


def test_setup_through_the_cli(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    assert cli("init").code == 0
    assert cli("org", "create", "acme", "--name", "ACME Corp").code == 0
    added = cli("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance", "--json")
    assert added.code == 0 and json.loads(added.stdout)["groups"] == ["finance"]


def test_init_is_idempotent(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    first = cli("init", "--json")
    second = cli("init", "--json")
    assert first.code == second.code == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_commands_before_init_say_so(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = cli("org", "list")
    assert result.code != 0 and "cristal init" in result.stderr
    no_traceback(result)


def test_people_management(company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli = company
    listed = json.loads(cli("user", "list", "--org", "acme", "--json").stdout)
    assert listed["users"] == [
        {"email": "boss@acme.example", "org": "acme", "role": "admin", "groups": []},
        {"email": "fin@acme.example", "org": "acme", "role": "member", "groups": ["audit", "finance"]},
    ]
    assert cli("group", "add", "engineering", "fin@acme.example", "--org", "acme", "--as", "boss@acme.example").code == 0
    groups = json.loads(cli("group", "list", "--org", "acme", "--json").stdout)["groups"]
    assert {g["name"] for g in groups} == {"audit", "engineering", "finance"}
    assert cli("user", "remove", "fin@acme.example", "--org", "acme").code == 0
    assert [u["email"] for u in json.loads(cli("user", "list", "--org", "acme", "--json").stdout)["users"]] == ["boss@acme.example"]
    orgs = json.loads(cli("org", "list", "--json").stdout)["orgs"]
    assert [(o["slug"], o["users"]) for o in orgs] == [("acme", 1), ("globex", 2)]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("org", "create", "acme"), 4, "already exists"),
        (("org", "create", "Bad Slug!"), 2, "invalid organization slug"),
        (("user", "add", "not-an-email", "--org", "acme"), 2, "invalid e-mail"),
        (("user", "add", "x@acme.example", "--org", "nope"), 3, "unknown organization"),
        (("user", "add", "fin@acme.example", "--org", "acme"), 4, "already exists"),
        (("user", "add", "x@acme.example", "--org", "acme", "--role", "god"), 2, "invalid role"),
        (("user", "remove", "ghost@acme.example", "--org", "acme"), 3, "unknown user"),
        (("user", "list", "--org", "acme", "--as", "ghost@acme.example"), 3, "unknown user"),
        (("user", "add"), 2, "Missing argument"),
        (("frobnicate",), 2, "No such command"),
        (("org", "remove", "acme"), 2, "--yes"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(company_in_process: Invoke, args, code, message) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = company_in_process(*args)
    assert result.code == code, result.stderr
    assert message in result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    "args",
    [
        ("user", "add", "spy@acme.example", "--org", "globex", "--role", "admin"),
        ("user", "remove", "fin@globex.example", "--org", "globex"),
        ("user", "list", "--org", "globex"),
        ("user", "role", "fin@globex.example", "admin", "--org", "globex"),
        ("group", "add", "finance", "boss@globex.example", "--org", "globex"),
        ("group", "list", "--org", "globex"),
        ("org", "llm", "globex", "--model", "cheap"),
        ("org", "oidc", "globex", "--issuer", "https://login.example.com", "--client-id", "cristal"),
        ("org", "oidc", "globex", "--show"),
        ("audit", "--org", "globex"),
        ("apikey", "create", "fin@globex.example", "--org", "globex"),
        ("apikey", "list", "fin@globex.example", "--org", "globex"),
    ],
)
def test_cli_cannot_cross_organizations(company_in_process: Invoke, args) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli = company_in_process
    # --org names the organization acted on; the intruder is acme's admin.
    result = cli(*args, "--as", "boss@acme.example")
    assert result.code != 0
    no_traceback(result)
    # The intruder does not exist in globex, so they are refused before anything happens.
    assert "unknown user" in result.stderr or "may not" in result.stderr
    users = json.loads(cli("user", "list", "--org", "globex", "--json").stdout)["users"]
    assert {u["email"]: u["role"] for u in users} == {"boss@globex.example": "admin", "fin@globex.example": "member"}


def test_member_cannot_read_the_audit_trail_and_the_refusal_is_audited(company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli = company
    result = cli("audit", "--org", "acme", "--as", "fin@acme.example")
    assert result.code == 5 and "requires the admin role" in result.stderr
    no_traceback(result)
    records = json.loads(cli("audit", "--org", "acme", "--json", "--decision", "deny").stdout)["records"]
    assert records[0]["actor"] == "user:fin@acme.example@acme" and records[0]["action"] == "audit.read"


def test_audit_shows_admin_changes(company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli = company
    doc = json.loads(cli("audit", "--org", "acme", "--json", "--action", "user.manage").stdout)
    assert doc["org"] == "acme"
    assert [r["resource"] for r in doc["records"]] == ["user:fin@acme.example", "user:boss@acme.example"]
    assert all(r["decision"] == "allow" and r["actor"] == "operator:test-operator" for r in doc["records"])
    created = json.loads(cli("audit", "--org", "acme", "--json", "--action", "org.create").stdout)["records"]
    assert created[0]["details"] == {"name": "ACME Corp"}


def test_api_key_is_shown_once(company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    cli = company
    created = cli("apikey", "create", "fin@acme.example", "--org", "acme", "--as", "fin@acme.example", "--json")
    assert created.code == 0
    key = json.loads(created.stdout)["key"]
    listed = cli("apikey", "list", "fin@acme.example", "--org", "acme", "--as", "fin@acme.example", "--json")
    assert key not in listed.stdout and json.loads(listed.stdout)["keys"][0]["revoked"] is False


def test_corrupt_config_file(company, tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / "config.toml").write_text("llm_model = [unclosed")
    result = company("org", "list")
    assert result.code == 1 and "invalid TOML" in result.stderr
    no_traceback(result)


def test_unreachable_database(company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = company("org", "list", extra_env={"CRISTAL_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/none"})
    assert result.code == 1 and "cannot reach database" in result.stderr and "pw" not in result.stderr
    no_traceback(result)


def test_org_oidc_sets_shows_and_removes_the_sign_in_provider(company_in_process: Invoke) -> None:
    cli = company_in_process
    issuer = "https://login.acme.example/realms/acme"
    setting = ("org", "oidc", "acme", "--issuer", issuer, "--client-id", "cristal", "--secret-env", "CRISTAL_ORG_KEY_ACME_OIDC",
               "--groups-claim", "groups")
    result = cli(*setting, "--as", "boss@acme.example", "--json")
    assert result.code == 0, result.stderr
    expected = {"org": "acme", "issuer": issuer, "client_id": "cristal", "client_secret_env": "CRISTAL_ORG_KEY_ACME_OIDC",
                "groups_claim": "groups"}
    assert json.loads(result.stdout) == expected
    assert json.loads(cli("org", "oidc", "acme", "--show", "--json").stdout) == expected  # the installation reads it
    refusals = [
        ((*setting, "--as", "fin@acme.example"), 5, "requires the admin role"),
        (("org", "oidc", "acme", "--show", "--as", "fin@acme.example"), 5, "requires the admin role"),
        (("org", "oidc", "acme", "--issuer", "http://login.acme.example", "--client-id", "c"), 2, "https://"),
        (("org", "oidc", "acme", "--issuer", "https://login.acme.example", "--client-id", "c", "--secret-env",
          "CRISTAL_DATABASE_URL"), 2, "must start with CRISTAL_ORG_KEY_"),
        (("org", "oidc", "acme", "--issuer", "https://login.acme.example"), 2, "both --issuer and --client-id"),
        (("org", "oidc", "acme", "--show", "--remove"), 2, "or --show, or --remove"),
        (("org", "oidc", "acme", "--issuer", "https://x.example", "--client-id", "c", "--groups-claim", "a b"), 2,
         "invalid groups claim"),
        (("org", "oidc", "globex", "--show"), 3, "has no sign-in provider"),
    ]
    for args, code, message in refusals:
        result = cli(*args)
        assert (result.code, message in result.stderr) == (code, True), (args, result.stderr)
        no_traceback(result)
    # Nothing refused changed the provider.
    assert json.loads(cli("org", "oidc", "acme", "--show", "--json").stdout) == expected
    assert cli("org", "oidc", "acme", "--remove", "--as", "boss@acme.example").code == 0
    assert cli("org", "oidc", "acme", "--show").code == 3
