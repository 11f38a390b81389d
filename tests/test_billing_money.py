"""Money rules without a database: amounts typed by people, the rounding rule, fen, capitals, receipts, personal data."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing import pii
from billing.errors import BillingError
from billing.money import amount_in_words, from_fen, parse_amount, receipt_number, round_money, to_fen
from dashboard.i18n import t


@pytest.mark.parametrize("amount, words", [
    ("123.45", "壹佰贰拾叁元肆角伍分"),
    ("0.50", "伍角"),
    ("100.00", "壹佰元整"),
    ("0.05", "伍分"),
    ("0.55", "伍角伍分"),
    ("10.00", "壹拾元整"),
    ("16.00", "壹拾陆元整"),
    ("1005.07", "壹仟零伍元零柒分"),
    ("1680.32", "壹仟陆佰捌拾元零叁角贰分"),
    ("107000.53", "壹拾万柒仟元零伍角叁分"),
    ("1409.50", "壹仟肆佰零玖元伍角"),
    ("6007.14", "陆仟零柒元壹角肆分"),
    ("325.04", "叁佰贰拾伍元零肆分"),
    ("100010.00", "壹拾万零壹拾元整"),
    ("100000001.00", "壹亿零壹元整"),
    ("0.00", "零元整"),
    ("-123.45", "负壹佰贰拾叁元肆角伍分"),
])
def test_amounts_are_written_in_chinese_capital_numerals(amount, words):
    assert amount_in_words(Decimal(amount)) == words


# The one amount parser: what a cashier, an API client or a settings file may type, and what it becomes.
@pytest.mark.parametrize("typed, value", [
    ("50", "50.00"), ("50.5", "50.50"), (" 50.50 ", "50.50"), ("12.300", "12.30"), (".5", "0.50"), ("50.", "50.00"),
    ("¥50", "50.00"), ("￥ 50.5", "50.50"), ("\u300050\u3000", "50.00"),
    ("５０．５", "50.50"), ("５０。５", "50.50"), ("５０", "50.00"),  # full-width, Chinese full stops
    (7, "7.00"), (Decimal("0.01"), "0.01"), (Decimal("12.300"), "12.30"), ("100000", "100000.00"),
])
def test_an_amount_typed_plainly_becomes_an_exact_decimal_to_the_fen(typed, value):
    assert parse_amount(typed) == Decimal(value) and parse_amount(typed).as_tuple().exponent == -2


@pytest.mark.parametrize("typed, code", [
    (None, "amount_missing"), ("", "amount_missing"), ("   ", "amount_missing"), ("¥", "amount_missing"),
    ("0", "amount_zero"), ("0.00", "amount_zero"), ("-0", "amount_zero"),
    ("-5", "amount_negative"), (-5, "amount_negative"),
    ("abc", "amount_not_a_number"), ("NaN", "amount_not_a_number"), ("Infinity", "amount_not_a_number"),
    (Decimal("NaN"), "amount_not_a_number"), ("+50", "amount_not_a_number"), ("5 0", "amount_not_a_number"),
    ("٥", "amount_not_a_number"), ("٥٠.٥", "amount_not_a_number"), ("५०", "amount_not_a_number"),
    ("5\x000", "amount_not_a_number"), ("=1+1", "amount_not_a_number"), (True, "amount_not_a_number"),
    (12.5, "amount_not_a_number"), ([50], "amount_not_a_number"), ({"yuan": 50}, "amount_not_a_number"),
    ("50,5", "amount_decimal_comma"), ("５０，５", "amount_decimal_comma"), ("1,000,5", "amount_decimal_comma"),
    ("1,000", "amount_thousands_separator"), ("1,000.50", "amount_thousands_separator"),
    ("１，０００", "amount_thousands_separator"),
    ("1e3", "amount_exponent"), ("1E+28", "amount_exponent"), ("1e30", "amount_exponent"),
    (Decimal("1E+3"), "amount_exponent"), (Decimal("1E+30"), "amount_exponent"),  # a JSON number like 1e3
    ("12.345", "amount_too_precise"), (Decimal("0.001"), "amount_too_precise"),
    ("100000.01", "amount_too_large"), ("1" * 39, "amount_too_large"), (10 ** 40, "amount_too_large"),
    pytest.param(10 ** 5000, "amount_too_large", id="ten-to-the-5000"), ("1" * 41, "amount_too_long"),
])
def test_a_bad_amount_is_refused_with_its_own_message_in_both_languages(typed, code):
    with pytest.raises(BillingError) as err:
        parse_amount(typed)
    assert err.value.code == code
    en, zh = err.value.message("en"), err.value.message("zh")
    assert en and zh and en != zh and "{" not in en + zh


def test_a_refused_amount_message_shows_what_was_read():
    with pytest.raises(BillingError) as err:
        parse_amount("50,5")
    assert "50,5" in err.value.message("en") and "50,5" in err.value.message("zh")
    with pytest.raises(BillingError) as err:
        parse_amount(None)
    assert err.value.message("en") == "Enter an amount." and "None" not in err.value.message("zh")


def test_a_refund_form_says_a_refund_amount_must_be_positive():
    with pytest.raises(BillingError) as err:
        parse_amount("-20", negative_code="refund_amount_negative")
    assert "refund amount must be positive" in err.value.message("en") and "use a refund" not in err.value.message("en")


def test_prices_read_four_decimals_and_thresholds_may_be_zero_with_the_same_parser():
    assert parse_amount("0.5883", decimals=4, maximum=Decimal("100")) == Decimal("0.5883")
    assert parse_amount("０．６", decimals=4, maximum=Decimal("100")) == Decimal("0.6000")
    assert parse_amount("0", allow_zero=True) == Decimal("0.00")
    for bad, code in (("0.58831", "amount_too_precise"), ("100.0001", "amount_too_large"),
                      ("0,6", "amount_decimal_comma")):
        with pytest.raises(BillingError) as err:
            parse_amount(bad, decimals=4, maximum=Decimal("100"))
        assert err.value.code == code


def test_the_one_rounding_rule_rounds_halves_away_from_zero():
    assert round_money(Decimal("2.345")) == Decimal("2.35")
    assert round_money(Decimal("2.344999")) == Decimal("2.34")
    assert round_money(Decimal("-2.345")) == Decimal("-2.35")


def test_fen_and_yuan_convert_exactly():
    assert to_fen(Decimal("123.45")) == 12345 and from_fen(12345) == Decimal("123.45")
    with pytest.raises(ValueError):
        to_fen(Decimal("0.001"))


def test_receipt_numbers_carry_the_kind_the_local_day_and_the_entry():
    assert receipt_number("sale", 42, dt.date(2026, 11, 21)) == "S20261121-000042"
    assert receipt_number("reversal", 7, dt.date(2026, 1, 2)) == "V20260102-000007"


def test_a_national_id_is_encrypted_at_rest_and_shown_masked():
    key = bytes(range(32))
    stored = pii.encrypt_national_id(key, "11010519491231002X")
    assert "11010519491231002X" not in stored and stored.startswith("v1:")
    assert pii.decrypt_national_id(key, stored) == "11010519491231002X"
    assert pii.mask_national_id("11010519491231002X") == "110105********002X"
    with pytest.raises(ValueError):
        pii.decrypt_national_id(bytes(32), stored)


@pytest.mark.parametrize("bad", ["110105194912310021", "1101051949123100", "11010519491231002Y", ""])
def test_a_national_id_with_a_wrong_check_character_or_length_is_refused(bad):
    with pytest.raises(BillingError) as err:
        pii.normalize_national_id(bad)
    assert err.value.code == "national_id_invalid"


def test_every_billing_message_exists_in_both_languages():
    from dashboard.i18n import catalog
    en = {k for k in catalog("en") if k.startswith("billing.")}
    zh = {k for k in catalog("zh") if k.startswith("billing.")}
    assert en == zh and len(en) > 60
    assert t("billing.error.meter_unknown", "zh", meter="1") != t("billing.error.meter_unknown", "en", meter="1")
