"""Keyword tokens in three languages."""

from cristal.knowledge.tokenize import terms, tokens


def test_english_is_stemmed_without_stop_words() -> None:
    assert tokens("The travel expenses were approved", "en") == ["travel", "expens", "approv"]


def test_german_folds_sharp_s_and_umlauts_consistently() -> None:
    assert tokens("Straße", "de") == tokens("STRASSE", "de")
    assert tokens("Reisekosten müssen", "de") == ["reisekost", "muss"]


def test_japanese_is_segmented_and_particles_dropped() -> None:
    out = tokens("出張旅費の精算は翌月5日までに申請してください", "ja")
    assert "出張" in out and "精算" in out and "申請" in out
    assert "の" not in out and "は" not in out


def test_mixed_scripts_and_fullwidth() -> None:
    out = tokens("Ｓｏｒａ空気清浄機の保証", "ja")
    assert out[0] == "sora" and "保証" in out


def test_terms_is_space_joined() -> None:
    assert terms("Approved budgets", "en") == "approv budget"
