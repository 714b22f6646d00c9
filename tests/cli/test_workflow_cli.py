"""``cristal workflow`` and ``cristal approvals`` end to end: approvals, permissions, organizations, failures."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import invoke_in_process
from tests.workflows.conftest import wait_status, wf_cli, write  # noqa: F401  (fixture)

pytest_plugins: list[str] = []


@pytest.fixture
def worker(wf_cli):  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    proc = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env=wf_cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def _json(result):  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


APPROVAL = """
name: pay
inputs: {{amount: 120}}
steps:
  - id: prepare
    python: {{call: "cristal.sample.checks:double", args: {{x: "{{{{ inputs.amount }}}}"}}}}
  - id: sign-off
    approval: {{approvers: ["group:finance"], message: "Pay {{{{ steps.prepare.output }}}}?", on_timeout: {on_timeout}}}
    timeout: {timeout}
  - id: pay
    python: {{call: "cristal.sample.checks:double", args: {{x: "{{{{ steps.prepare.output }}}}"}}}}
"""


def _start_approval(cli, tmp_path: Path, timeout: str = "3d", on_timeout: str = "fail") -> tuple[str, str]:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    flow = write(tmp_path / "pay.yaml", APPROVAL.format(timeout=timeout, on_timeout=on_timeout))
    doc = _json(cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json"))
    assert doc["status"] in ("waiting", "succeeded", "rejected"), doc
    approval = doc["steps"][1].get("approval")
    return doc["run_id"], approval["id"] if approval else ""


def test_only_named_approvers_decide_and_the_decision_is_audited(wf_cli, worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    run_id, approval_id = _start_approval(wf_cli, tmp_path)
    listed = _json(wf_cli("approvals", "list", "--org", "acme", "--as", "fin@acme.example", "--json"))["approvals"]
    assert [a["id"] for a in listed] == [approval_id] and listed[0]["can_decide"] and listed[0]["message"] == "Pay 240?"
    assert _json(wf_cli("approvals", "list", "--org", "acme", "--as", "eng@acme.example", "--json"))["approvals"] == []
    # The run's owner is not an approver; neither is an admin outside the group; nor anyone from another company.
    for email, code in (("eng@acme.example", 5), ("admin@acme.example", 5), ("fin@globex.example", 3)):
        r = wf_cli("approvals", "approve", approval_id, "--as", email)
        assert r.code == code, (email, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert _json(wf_cli("workflow", "status", run_id, "--as", "eng@acme.example", "--json"))["status"] == "waiting"
    r = wf_cli("approvals", "approve", approval_id, "--as", "fin@acme.example", "--comment", "ok")
    assert r.code == 0, r.stderr
    doc = wait_status(wf_cli, run_id, "eng@acme.example", {"succeeded", "failed"})
    assert doc["status"] == "succeeded", doc
    assert doc["steps"][1]["output"]["decision"] == "approved" and doc["steps"][1]["output"]["by"] == "fin@acme.example"
    assert doc["steps"][2]["output"] == 480
    assert wf_cli("approvals", "reject", approval_id, "--as", "fin@acme.example").code == 2  # already decided
    audit = _json(wf_cli("audit", "--org", "acme", "--json"))
    records = audit["records"] if isinstance(audit, dict) else audit
    decide = [(r["actor"], r["decision"]) for r in records if r["action"] == "approval.decide"]
    assert ("user:fin@acme.example@acme", "allow") in decide
    assert ("user:eng@acme.example@acme", "deny") in decide and ("user:admin@acme.example@acme", "deny") in decide
    allowed = next(r for r in records if r["action"] == "approval.decide" and r["decision"] == "allow")
    assert allowed["details"]["decision"] == "approve" and allowed["at"]
    actions = {r["action"] for r in records}
    assert {"workflow.run", "workflow.python", "workflow.approval.request"} <= actions


def test_a_rejection_stops_the_run(wf_cli, worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    run_id, approval_id = _start_approval(wf_cli, tmp_path)
    assert wf_cli("approvals", "reject", approval_id, "--as", "fin@acme.example").code == 0
    doc = wait_status(wf_cli, run_id, "eng@acme.example", {"rejected", "succeeded", "failed"})
    assert doc["status"] == "rejected" and doc["steps"][2]["status"] == "pending"


@pytest.mark.parametrize(("on_timeout", "run_status", "decision"), [("approve", "succeeded", "approved"),
                                                                    ("reject", "rejected", "rejected"),
                                                                    ("fail", "failed", None)])
def test_approval_timeout_takes_the_declared_path(wf_cli, worker, tmp_path: Path, on_timeout, run_status, decision) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    flow = write(tmp_path / "pay.yaml", APPROVAL.format(timeout="1s", on_timeout=on_timeout))
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json")
    run_id = json.loads(r.stdout)["run_id"] if r.stdout else None
    assert run_id, r.stderr
    doc = wait_status(wf_cli, run_id, "eng@acme.example", {"succeeded", "rejected", "failed"})
    assert doc["status"] == run_status, doc
    assert doc["steps"][1]["approval"]["status"] == "timed_out"
    if decision:
        assert doc["steps"][1]["output"]["decision"] == decision and doc["steps"][1]["output"]["by"] == "timeout"
    else:
        assert "timed out" in doc["error"]
    records = _json(wf_cli("audit", "--org", "acme", "--json"))
    records = records["records"] if isinstance(records, dict) else records
    assert any(r["action"] == "approval.timeout" for r in records)


def _erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    con = sqlite3.connect(path)
    con.executescript("create table expenses (id integer primary key, amount numeric, status text);"
                      "insert into expenses values (1, 50, 'pending'), (2, 250.5, 'pending'), (3, 900, 'approved');")
    con.commit()
    con.close()
    return path


SQL_FLOW = """
name: pending
inputs: {threshold: 100}
steps:
  - id: pending
    sql: {source: erp, query: "select id, amount from expenses where status = 'pending' and amount > :t",
          params: {t: "{{ inputs.threshold }}"}}
  - id: count
    python: {call: "cristal.sample.checks:double", args: {x: "{{ steps.pending.rows | length }}"}}
