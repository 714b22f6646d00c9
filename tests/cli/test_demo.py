"""``cristal demo`` builds the sample company, indexes its knowledge, shows isolation, and can run twice."""

from __future__ import annotations

import json


def test_demo_runs_and_is_repeatable(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    first = cli("demo", "--json")
    assert first.code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert len(summary["organizations_created"]) == 3
    assert len(summary["users_created"]) == 10
    assert len(summary["sources_added"]) == 6
    assert all(not r["skipped"] and r["added"] > 0 for r in summary["sync"])
    results = [c["result"] for c in summary["access_checks"]]
    assert results[0].startswith("allowed") and results[1].startswith("denied") and results[2].startswith("denied")

    by_person = {(s["as"], s["query"]): [h["title"] for h in s["hits"]] for s in summary["searches"]}
    iban = "IBAN Lieferant Rheinfilter"
    assert "Lieferantenverträge – Übersicht 2025" in by_person[("lukas.weber@aozora-de.example", iban)]
    assert "Lieferantenverträge – Übersicht 2025" not in by_person[("jonas.becker@aozora-de.example", iban)]
    salaries = "Gehaltsbänder Senior Engineer"
    assert by_person[("mia.fischer@aozora-de.example", salaries)][0] == "Gehaltsbänder 2025"
    assert "Gehaltsbänder 2025" not in by_person[("lukas.weber@aozora-de.example", salaries)]
    warranty = by_person[("jonas.becker@aozora-de.example", "What is the warranty period for Sora air purifiers in Germany?")]
    assert warranty[0].startswith("Garantiebedingungen")

    research = summary["research"]
    assert research["mode"] == "extractive" and research["status"] == "complete" and research["citations"] > 0
    report = open(research["markdown"], encoding="utf-8").read()
    assert "180 EUR" in report and "150 EUR" in report and "[1]" in report
    assert open(research["html"], encoding="utf-8").read().startswith("<!DOCTYPE html>")

    workflow = summary["workflow"]
    assert workflow["status"] == "waiting" and workflow["approvers"] == ["group:management"] and workflow["claims"] > 0
    assert workflow["approve_command"].startswith("cristal approvals approve ")
    approve = cli(*workflow["approve_command"].split()[1:])
    assert approve.code == 0, approve.stderr

    operator = summary["operator"]
    assert operator["recorded_status"] == "done" and operator["replay_status"] == "complete"
    assert operator["task_done_after_replay"] is True

    agents = summary["agents"]
    assert [p["agent"] for p in agents["published"]] == ["erp-analyst", "expense-filer", "travel-expense-helper"]
    travel = [a for a in agents["asks"] if a["agent"] == "travel-expense-helper"]
    assert len(travel) == 3 and len({a["question"] for a in travel}) == 3  # German, Japanese, English
    for ask in travel:
        assert "180 EUR" in ask["answer"] and "150 EUR" in ask["answer"]
        assert {c["uri"].rsplit("/", 1)[-1] for c in ask["citations"]} == {"2025-09-15_hotelobergrenze-muenchen.eml",
                                                                          "reisekostenrichtlinie-2025.md"}
        assert all(c["quote"] for c in ask["citations"])
    assert any("ホテル" in a["answer"] for a in travel) and any("hotel cap" in a["answer"] for a in travel)
    finance, sales = (a for a in agents["asks"] if a["agent"] == "erp-analyst")
    assert finance["as"] == "lukas.weber@aozora-de.example" and sales["as"] == "jonas.becker@aozora-de.example"
    assert finance["question"] == sales["question"]
    assert finance["tool_calls"][0]["status"] == "ok" and "1284 EUR" in finance["answer"]
    assert sales["tool_calls"][0]["status"] == "refused" and "1284" not in sales["answer"]
    [filed] = [a for a in agents["asks"] if a["agent"] == "expense-filer"]
    [call] = filed["tool_calls"]
    assert call["name"] == "operate" and call["status"] == "needs_approval" and call["approval_id"] in filed["answer"]
    run = agents["operator_run"]
    assert run["waited_for"] == call["approval_id"] and run["status"] == "succeeded" and run["claim_submitted"] is True

    second = json.loads(cli("demo", "--json").stdout)
    assert second["organizations_created"] == [] and second["users_created"] == [] and second["sources_added"] == []
    assert all(r["added"] == 0 and r["updated"] == 0 and r["embedded"] == 0 for r in second["sync"])

    denied = json.loads(cli("audit", "--org", "aozora-de", "--json", "--decision", "deny").stdout)["records"]
    assert any(r["actor"].startswith("user:yuki.tanaka") for r in denied)


def test_demo_prints_tables(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = cli("demo")
    assert result.code == 0
    assert "Aozora Group" in result.stdout and "denied" in result.stdout and "Gehaltsbänder 2025" in result.stdout
    assert "Asking the agents" in result.stdout and "Expense filer" in result.stdout
