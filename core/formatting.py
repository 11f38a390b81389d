"""How money and energy read on a screen, a receipt and an API: one helper each, the same digits in every language.

Money: Decimal yuan to the fen, halves away from zero (the rounding rule of billing.money.round_money), thousands
separated by commas, the currency sign "¥" after a true minus sign ("−¥1,234.50"); never through a float.
Energy: kWh with a given number of decimals (2: the registers' 0.01 kWh resolution), thousands separated, " kWh"
after the number in both languages (the meters and the glossary say kWh; 度 is only spoken).
Nothing known (None, NaN, pandas' NA) reads as an em dash in both."""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from core.money import CENT

NOTHING = "—"
CURRENCY = "¥"
MINUS = "−"          # U+2212: a true minus sign, as wide as the plus
ENERGY_UNIT = "kWh"


def _decimal(amount) -> Decimal | None:
    """Decimal of an amount (Decimal, int, a numeric string; a float by its shortest repr, so 2.675 stays 2.675 and
    not the binary 2.67499...); None for nothing or not a finite number."""
    if amount is None or isinstance(amount, bool):
        return None
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def money_cents(amount) -> Decimal | None:
    """An amount to the fen by the one rounding rule (halves away from zero); None when nothing is known."""
    value = _decimal(amount)
    if value is None:
        return None
    cents = _quantize(value, CENT)
    return abs(cents) if cents.is_zero() else cents   # -0.004 is no debt: 0.00


def _quantize(value: Decimal, unit: Decimal) -> Decimal:
    with localcontext() as ctx:   # however many digits the number has: 28 would refuse 1E+30 to the fen
        ctx.prec = max(ctx.prec, value.adjusted() - unit.as_tuple().exponent + 2)
        return value.quantize(unit, rounding=ROUND_HALF_UP)


def format_money(amount, *, sign: bool = False, currency: bool = True) -> str:
    """Money for people: "¥1,234.50", "−¥1,234.50"; with `sign` a gain shows "+¥10.00" (zero stays "¥0.00");
    without `currency` the number alone ("1,234.50"). "—" when nothing is known."""
    value = money_cents(amount)
    if value is None:
        return NOTHING
    front = MINUS if value < 0 else "+" if sign and value > 0 else ""
    return f"{front}{CURRENCY if currency else ''}{abs(value):,.2f}"


def plain_money(amount) -> str | None:
    """Money for machines (API JSON, CSV): the exact fen as "-1234.50", no separators or sign; None stays None."""
    value = money_cents(amount)
    return None if value is None else f"{value:.2f}"


def energy_value(kwh, decimals: int = 2) -> float | None:
    """Energy as a number rounded to `decimals` (a grid cell, a workbook); None when nothing is known."""
    if kwh is None or isinstance(kwh, bool):
        return None
    try:
        value = float(kwh)
    except (TypeError, ValueError):
        return None
    return round(value, decimals) if math.isfinite(value) else None


def format_energy(kwh, decimals: int = 2, *, unit: bool = True) -> str:
    """Energy for people: "1,234.56 kWh" (without `unit`: "1,234.56"); "—" when nothing is known."""
    if isinstance(kwh, Decimal):
        value = _quantize(kwh, Decimal(1).scaleb(-decimals)) if kwh.is_finite() else None
    else:
        value = energy_value(kwh, decimals)
    if value is None:
        return NOTHING
    if value == 0:
        value = abs(value)  # -0.0 reads 0.00
    text = f"{value:,.{decimals}f}".replace("-", MINUS)
    return f"{text} {ENERGY_UNIT}" if unit else text