"""


def test_sql_steps_run_as_the_owner_and_stay_in_their_organization(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    erp = _erp(tmp_path)
    assert wf_cli("source", "add", "erp", "--org", "acme", "--kind", "sql", "--uri", f"sqlite:///{erp}", "--acl", "group:finance").code == 0
    flow = write(tmp_path / "q.yaml", SQL_FLOW)
    doc = _json(wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--json"))
    assert doc["status"] == "succeeded" and doc["steps"][0]["output"] == [{"id": 2, "amount": 250.5}] and doc["steps"][1]["output"] == 2
    # An engineer may start workflows, but the step runs with the engineer's rights: refused, audited, run failed.
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json")
    assert r.code == 1 and "may not source.query" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    failed = json.loads(r.stdout)
    assert failed["status"] == "failed" and failed["steps"][0]["status"] == "failed" and failed["steps"][1]["status"] == "pending"
    # Another company has no source of that name, and cannot see the run.
    r = wf_cli("workflow", "run", str(flow), "--org", "globex", "--as", "fin@globex.example")
    assert r.code == 1 and "unknown source 'erp'" in r.stderr
    assert wf_cli("workflow", "status", doc["run_id"], "--as", "fin@globex.example").code == 3
    # Another member of the same company cannot read it either; an admin can; the operator sees no outputs.
    assert wf_cli("workflow", "status", doc["run_id"], "--as", "eng@acme.example").code == 5
    assert _json(wf_cli("workflow", "status", doc["run_id"], "--as", "admin@acme.example", "--json"))["steps"][0]["output"]
    assert "output" not in _json(wf_cli("workflow", "status", doc["run_id"], "--json"))["steps"][0]
    listed = _json(wf_cli("workflow", "list", "--org", "acme", "--as", "fin@acme.example", "--json"))["runs"]
    assert [x["run_id"] for x in listed] == [doc["run_id"]]
    assert len(_json(wf_cli("workflow", "list", "--org", "acme", "--as", "admin@acme.example", "--json"))["runs"]) == 2
    # Group changes apply to the next step: removing fin from finance makes the next run fail.
    assert wf_cli("group", "remove", "finance", "fin@acme.example", "--org", "acme").code == 0
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example")
    assert r.code == 1 and "may not source.query" in r.stderr


def test_failures_outputs_retry_and_bad_input(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    marker = tmp_path / "fixed"
    flow = write(tmp_path / "f.yaml", f"""
