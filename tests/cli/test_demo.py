"""``cristal demo`` builds the sample company and shows isolation, and can run twice."""

from __future__ import annotations

import json


def test_demo_runs_and_is_repeatable(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("demo", "--json")
    assert first.code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert len(summary["organizations_created"]) == 3
    assert len(summary["users_created"]) == 10
    results = [c["result"] for c in summary["access_checks"]]
    assert results[0].startswith("allowed") and results[1].startswith("denied") and results[2].startswith("denied")

    second = json.loads(cli("demo", "--json").stdout)
    assert second["organizations_created"] == [] and second["users_created"] == []

    denied = json.loads(cli("audit", "--org", "aozora-de", "--json", "--decision", "deny").stdout)["records"]
    assert any(r["actor"].startswith("user:yuki.tanaka") for r in denied)


def test_demo_prints_tables(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("demo")
    assert result.code == 0
    assert "Aozora Group" in result.stdout and "denied" in result.stdout
