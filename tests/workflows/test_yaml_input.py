"""Bad YAML in a workflow file is bad input (issue 16, finding 10): ``cristal workflow run`` exits 2 with one line.

Before, an invalid date, 20,000 levels of nesting or a 5,000-digit integer ended in exit 70 (a crash);
a date in inputs or arguments could not be stored with the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workflows.conftest import wf_cli, write  # noqa: F401  (fixture)

DATED = """\
name: dated
inputs:
  due: 2025-02-30
  booked: 2025-01-31
steps:
  - id: show
    python: {call: "tests.workflows.fns:echo", args: {due: "{{ inputs.due }}", paid: 2025-03-01, at: 2025-03-01 10:30:00}}
outputs:
  due: "{{ inputs.due }}"
  booked: "{{ inputs.booked }}"
"""

BAD = {
    "deep": ("name: deep\nsteps: " + "[" * 20_000 + "]" * 20_000 + "\n", ":2: nested more than 100 levels deep"),
    "digits": ("name: big\ninputs:\n  n: " + "7" * 5000
               + "\nsteps:\n  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: 1}}\n",
               ":3: an integer with 5,000 digits (at most 300)"),
    "args": ("name: big\nsteps:\n  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: " + "7" * 5000 + "}}\n",
             ":4: an integer with 5,000 digits (at most 300)"),
    "binary": ("name: bin\ninputs:\n  blob: !!binary aGVsbG8=\nsteps:\n"
               "  - id: a\n    python: {call: \"cristal.sample.checks:double\", args: {x: 1}}\n",
               ":3: !!binary values are not allowed"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_yaml_exits_2_with_one_line(cli, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    text, expected = BAD[case]
    flow = write(tmp_path / f"{case}.yaml", text)
    r = cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example")
    assert r.code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0] == f"error: {flow}{expected}" or lines[0].startswith(f"error: {flow}{expected}"), lines[0]


def test_dates_in_inputs_and_arguments_are_text(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    flow = write(tmp_path / "dated.yaml", DATED)
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"] == {"due": "2025-02-30", "booked": "2025-01-31"}
    assert doc["steps"][0]["output"] == {"due": ["str", "2025-02-30"], "paid": ["str", "2025-03-01"],
                                         "at": ["str", "2025-03-01 10:30:00"]}
    # A date typed on the command line is text too.
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "eng@acme.example", "--json", "--input", "due=2026-02-30")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["result"]["due"] == "2026-02-30"