name: flaky
steps:
  - id: ok
    python: {{call: "cristal.sample.checks:numbers", args: {{n: 2}}}}
  - id: big
    when: "{{{{ steps.ok.output | length > 5 }}}}"
    python: {{call: "tests.workflows.fns:big", args: {{size: 2000000}}}}
  - id: flaky
    retry: {{attempts: 2, backoff: 10ms}}
    python: {{call: "tests.workflows.fns:effect_then_wait", args: {{name: f, ledger: "{tmp_path / 'l.db'}", gate: "{marker}"}}}}
    timeout: 200ms
""")
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json")
    assert r.code == 1 and "timed out after 0.2s (after 2 attempts)" in r.stderr
    failed = json.loads(r.stdout)
    assert [s["status"] for s in failed["steps"]] == ["succeeded", "skipped", "failed"]
    assert failed["steps"][0]["output"] == [0, 1]  # kept although a later step failed
    marker.write_text("ok")
    retried = _json(wf_cli("workflow", "retry", failed["run_id"], "--as", "eng@acme.example", "--json"))
    assert retried["status"] == "succeeded" and retried["retry_of"] == failed["run_id"]
    assert [s["status"] for s in retried["steps"]] == ["reused", "reused", "succeeded"]
    big = write(tmp_path / "big.yaml",
                'name: big\nsteps:\n  - id: huge\n    python: {call: "tests.workflows.fns:big", args: {size: 2000000}}\n')
    r = wf_cli("workflow", "run", str(big), "--org", "acme", "--as", "eng@acme.example")
    assert r.code == 1 and "above the 1,048,576-byte limit" in r.stderr
    for args, code, text in [
        (("workflow", "run", str(tmp_path / "none.yaml"), "--org", "acme", "--as", "eng@acme.example"), 2, "no such workflow file"),
        (("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--input", "x=1"), 2, "has no input 'x'"),
        (("workflow", "run", str(flow), "--org", "acme", "--as", "nobody@acme.example"), 3, "unknown user"),
        (("workflow", "status", "run_nope"), 3, "unknown run"),
        (("approvals", "approve", "apr_nope", "--as", "fin@acme.example"), 3, "unknown approval"),
    ]:
        r = wf_cli(*args)
        assert r.code == code and text in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_cancel_a_waiting_run(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    run_id, approval_id = _start_approval(wf_cli, tmp_path)
    assert wf_cli("workflow", "cancel", run_id, "--as", "fin@acme.example").code == 5  # not the owner
    assert wf_cli("workflow", "cancel", run_id, "--as", "eng@acme.example").code == 0
    doc = _json(wf_cli("workflow", "status", run_id, "--as", "eng@acme.example", "--json"))
    assert doc["status"] == "cancelled" and doc["steps"][1]["approval"]["status"] == "cancelled"
    assert wf_cli("approvals", "approve", approval_id, "--as", "fin@acme.example").code == 2


def test_llm_steps_use_the_gateway_with_structured_output(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    from cristal.testing.scripted_model import ScriptedModel, json_reply

    flow = write(tmp_path / "llm.yaml", """
name: classify
inputs: {text: "Hotel 4 Nächte à 176 EUR"}
steps:
  - id: classify
    llm:
      prompt: "Classify: {{ inputs.text }}"
      schema: {type: object, properties: {category: {type: string}}, required: [category]}
