"""Extractive research (no model): citations hold, access is respected, disagreements surface, bad input is clear."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.errors import AccessDenied, InvalidInput, NotFound
from cristal.knowledge.schema import Document
from cristal.research import Budget, render_html, run_research
from tests.research.company import FINANCE, MEMBER, SECRETS


def assert_citations_hold(db: Database, result) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
    with db.session() as s:
        texts = dict(s.execute(select(Document.id, Document.text)).all())
    assert result.citations, "a report with findings cites something"
    for c in result.citations:
        assert c["quote"] in texts[c["doc_id"]]
        assert texts[c["doc_id"]][c["start"] : c["end"]] == c["quote"]
        assert f"[{c['n']}]" in result.report
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", result.report)}
    assert cited <= {c["n"] for c in result.citations}


def test_conflicting_sources_are_cited_both(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "What is the hotel cap in Munich?", settings=settings, store=store)
    assert (result.mode, result.status, result.lang) == ("extractive", "complete", "en")
    assert_citations_hold(rdb, result)
    assert "150 EUR" in result.report and "180 EUR" in result.report
    (d,) = [d for d in result.disagreements if d["kind"] == "money"]
    assert {v["value"] for v in d["values"]} == {"150 EUR", "180 EUR"}
    assert all(v["n"] for v in d["values"])
    assert "Disagreements between sources" in result.report
    for secret in SECRETS:  # the finance document (240 EUR) is never cited or revealed to a member
        assert secret not in result.report
    assert all("finance" not in c["uri"] for c in result.citations)


def test_what_finance_may_read_depends_on_who_asks(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(FINANCE), "What is the hotel cap in Munich for board trips?", settings=settings, store=store)
    assert_citations_hold(rdb, result)
    assert any("bank.md" in c["uri"] for c in result.citations)


def test_cross_lingual_answer_in_the_question_language(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "How long is the warranty for Sora air purifiers in Germany?", settings=settings, store=store)
    assert_citations_hold(rdb, result)
    assert "36 Monate" in result.report
    assert "## Summary" in result.report  # English template, German quotes
    assert "Quotes are given in the language of their source." in result.report


def test_lang_override_and_japanese(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    ja = run_research(rdb, who(MEMBER), "出張旅費の精算期限はいつですか？", settings=settings, store=store)
    assert ja.lang == "ja" and "## 要約" in ja.report
    assert_citations_hold(rdb, ja)
    de = run_research(rdb, who(MEMBER), "What is the hotel cap in Munich?", settings=settings, store=store, lang="de")
    assert de.lang == "de" and "## Zusammenfassung" in de.report and "Widersprüche zwischen Quellen" in de.report


def test_multi_part_question_gets_sub_questions(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    q = "What is the per diem for meals and how long is the filter warranty?"
    result = run_research(rdb, who(MEMBER), q, settings=settings, store=store)
    assert len(result.subquestions) == 3 and result.subquestions[0] == q
    assert result.stats["searches"] >= 3
    assert "28 EUR" in result.report and "6 Monaten" in result.report
    assert_citations_hold(rdb, result)


def test_poisoned_document_is_data_not_instructions(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "What does the staff newsletter say about the Munich hotel cap?",
                          settings=settings, store=store)
    assert_citations_hold(rdb, result)
    assert all("IGNORE ALL PREVIOUS" not in c["quote"] for c in result.citations)
    assert "evil.example" not in result.report
    assert result.suspicious_passages >= 1
    assert "possible prompt injection" in result.report


@pytest.mark.parametrize("question, message", [
    ("   ", "empty question"),
    ("Какой лимит на отель в Мюнхене?", "language or script is not supported"),
])
def test_bad_questions(rdb, who, settings, store, question, message) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with pytest.raises(InvalidInput, match=message) as info:
        run_research(rdb, who(MEMBER), question, settings=settings, store=store)
    assert "\n" not in str(info.value)


def test_unsupported_script_with_forced_language_runs(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "Какой лимит на отель в Мюнхене? hotel cap Munich", settings=settings, store=store, lang="en")
    assert result.lang == "en" and result.status in ("complete", "no_results")


def test_no_searchable_sources(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with pytest.raises(InvalidInput, match="no searchable sources"):
        run_research(rdb, who("eng@empty.example", "empty"), "What is the hotel cap?", settings=settings, store=store)


def test_no_results_the_user_may_see(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who("eng@locked.example", "locked"), "What is the hotel cap in Munich?", settings=settings, store=store)
    assert result.status == "no_results" and result.citations == []
    assert "999" not in result.report and "No documents you may read match this question." in result.report


def test_operator_cannot_research(rdb, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.identity.principal import Principal

    with pytest.raises(AccessDenied):
        run_research(rdb, Principal.installation("ops"), "What is the hotel cap?", settings=settings, store=store)


def test_budget_exhausted_mid_run_keeps_what_was_gathered_and_resumes(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    q = "What is the per diem for meals and how long is the filter warranty?"
    partial = run_research(rdb, who(MEMBER), q, settings=settings, store=store, budget=Budget(max_steps=1))
    assert partial.status == "partial" and "step budget exhausted" in partial.error
    assert partial.stats["searches"] == 1 and partial.citations  # the first search's findings are reported
    assert "Partial report" in partial.report and partial.run_id in partial.report
    assert_citations_hold(rdb, partial)
    with pytest.raises(AccessDenied, match="belongs to someone else"):
        run_research(rdb, who(FINANCE), None, settings=settings, store=store, resume=partial.run_id)
    done = run_research(rdb, who(MEMBER), None, settings=settings, store=store, resume=partial.run_id)
    assert done.run_id == partial.run_id and done.status == "complete"
    assert done.stats["searches"] >= 3 and "6 Monaten" in done.report
    queries = [s["query"] for s in store.load(done.run_id)[0].searches]
    assert len(queries) == len(set(queries))  # no search was repeated


def test_unknown_run_id(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    with pytest.raises(NotFound):
        run_research(rdb, who(MEMBER), None, settings=settings, store=store, resume="0123456789ab")
    with pytest.raises(InvalidInput):
        run_research(rdb, who(MEMBER), None, settings=settings, store=store, resume="../../etc")


def test_html_is_standalone_and_escaped(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "What is the hotel cap in Munich?", settings=settings, store=store).as_dict()
    page = render_html(result)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http://" not in page.replace("http-equiv", "")
    for c in result["citations"]:
        assert f'id="cite-{c["n"]}"' in page and f'href="#cite-{c["n"]}"' in page
    hostile = dict(result, question="<script>alert(1)</script>",
                   citations=[dict(result["citations"][0], quote='"><img src=x onerror=alert(1)>')])
    page = render_html(hostile)
    assert "<script>alert" not in page and "<img" not in page and "&lt;img" in page


def test_demo_research_over_the_sample_company(tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.knowledge.sync import sync_source
    from cristal.research.demo import demo_research
    from cristal.sample.company import load_company
    from cristal.sample.knowledge import connect_sources
    from tests.research.company import INSTALLATION

    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    db.upgrade()
    with db.session() as s:
        load_company(s, INSTALLATION)
        connect_sources(s, INSTALLATION, tmp_path)
    sync_source(db, INSTALLATION, "aozora-de", "documents")
    summary = demo_research(db, tmp_path)
    db.dispose()
    assert summary["status"] == "complete" and summary["mode"] == "extractive" and summary["citations"] >= 2
    assert "180 EUR vs 150 EUR" in summary["disagreements"]
    report = (tmp_path / "reports" / "research-demo.md").read_text(encoding="utf-8")
    assert "180 EUR" in report and "Nordlicht" not in report
    assert (tmp_path / "reports" / "research-demo.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_answer_types_anchor_values_across_languages() -> None:
    from cristal.research.extract import answer_types, has_answer_type

    assert answer_types("What is the warranty period for Sora air purifiers in Germany?") == {"duration"}
    assert answer_types("When will the Sora Pro 2 go on sale in Japan?") == {"date"}
    assert answer_types("つくばR&Dセンター増床の投資額はいくらですか？") == {"money"}
    assert answer_types("Wie viele Sora S300 wurden verkauft?") == {"count"}
    assert answer_types("Who wrote the report?") == frozenset()
    duration = frozenset({"duration"})
    assert has_answer_type("eine Herstellergarantie von 36 Monaten ab Kaufdatum", duration)
    assert not has_answer_type("Garantiegeber: Aozora Deutschland GmbH, Immermannstraße 45, 40210 Düsseldorf", duration)
    assert has_answer_type("新発売日：2026年4月13日", frozenset({"date"}))
    assert not has_answer_type("Sora Pro 2 | 9,000台", frozenset({"date"}))
    assert has_answer_type("| EBIT | 412.000 EUR | 298.000 EUR |", frozenset({"money"}))


def test_a_value_after_a_colon_or_an_abbreviation_stays_in_its_sentence() -> None:
    from cristal.research.extract import sentences

    text = "- Abwesenheit von 24 Stunden: 28 EUR pro Tag\nDer Umsatz stieg auf 1,33 Mio. EUR im Quartal. Danach sank er."
    assert [s.text for s in sentences(text)] == [
        "Abwesenheit von 24 Stunden: 28 EUR pro Tag", "Der Umsatz stieg auf 1,33 Mio. EUR im Quartal.", "Danach sank er."]


def test_cross_lingual_summary_leads_with_the_value_asked_for(rdb, who, settings, store) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = run_research(rdb, who(MEMBER), "What is the warranty period for Sora air purifiers in Germany?",
                          settings=settings, store=store)
    summary = result.report.split("## Summary", 1)[1].split("##", 1)[0]
    assert "36 Monate" in summary  # the German sentence with the duration, not the filter's 6 months
    assert result.citations[0]["quote"].find("36 Monate") >= 0
