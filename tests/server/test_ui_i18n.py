"""The web app's catalogues: every string the page uses exists in English, Japanese and German.

Also that the assembled page keeps to its rules: every script is an inline block allowed
by its hash, and no script of the page ever parses HTML (``innerHTML`` and its kin).
"""

from __future__ import annotations

import re
from importlib import resources

from cristal.server.ui import LOCALES, catalogues, page

ASSETS = resources.files("cristal.server")
SCRIPTS = sorted(p.name for p in ASSETS.iterdir() if re.fullmatch(r"ui_\w+\.js", p.name))
TOOL_STATUSES = ("ok", "error", "refused")  # tool_call.finished's statuses (docs/http-api.md), shown translated


def _used_keys() -> set[str]:
    html = ASSETS.joinpath("ui.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-placeholder|-label)?="([^"]+)"', html))
    for name in SCRIPTS:
        keys |= set(re.findall(r'(?<![\w.])t\("([\w.]+)"', ASSETS.joinpath(name).read_text(encoding="utf-8")))
    keys.discard("chat.tool_status.")  # built from the status: checked below
    return keys | {f"chat.tool_status.{s}" for s in TOOL_STATUSES}


def test_every_key_is_in_all_three_catalogues_with_the_same_placeholders() -> None:
    cats = catalogues()
    assert sorted(cats) == sorted(LOCALES)
    used = _used_keys()
    assert len(used) > 50
    for locale in LOCALES:
        assert used - set(cats[locale]) == set(), f"missing in {locale}"
        assert set(cats[locale]) - used == set(), f"unused in {locale}"
        for key, value in cats[locale].items():
            assert value.strip(), (locale, key)
            assert set(re.findall(r"\{\w+\}", value)) == set(re.findall(r"\{\w+\}", cats["en"][key])), (locale, key)
    # Translated, not copied: most strings differ from the English ones.
    for locale in ("ja", "de"):
        same = [k for k in used if cats[locale][k] == cats["en"][k]]
        assert len(same) < 6, (locale, same)


def test_the_page_runs_only_its_hashed_scripts_and_never_parses_html() -> None:
    html, csp = page()
    assert "/*@include" not in html and "/*@catalogues*/" not in html
    assert html.count("<script>") == len(SCRIPTS) == csp.count("'sha256-") - 1  # and one style block
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    for name in SCRIPTS:
        source = ASSETS.joinpath(name).read_text(encoding="utf-8")
        for sink in ("<script", "</script",  # would end or confuse the inline block it is assembled into
                     "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, (name, sink)
