"""Text a member controls is shown as text, never read as Rich markup (issue 16, item 7).

A workflow named ``quarterly [/report]`` made ``cristal audit`` and ``cristal
workflow list`` crash with exit 70 (``MarkupError``); an approval message
ending in ``[/b]`` broke ``cristal approvals list``. Each attack is tried as it
was found: a member puts the text there, an admin or approver runs the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cristal.db import Database
from cristal.durable.approvals import approval_id_for
from cristal.identity import orgs, users
from cristal.identity.directory import org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge import sources
from cristal.knowledge.sync import sync_source
from cristal.workflows import service
from cristal.workflows.schema import WorkflowApproval
from cristal.workflows.spec import load_workflow_text
from tests.conftest import CliResult, Invoke

INSTALLATION = Principal.installation("test-operator")
NAME = "quarterly [/report]"
MESSAGE = "Send the quarterly numbers to the board? [/b]"
FLOW = f"""
name: "{NAME}"
steps:
  - id: sign-off
    approval: {{approvers: ["group:finance"], message: "{MESSAGE}"}}
"""


def _ok(result: CliResult) -> str:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    return result.stdout


@pytest.fixture
def acme(db: Database) -> Database:
    with db.session() as s:
        orgs.create_org(s, INSTALLATION, "acme", "ACME [/b] Corp")
        users.add_user(s, INSTALLATION, "acme", "boss@acme.example", role="admin")
        users.add_user(s, INSTALLATION, "acme", "eng@acme.example", groups=["engineering"])
        users.add_user(s, INSTALLATION, "acme", "fin@acme.example", groups=["finance"])
    return db


@pytest.fixture
def member_run(acme: Database) -> str:
    """The member starts the workflow the way ``POST /api/v1/workflows/runs`` does (it stays queued)."""
    return service.create_run(acme, load_workflow_text(FLOW), "acme", "eng@acme.example", {}).run_id


def test_admin_lists_runs_of_a_workflow_named_like_markup(cli_in_process: Invoke, member_run: str) -> None:
    shown = _ok(cli_in_process("workflow", "list", "--org", "acme", "--as", "boss@acme.example"))
    assert NAME in shown and member_run in shown


def test_admin_reads_the_audit_trail_naming_it(cli_in_process: Invoke, member_run: str) -> None:
    shown = _ok(cli_in_process("audit", "--org", "acme", "--action", "workflow.run"))
    assert f"workflow:{NAME}" in shown


def test_the_run_status_shows_the_name(cli_in_process: Invoke, member_run: str) -> None:
    shown = _ok(cli_in_process("workflow", "status", member_run, "--as", "eng@acme.example"))
    assert f"{member_run} {NAME} — queued" in shown


def test_approver_lists_an_approval_whose_message_closes_a_tag(cli_in_process: Invoke, acme: Database, member_run: str) -> None:
    # The request as the engine records it when the run reaches its approval step (the end-to-end test
    # below gets there by running the workflow; here only the listing is under test).
    with acme.session() as s:
        s.add(WorkflowApproval(id=approval_id_for(member_run, "sign-off"), run_id=member_run, step_id="sign-off",
                               org_id=org_by_slug(s, "acme").id, owner_email="eng@acme.example", workflow_name=NAME,
                               approvers=["group:finance"], message=MESSAGE, status="pending"))
    shown = _ok(cli_in_process("approvals", "list", "--org", "acme", "--as", "fin@acme.example"))
    assert MESSAGE in shown and NAME in shown
    # An admin who is not an approver sees it too, with the note added in markup by the CLI itself.
    shown = _ok(cli_in_process("approvals", "list", "--org", "acme", "--as", "boss@acme.example"))
    assert MESSAGE in shown and "(you are not an approver)" in shown and "[dim]" not in shown


def test_an_organization_name_is_shown_as_typed(cli_in_process: Invoke, acme: Database) -> None:
    assert "ACME [/b] Corp" in _ok(cli_in_process("org", "list"))


def test_a_document_title_is_shown_as_written(cli_in_process: Invoke, acme: Database, tmp_path: Path) -> None:
    # Anyone who can write to a shared folder chooses the titles every searcher's terminal prints.
    folder = tmp_path / "shared [red]"
    folder.mkdir()
    (folder / "plan.md").write_text("# Budget [/i] plan [bold]\n\nThe travel budget is 4000 EUR [/] per team.\n", encoding="utf-8")
    with acme.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "shared", "files", str(folder), acl="org")
    sync_source(acme, INSTALLATION, "acme", "shared", embed=False)
    shown = _ok(cli_in_process("search", "travel budget", "--org", "acme", "--as", "eng@acme.example", "--mode", "keyword"))
    assert "Budget [/i] plan [bold]" in shown and "4000 EUR [/] per team" in shown
    assert str(folder) in _ok(cli_in_process("source", "list", "--org", "acme"))


def test_json_output_is_unchanged(cli_in_process: Invoke, member_run: str) -> None:
    runs = json.loads(_ok(cli_in_process("workflow", "list", "--org", "acme", "--as", "boss@acme.example", "--json")))["runs"]
    assert [r["workflow"] for r in runs] == [NAME]


def test_the_attack_end_to_end_in_real_processes(cli: Invoke, tmp_path: Path) -> None:
    """The member runs the workflow from the CLI until it waits for approval; the approver and admin look."""
    assert cli("init").code == 0
    assert cli("org", "create", "acme").code == 0
    for email, extra in (("boss@acme.example", ("--role", "admin")), ("eng@acme.example", ()),
                         ("fin@acme.example", ("--group", "finance"))):
        assert cli("user", "add", email, "--org", "acme", *extra).code == 0
    flow = tmp_path / "quarterly.yaml"
    flow.write_text(FLOW, encoding="utf-8")

    started = cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example")
    assert started.code == 0, started.stderr
    assert f"of {NAME} as eng@acme.example" in started.stderr and "waiting for approval" in started.stderr

    listed = cli("approvals", "list", "--org", "acme", "--as", "fin@acme.example")
    assert listed.code == 0, listed.stderr
    assert MESSAGE in listed.stdout and NAME in listed.stdout

    runs = cli("workflow", "list", "--org", "acme", "--as", "boss@acme.example", extra_env={"COLUMNS": "240"})
    assert runs.code == 0, runs.stderr
    assert NAME in runs.stdout and "waiting" in runs.stdout

    audit = cli("audit", "--org", "acme", extra_env={"COLUMNS": "240"})
    assert audit.code == 0, audit.stderr
    assert f"workflow:{NAME}" in audit.stdout