""")
    with ScriptedModel([json_reply({"category": "hotel"})]) as model:
        env = {"CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_MODEL": "scripted", "CRISTAL_LLM_API_KEY": "k"}
        doc = _json(wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json", extra_env=env))
        assert doc["steps"][0]["output"] == {"category": "hotel"}
        assert "Classify: Hotel 4 Nächte" in json.dumps(model.chat_requests[0].json["messages"], ensure_ascii=False)


RESEARCH_FLOW = """
name: hotel-brief
inputs:
  city: Munich
steps:
  - id: brief
    research: {question: "What is the hotel limit per night in {{ inputs.city }}?", mode: extractive}
  - id: count
    python: {call: "cristal.sample.checks:double", args: {x: "{{ steps.brief.output.citations | length }}"}}
"""


def test_research_steps_run_as_the_owner(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    from tests.knowledge.conftest import write_tree

    docs = write_tree(tmp_path / "wiki")
    assert wf_cli("source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", str(docs)).code == 0
    assert wf_cli("sync", "--org", "acme", "--keyword-only").code == 0
    flow = write(tmp_path / "r.yaml", RESEARCH_FLOW)
    doc = _json(wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--json"))
    assert doc["status"] == "succeeded", doc
    brief = doc["steps"][0]["output"]
    assert brief["mode"] == "extractive" and "150 EUR" in brief["report"] and brief["citations"]
    assert doc["steps"][1]["output"] == 2 * len(brief["citations"])
    # The same question as an engineer cannot cite what only finance may read.
    salary = write(tmp_path / "s.yaml", RESEARCH_FLOW.replace("What is the hotel limit per night in {{ inputs.city }}?",
                                                             "What do senior engineers earn?"))
    fin = _json(wf_cli("workflow", "run", str(salary), "--org", "acme", "--as", "fin@acme.example", "--json"))
    assert "105,000" not in json.dumps(fin["steps"][0]["output"])


DEPLOYED = """
name: tick
inputs: {{who: null}}
steps:
  - id: mark
    python: {{call: "tests.workflows.fns:effect", args: {{name: "{{{{ inputs.who }}}}", ledger: "{ledger}"}}}}
