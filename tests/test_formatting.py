"""Money and energy as people read them (core.formatting): the same digits in both languages, exact money."""
from __future__ import annotations

import math
from decimal import Decimal

import pandas as pd
import pytest

from core.formatting import energy_value, format_energy, format_money, money_cents, plain_money


@pytest.mark.parametrize("amount, shown", [
    (Decimal("1234.5"), "¥1,234.50"),
    (Decimal("0"), "¥0.00"),
    (Decimal("-100"), "−¥100.00"),
    (Decimal("1E+2"), "¥100.00"),
    (Decimal("1.005"), "¥1.01"),                 # halves away from zero, as billing rounds
    (Decimal("-1.005"), "−¥1.01"),
    (Decimal("-0.004"), "¥0.00"),                # no "−¥0.00"
    (Decimal("123456789.123456789"), "¥123,456,789.12"),
    (Decimal("1E+30"), "¥1," + ",".join(["000"] * 10) + ".00"),
    (7, "¥7.00"),
    ("12.3", "¥12.30"),
])
def test_money_reads_with_two_decimals_thousands_and_the_currency_after_a_minus(amount, shown):
    assert format_money(amount) == shown


@pytest.mark.parametrize("amount", [None, Decimal("NaN"), Decimal("Infinity"), "not money", pd.NA])
def test_money_nobody_knows_reads_as_a_dash(amount):
    assert format_money(amount) == "—"
    assert plain_money(amount) is None


def test_a_signed_amount_shows_plus_for_a_gain_minus_for_a_loss_and_nothing_for_zero():
    assert [format_money(Decimal(v), sign=True) for v in ("10", "-100", "0")] == ["+¥10.00", "−¥100.00", "¥0.00"]


def test_money_without_the_currency_is_the_number_alone():
    assert format_money(Decimal("-1234.5"), currency=False) == "−1,234.50"


def test_a_float_amount_is_read_as_written_not_as_its_binary_value():
    assert format_money(2.675) == "¥2.68"          # the binary double is 2.67499999...
    assert format_money(0.1 + 0.2) == "¥0.30"


def test_money_for_machines_is_exact_fen_without_separators():
    assert [plain_money(v) for v in (Decimal("1E+2"), Decimal("-1234.5"), Decimal("2.675"), 0)] == \
        ["100.00", "-1234.50", "2.68", "0.00"]
    assert money_cents(Decimal("2.675")) == Decimal("2.68")


@pytest.mark.parametrize("kwh, decimals, shown", [
    (1234.567, 2, "1,234.57 kWh"),
    (0, 2, "0.00 kWh"),
    (-0.0, 2, "0.00 kWh"),
    (-3.2, 1, "−3.2 kWh"),
    (Decimal("1E+2"), 2, "100.00 kWh"),
    (Decimal("0.125"), 2, "0.13 kWh"),
    (1e12, 0, "1,000,000,000,000 kWh"),
    (12, 3, "12.000 kWh"),
])
def test_energy_reads_in_kwh_with_thousands_and_the_decimals_asked_for(kwh, decimals, shown):
    assert format_energy(kwh, decimals) == shown


@pytest.mark.parametrize("kwh", [None, math.nan, pd.NA, math.inf, "x", Decimal("NaN")])
def test_energy_nobody_knows_reads_as_a_dash(kwh):
    assert format_energy(kwh) == "—"


def test_energy_as_a_number_is_rounded_or_none():
    assert energy_value(12.345678) == 12.35
    assert energy_value(pd.NA) is None and energy_value(math.nan) is None
    assert format_energy(1234.5, 1, unit=False) == "1,234.5"
