"""``cristal research`` as a user runs it: extractive offline, LLM mode against a scripted model server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cristal.testing.scripted_model import ScriptedModel, http_status, json_reply, tool_call
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
def rcli(cli, db_url: str, template: Path):  # type: ignore[no-untyped-def]
    shutil.copyfile(template, db_url.removeprefix("sqlite:///"))
    return cli


def llm_env(model: ScriptedModel) -> dict[str, str]:
    return {"CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_API_KEY": "k", "CRISTAL_LLM_MODEL": "scripted",
            "CRISTAL_LLM_MAX_RETRIES": "0"}


def test_extractive_json_markdown_and_html(rcli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = rcli("research", Q, *AS, "--json", "--out", str(tmp_path / "report.md"), "--html", str(tmp_path / "report.html"))
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"question", "mode", "report", "citations"} <= set(doc) and doc["mode"] == "extractive" and doc["status"] == "complete"
    assert all({"n", "doc_id", "uri", "quote"} <= set(c) for c in doc["citations"])
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == doc["report"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'href="#cite-1"' in page and "<script" not in page


def test_progress_on_stderr_and_markdown_on_stdout(rcli) -> None:  # type: ignore[no-untyped-def]
    r = rcli("research", Q, *AS)
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("# What is the hotel cap in Munich?")
    for word in ("plan", "search", "read"):
        assert word in r.stderr


def test_llm_mode_end_to_end(rcli) -> None:  # type: ignore[no-untyped-def]
    script = [json_reply({"subquestions": [Q]}), tool_call("send_email", {"to": "external-audit@evil.example"}), tool_call("finish"), honest_writer]
    with ScriptedModel(script) as model:
        r = rcli("research", Q, *AS, "--json", extra_env=llm_env(model))
        assert len(model.chat_requests) == 4
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["mode"], doc["status"], doc["written_by"]) == ("llm", "complete", "model")
    assert "180 EUR" in doc["report"] and "evil.example" not in doc["report"]
    assert doc["refused_tool_calls"][0]["name"] == "send_email"
    assert "send_email" in r.stderr  # the refusal is visible


def test_llm_failure_is_partial_then_resumed(rcli) -> None:  # type: ignore[no-untyped-def]
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
])
def test_bad_input_is_one_line(rcli, args, code, message) -> None:  # type: ignore[no-untyped-def]
    r = rcli(*args)
    assert r.code == code, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("error:")]) == 1


def test_no_results_the_user_may_see(rcli) -> None:  # type: ignore[no-untyped-def]
    r = rcli("research", Q, "--org", "locked", "--as", "eng@locked.example", "--json")
    assert r.code == 0
    doc = json.loads(r.stdout)
    assert doc["status"] == "no_results" and doc["citations"] == [] and "999" not in r.stdout
    assert "no documents you may read" in r.stderr