"""


def _one_line_error(r, code: int, text: str) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    assert r.code == code and text in r.stderr, (r.code, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_deploy_start_schedule_and_undeploy(wf_cli, worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    ledger = tmp_path / "ledger.db"
    flow = write(tmp_path / "tick.yaml", DEPLOYED.format(ledger=ledger))
    acme = ("--org", "acme")
    _one_line_error(wf_cli("workflow", "deploy", str(flow), *acme, "--as", "fin@acme.example", "--schedule", "61 * * * *",
                           "--input", "who=cron"), 2, "invalid schedule '61 * * * *'")
    _one_line_error(wf_cli("workflow", "deploy", str(flow), *acme, "--as", "fin@acme.example", "--schedule", "* * * * *"),
                    2, "needs input 'who'")
    _one_line_error(wf_cli("workflow", "deploy", str(tmp_path / "none.yaml"), *acme, "--as", "fin@acme.example"), 2,
                    "no such workflow file")
    # Every two seconds (6 fields: seconds first), as fin, with the input a schedule needs.
    doc = _json(wf_cli("workflow", "deploy", str(flow), *acme, "--as", "fin@acme.example", "--name", "ticker",
                       "--schedule", "*/2 * * * * *", "--input", "who=cron", "--json"))
    assert (doc["name"], doc["schedule"], doc["deployed_by"]) == ("ticker", "*/2 * * * * *", "fin@acme.example")
    _json(wf_cli("workflow", "deploy", str(flow), *acme, "--as", "fin@acme.example", "--name", "manual", "--json"))
    listed = _json(wf_cli("workflow", "deployments", *acme, "--as", "eng@acme.example", "--json"))["deployments"]
    assert [d["name"] for d in listed] == ["manual", "ticker"]
    assert _json(wf_cli("workflow", "deployments", "--org", "globex", "--as", "eng@globex.example", "--json")) == {"deployments": []}

    # Started by hand (the CLI uses the function the HTTP server calls), with an idempotency key.
    first = _json(wf_cli("workflow", "start", "manual", *acme, "--as", "eng@acme.example", "--input", "who=hand",
                         "--idempotency-key", "k1", "--json"))
    again = _json(wf_cli("workflow", "start", "manual", *acme, "--as", "eng@acme.example", "--input", "who=hand",
                         "--idempotency-key", "k1", "--json"))
    assert first["run_id"] == again["run_id"] and first["owner"] == "eng@acme.example"
    assert wait_status(wf_cli, first["run_id"], "eng@acme.example", {"succeeded", "failed"})["status"] == "succeeded"

    # Another company's people neither see nor start acme's deployments; unknown names are one-line errors.
    _one_line_error(wf_cli("workflow", "start", "manual", *acme, "--as", "fin@globex.example", "--input", "who=x"), 3, "unknown user")
    _one_line_error(wf_cli("workflow", "start", "manual", "--org", "globex", "--as", "fin@globex.example"), 3,
                    "unknown deployment 'manual' in organization 'globex'")
    _one_line_error(wf_cli("workflow", "deployments", *acme, "--as", "fin@globex.example"), 3, "unknown user")
    _one_line_error(wf_cli("workflow", "undeploy", "nope", *acme, "--as", "admin@acme.example"), 3, "unknown deployment 'nope'")
    _one_line_error(wf_cli("workflow", "undeploy", "ticker", *acme, "--as", "eng@acme.example"), 5, "only the owner or an admin")
    _one_line_error(wf_cli("workflow", "limits", *acme, "--as", "eng@acme.example", "--kind", "llm", "--concurrency", "2"),
                    5, "requires the admin role")
    _one_line_error(wf_cli("workflow", "limits", *acme, "--as", "admin@acme.example", "--kind", "llm", "--rate", "fast"),
                    2, "invalid rate 'fast'")
    _one_line_error(wf_cli("workflow", "limits", *acme, "--as", "admin@acme.example", "--kind", "approval", "--rate", "1/s"),
                    2, "invalid step kind 'approval'")
    set_ = _json(wf_cli("workflow", "limits", *acme, "--as", "admin@acme.example", "--kind", "llm", "--concurrency", "4",
                        "--rate", "600/m", "--json"))
    assert set_["limits"] == [{"kind": "llm", "max_concurrent": 4, "rate": "600/60s"}]
    assert _json(wf_cli("workflow", "limits", "--org", "globex", "--as", "eng@globex.example", "--json"))["limits"] == []

    def cron_runs(cli=wf_cli) -> list[str]:  # type: ignore[no-untyped-def]  # a fixture or invoke_in_process
        runs = _json(cli("workflow", "list", *acme, "--as", "fin@acme.example", "--json"))["runs"]
        return [r["run_id"] for r in runs if r["run_id"].startswith("sched_") and r["status"] == "succeeded"]

    deadline = time.monotonic() + 90
    while len(cron_runs(invoke_in_process)) < 2:  # polled in this process; the lists below are real processes
        assert time.monotonic() < deadline, "the schedule did not fire twice"
        time.sleep(0.5)
    _json(wf_cli("workflow", "undeploy", "ticker", *acme, "--as", "admin@acme.example", "--json"))
    done = cron_runs()
    runs = _json(wf_cli("workflow", "list", *acme, "--as", "fin@acme.example", "--json"))["runs"]
    owners = {r["owner"] for r in runs if r["run_id"] in done}
    assert owners == {"fin@acme.example"}  # scheduled runs act as the deployer
    con = sqlite3.connect(ledger)
    effects = con.execute("select name, key from effects").fetchall()
    calls = con.execute("select key from calls").fetchall()
    con.close()
    assert len(calls) == len(set(calls))  # no run's step executed twice
    assert {k.split(":")[0] for n, k in effects if n == "cron"} >= set(done)
    deployments = _json(wf_cli("workflow", "deployments", *acme, "--as", "eng@acme.example", "--json"))["deployments"]
    assert [d["name"] for d in deployments] == ["manual"]
