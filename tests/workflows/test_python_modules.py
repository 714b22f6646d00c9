"""``python`` steps call only the modules an installation lists; none by default (issue 16, finding 1).

The attack as it was tried: a plain member runs a workflow whose python step calls the sample's
``seed_database`` with ``overwrite: true`` on a file the worker can write.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.config import Settings, load_settings
from cristal.db import Database
from cristal.durable.runtime import shutdown
from cristal.errors import InvalidInput
from cristal.workflows import service
from cristal.workflows.spec import load_workflow, load_workflow_text
from tests.workflows.conftest import write


def attack(target: Path) -> str:
    return ("name: overwrite\nsteps:\n  - id: clobber\n"
            f"    python: {{call: \"cristal.sample.webapps.store:seed_database\", args: {{db_path: \"{target}\", overwrite: true}}}}\n")


def test_nothing_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRISTAL_WORKFLOW_PYTHON_MODULES")
    settings = Settings()
    assert settings.workflow_python_modules == ()
    assert not settings.python_module_allowed("cristal.sample.checks")
    with pytest.raises(InvalidInput, match="module 'cristal.sample.checks' is not allowed in workflows "
                                           r"\(this installation allows none"):
        load_workflow_text("name: x\nsteps:\n  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: 1}}\n",
                           settings=settings)


def test_the_setting_lists_modules_and_their_submodules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_WORKFLOW_PYTHON_MODULES", "cristal.sample.checks, mypkg")
    settings = load_settings()
    assert settings.workflow_python_modules == ("cristal.sample.checks", "mypkg")
    assert settings.python_module_allowed("mypkg.sub") and not settings.python_module_allowed("mypkgx")
    assert not settings.python_module_allowed("cristal.sample.webapps.store")
    monkeypatch.setenv("CRISTAL_WORKFLOW_PYTHON_MODULES", "os; rm -rf")
    with pytest.raises(Exception, match="not a module name"):
        load_settings()


@pytest.mark.parametrize("modules", ["", "tests.workflows,cristal.sample.checks"])
def test_a_member_cannot_overwrite_a_file_over_the_cli(wf_cli, tmp_path: Path, modules: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    target = tmp_path / "precious.txt"
    target.write_text("keep me", encoding="utf-8")
    flow = write(tmp_path / "overwrite.yaml", attack(target))
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example",
               extra_env={"CRISTAL_WORKFLOW_PYTHON_MODULES": modules})
    assert r.code == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{flow}:4: step 'clobber': python module 'cristal.sample.webapps.store' is not allowed" in r.stderr
    assert target.read_text(encoding="utf-8") == "keep me"
    runs = wf_cli("workflow", "list", "--org", "acme", "--as", "eng@acme.example", "--json")
    assert '"runs": []' in runs.stdout


def test_a_run_queued_before_the_setting_changed_is_refused_when_it_runs(two_orgs: Database, tmp_path: Path) -> None:
    # Validated while the installation allowed the module, executed after it no longer does.
    target = tmp_path / "precious.txt"
    target.write_text("keep me", encoding="utf-8")
    permissive = Settings(workflow_python_modules=("cristal.sample.webapps",))
    run = service.create_run(two_orgs, load_workflow(write(tmp_path / "o.yaml", attack(target)), settings=permissive),
                             "acme", "eng@acme.example", {})
    try:
        handle = service.start(two_orgs, Settings(workflow_python_modules=()), run)
        with pytest.raises(Exception, match="is not allowed in workflows"):
            handle.get_result()
    finally:
        shutdown()
    doc = service.run_status(two_orgs, run.run_id, "eng@acme.example")
    assert doc["status"] == "failed" and "python module 'cristal.sample.webapps.store' is not allowed" in doc["error"]
    assert target.read_text(encoding="utf-8") == "keep me"
