"""One member's template cannot freeze a worker (issue 16, finding 5): rendering refuses before it computes.

No test here measures time: each asserts on the refusal, which comes before the work would be done
(``9 ** (9 ** 9)`` alone would hold the interpreter lock of the whole worker for minutes).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cristal.errors import InvalidInput
from cristal.workflows.spec import load_workflow_text
from cristal.workflows.templates import TemplateFailure, render
from tests.workflows.conftest import wait_status, wf_cli, write  # noqa: F401  (fixture)

CONTEXT = {"inputs": {"rows": list(range(100_000)), "text": "x" * 1000}, "steps": {}, "run": {"id": "r"}}


@pytest.mark.parametrize(("template", "message"), [
    ("{{ 9 ** (9 ** 9) }}", "refused: 9 ** 387420489 would have about 369,693,099 digits (at most 300)"),
    ("{{ 10 ** 100000 }}", "refused: 10 ** 100000 would have about 100,000 digits (at most 300)"),
    ("total: {{ 10 ** 100000 }}", "refused: 10 ** 100000 would have about 100,000 digits"),
    ("{{ (2 ** 900) * (2 ** 900) }}", "refused: a product with about 542 digits (at most 300)"),
    ("{{ 'a' * 10**9 }}", "refused: repeating would build 1,000,000,000 characters or items (at most 1,000,000)"),
    ("{{ [1] * 10**9 }}", "refused: repeating would build 1,000,000,000 characters or items"),
    ("{{ 10**9 * 'a' }}", "refused: repeating would build 1,000,000,000"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "refused: loops ran more than 200,000 times"),
    ("{% for a in inputs.rows %}{% for b in inputs.rows %}{{ a }}{% endfor %}{% endfor %}",
     "refused: loops ran more than 200,000 times"),
    ("{% macro m() %}{% for i in range(100000) %}{{ inputs.text }}{% endfor %}{% endmacro %}{{ m() | length }}",
     "refused: the rendering would be longer than 1,000,000 characters"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
     "refused: ~ would build 1,048,576 characters"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
     "refused: joining would build 1,048,576 characters"),
    ("{{ inputs.text | replace('x', inputs.text ~ 'y') }}", "refused: replace would build 1,001,000 characters"),
    ("{{ inputs.text.replace('x', inputs.text ~ 'y') }}", "refused: replace would build 1,001,000 characters"),
    ("{{ inputs.rows | join(inputs.text) }}", "refused: join would build 100,487,890 characters"),
    ("{{ 'a' | center(10**9) }}", "refused: center width 1,000,000,000 (at most 10,000)"),
    ("{{ 'a'.rjust(10**9) }}", "refused: rjust width 1,000,000,000"),
    ("{{ '%0999999999d' % 1 }}", "refused: % formatting width 999,999,999 (at most 10,000)"),
    ("{{ '%*d' | format(10**9, 1) }}", "refused: '*' widths in % formatting are not allowed"),
    ("{{ '{:>999999999}'.format(1) }}", "refused: format width 999,999,999 (at most 10,000)"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "refused: it nests too deeply"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops are not allowed"),
    ("{{ inputs.rows.append(1) }}", "is not allowed: access to attribute 'append' of 'list' object is unsafe"),
])
def test_expensive_templates_are_refused_with_the_limit_named(template: str, message: str) -> None:
    with pytest.raises(TemplateFailure) as caught:
        render(template, CONTEXT)
    assert str(caught.value).startswith("template ") and message in str(caught.value), str(caught.value)


def test_ordinary_templates_still_render() -> None:
    assert render("{{ 2 ** 64 }}", CONTEXT) == 18446744073709551616
    assert render("{{ 'ab' * 3 }}-{{ '%5.2f' % 3.14159 }}-{{ '{:>4}'.format('x') }}", CONTEXT) == "ababab- 3.14-   x"
    assert render("{{ inputs.rows | sum }}", CONTEXT) == 4999950000
    assert render({"a": ["{{ inputs.rows | length * 3 }}"], "b": "{% for i in range(3) %}{{ i }},{% endfor %}"}, CONTEXT) == {
        "a": [300000], "b": "0,1,2,"}
    assert render("{{ inputs.text | center(1010) | length }}", CONTEXT) == 1010


def test_a_template_made_of_many_parts_shares_one_budget() -> None:
    # 3 values each looping 100,000 times: within the limit one by one, over it together.
    loop = "{% for i in inputs.rows %}{% endfor %}"
    assert render([loop, loop], CONTEXT) == ["", ""]
    with pytest.raises(TemplateFailure, match="loops ran more than 200,000 times"):
        render([loop, loop, loop], CONTEXT)


def test_recursive_loops_are_refused_when_the_file_is_loaded() -> None:
    text = ('name: x\nsteps:\n  - id: a\n    python: {call: "cristal.sample.checks:double", '
            'args: {x: "{% for x in inputs.l recursive %}{{ loop(x) }}{% endfor %}"}}\ninputs: {l: [1]}\n')
    with pytest.raises(InvalidInput, match=r"^r\.yaml:4: step 'a': template syntax error .*recursive loops are not allowed"):
        load_workflow_text(text, origin="r.yaml")


# ---------------------------------------------------------------------------
# Through a worker: the hostile run fails with the template's error, and another organization's run completes.


HOSTILE = """
name: hostile
steps:
  - id: a
    python: {call: "cristal.sample.checks:double", args: {x: 2}}
outputs:
  total: "{{ 9 ** (9 ** 9) }}"
"""
TRIVIAL = """
name: trivial
steps:
  - id: a
    python: {call: "cristal.sample.checks:double", args: {x: 21}}
"""


def test_a_hostile_template_fails_its_run_and_the_other_organizations_run_completes(wf_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    hostile, trivial = write(tmp_path / "hostile.yaml", HOSTILE), write(tmp_path / "trivial.yaml", TRIVIAL)
    r = wf_cli("workflow", "run", str(hostile), "--org", "acme", "--as", "eng@acme.example", "--queue", "--json")
    assert r.code == 0, r.stderr
    bad = json.loads(r.stdout)["run_id"]
    r = wf_cli("workflow", "run", str(trivial), "--org", "globex", "--as", "eng@globex.example", "--queue", "--json")
    assert r.code == 0, r.stderr
    good = json.loads(r.stdout)["run_id"]
    worker = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env=wf_cli.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # A hang guard, not a measurement: on the old code the hostile run never finished.
        done = wait_status(wf_cli, good, "eng@globex.example", {"succeeded", "failed"}, limit=120)
        assert done["status"] == "succeeded" and done["steps"][0]["output"] == 42
        failed = wait_status(wf_cli, bad, "eng@acme.example", {"succeeded", "failed"}, limit=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert failed["status"] == "failed"
    assert failed["error"] == ("outputs: template '{{ 9 ** (9 ** 9) }}' refused: 9 ** 387420489 would have about "
                               "369,693,099 digits (at most 300)")
