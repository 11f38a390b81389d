"""One word per thing: the catalogs use docs/GLOSSARY.md's words and none of the words it rejects."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.i18n import LANGUAGES, catalog, t

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "GLOSSARY.md"


def _rejected() -> list[tuple[str, str, str]]:
    """(language, rejected word, word to use) from the glossary's "Rejected words" list."""
    section = GLOSSARY.read_text(encoding="utf-8").split("## Rejected words", 1)[1]
    return [(m[1], m[2].strip(), m[3].strip()) for m in re.finditer(r"^- (en|zh): (.+?) → (.+)$", section, re.M)]


def test_the_glossary_lists_rejected_words_in_both_languages():
    languages = {lang for lang, _, _ in _rejected()}
    assert languages == set(LANGUAGES) and len(_rejected()) >= 10


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_catalog_text_uses_a_word_the_glossary_rejects(lang):
    texts = catalog(lang)
    found = [f"{key}: {word!r} (use {use!r})" for rej_lang, word, use in _rejected() if rej_lang == lang
             for key, text in texts.items() if word in text]
    assert not found


def test_lost_contact_is_one_word_on_every_page():
    for lang in LANGUAGES:
        words = {t(k, lang).lower() for k in ("status.lost", "overview.kpi_lost", "overview.state_lost",
                                              "cashier.state.lost")}
        assert len(words) == 1, (lang, words)
    assert t("overview.state_lost", "zh") == "失联"


def test_a_command_acknowledged_and_an_entry_confirmed_are_different_words():
    for lang in LANGUAGES:
        assert t("cashier.state.acked", lang) != t("cashier.state.confirmed", lang)
    assert (t("cashier.state.acked", "zh"), t("cashier.state.confirmed", "zh")) == ("已执行", "已确认")


def test_a_refund_is_tuifei_on_the_form_and_on_its_receipt():
    assert t("cashier.refund", "zh") == "退费" and t("receipt.kind.refund", "zh") == "退费收据"
    assert t("billing.kind.refund", "zh") == "退费" and t("audit.actions.billing.refund", "zh") == "退费"


def test_the_status_page_is_called_system_status():
    assert (t("nav.status", "en"), t("status.heading", "en")) == ("System status", "System status")
    assert (t("nav.status", "zh"), t("status.heading", "zh")) == ("系统状态", "系统状态")


def test_tariff_modes_are_named_with_the_glossarys_word_for_tariff():
    assert all(t(f"tariffs.mode.{m}", "zh").endswith("电价") for m in ("flat", "tou", "tiered"))
