"""Workflow YAML over HTTP (issue 16, finding 10): what JSON cannot hold is a 400 naming the line, never a 500."""

from __future__ import annotations

import pytest

from cristal.workflows.schema import WorkflowRun
from tests.server.conftest import Company, error_of, person

STEP = "steps:\n  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: 1}}\n"


@pytest.mark.parametrize(("workflow", "expected"), [
    ("name: deep\nsteps: " + "[" * 20_000 + "]" * 20_000 + "\n", "<request>:2: nested more than 100 levels deep"),
    ("name: big\ninputs:\n  n: " + "7" * 5000 + "\n" + STEP, "<request>:3: an integer with 5,000 digits (at most 300)"),
    ("name: inf\ninputs:\n  n: .inf\n" + STEP, "<request>:3: '.inf' is not a finite number"),
    ("name: set\ninputs:\n  s: !!set {a, b}\n" + STEP, "<request>:3: !!set values are not allowed"),
])
def test_unrepresentable_yaml_is_400_with_the_line(client, workflow: str, expected: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    http = client(person("fin", "acme"))
    r = http.post("/api/v1/workflows/runs", json={"workflow": workflow, "inputs": {}})
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["type"] == "invalid_request" and error["message"].startswith(expected), error
    assert http.get("/api/v1/runs").json()["runs"] == []


def test_dates_over_http_are_text_and_the_run_is_recorded(client, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    workflow = ("name: dated\ninputs:\n  due: 2025-02-30\n  booked: 2025-01-31\nsteps:\n  - id: a\n"
                "    python: {call: \"cristal.sample.checks:double\", args: {x: 1, when: 2025-03-01}}\n")
    r = client(person("fin", "acme")).post("/api/v1/workflows/runs", json={"workflow": workflow, "inputs": {}})
    assert r.status_code == 202, r.text
    with company.db.session() as s:
        run = s.get(WorkflowRun, r.json()["run_id"])
        assert run.inputs == {"due": "2025-02-30", "booked": "2025-01-31"}
        assert run.definition["steps"][0]["spec"]["args"] == {"x": 1, "when": "2025-03-01"}
