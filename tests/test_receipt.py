"""Receipts: three copies, the amount in figures and in Chinese capitals, both languages."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from dashboard.components.receipt import COPIES, ReceiptData, receipt_sheet
from dashboard.i18n import missing_keys


def _receipt(**kw):
    base = dict(receipt_no="S20261121-000042", kind="sale", amount=Decimal("123.45"),
                amount_in_words="壹佰贰拾叁元肆角伍分", issued_at=datetime(2026, 11, 21, 9, 30),
                operator="cashier", meter_address="202611210001", room="B1-101", building="Building 1",
                holder="张*", balance_after=Decimal("150.00"), purchase_count=8)
    base.update(kw)
    return ReceiptData(**base)


def _text(component) -> str:
    out = []

    def walk(c):
        if isinstance(c, (str, int, float)):
            out.append(str(c))
        elif isinstance(c, (list, tuple)):
            for x in c:
                walk(x)
        elif c is not None and hasattr(c, "children"):
            walk(c.children)
    walk(component)
    return " ".join(out)


@pytest.mark.parametrize("lang, copy_names", [("en", ["Customer copy", "Finance copy", "Archive copy"]),
                                              ("zh", ["第一联 用户联", "第二联 财务联", "第三联 存根联"])])
def test_a_receipt_prints_three_named_copies(lang, copy_names):
    sheet = receipt_sheet(_receipt(), lang)
    assert len(sheet.children) == len(COPIES) == 3
    text = _text(sheet)
    for name in copy_names:
        assert name in text


def test_each_copy_shows_the_amount_in_figures_and_in_words_and_the_balance_after():
    text = _text(receipt_sheet(_receipt(), "zh"))
    assert text.count("¥123.45") == 3 and text.count("壹佰贰拾叁元肆角伍分") == 3
    assert text.count("¥150.00") == 3 and "202611210001" in text and "B1-101" in text


def test_a_reversal_receipt_names_the_receipt_it_reverses():
    text = _text(receipt_sheet(_receipt(kind="reversal", reverses="S20261121-000041", amount=Decimal("-123.45")),
                               "en"))
    assert "Reversal receipt" in text and "S20261121-000041" in text


def test_receipt_texts_exist_in_both_languages():
    assert missing_keys() == {}

