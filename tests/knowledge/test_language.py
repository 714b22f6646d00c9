"""detect_language: Japanese by script, German vs English by words and spelling."""

from __future__ import annotations

import pytest

from cristal.knowledge.language import detect_language

ENGLISH = [
    "The quarterly results show that revenue grew by four percent compared with the previous year.",
    "Please submit your receipts within thirty days of the trip.",
    "Employees who work from home must use the company VPN at all times.",
    "Annual Report 2023",
    "Meeting Notes",
    "Employee Handbook",
    "Security Policy",
    "Travel Expense Policy",
    "Onboarding Guide for New Hires",
    "Quarterly Sales Review",
    "Customer Service Guidelines",
    "Password Reset Procedure",
    "Incident Response Plan",
    "Release Notes",
]
GERMAN = [
    "Die Quartalszahlen zeigen, dass der Umsatz um vier Prozent gestiegen ist.",
    "Bitte reichen Sie Ihre Belege innerhalb von dreißig Tagen ein.",
    "Mitarbeiter im Homeoffice müssen jederzeit das VPN des Unternehmens nutzen.",
    "Reisekostenrichtlinie",
    "Datenschutzerklärung",
    "Protokoll der Vorstandssitzung",
    "Mitarbeiterhandbuch",
    "Sicherheitsrichtlinie",
    "Quartalsbericht 2023",
    "Urlaubsantrag",
    "Besprechungsnotizen",
    "Einarbeitung neuer Mitarbeiter",
    "Betriebsvereinbarung",
    "Gehaltsabrechnung",
]
JAPANESE = [
    "お疲れ様です。明日の会議は十時からです。",
    "出張の旅費は、所定の申請書により精算する。",
    "議事録",
    "会議の議事録",
    "出張旅費規程",
    "セキュリティポリシー",
    "2024年度 予算計画",
    "新入社員オンボーディングガイド",
    "Cristal 導入ガイド",
    "売上報告書（第3四半期）",
    "個人情報保護方針",
    "本システムは Microsoft 365 と Google Workspace に対応しています。",
]
UNDETERMINED = [
    "",
    "   ",
    "12345 2024-01-01 | 42",
    "Le rapport annuel est disponible pour tous les employés dans le portail.",
    "El informe anual está disponible para los empleados en el portal.",
    "Годовой отчёт компании",
    "연간 보고서",
    "这是一个关于公司年度预算和销售目标的长篇中文文档，我们需要检查所有部门的费用并确认预算分配情况是否合理以及是否符合公司政策要求。",
]


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", GERMAN)
def test_german(text: str) -> None:
    assert detect_language(text) == "de"


@pytest.mark.parametrize("text", JAPANESE)
def test_japanese(text: str) -> None:
    assert detect_language(text) == "ja"


@pytest.mark.parametrize("text", UNDETERMINED)
def test_undetermined(text: str) -> None:
    assert detect_language(text) == "und"


def test_mixed_document_goes_by_the_majority() -> None:
    german_with_english_terms = "Das Meeting zum Sprint Review findet am Montag statt. Bitte das Dashboard vorher prüfen."
    assert detect_language(german_with_english_terms) == "de"
    assert detect_language("We discussed the Betriebsrat proposal and the Kündigungsfrist in detail.") == "en"


def test_long_text_is_fast() -> None:
    import time

    text = "Die Mitarbeiter der Firma arbeiten an dem neuen Projekt. " * 50_000
    started = time.perf_counter()
    assert detect_language(text) == "de"
    assert time.perf_counter() - started < 0.1
