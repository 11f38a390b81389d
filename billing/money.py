"""Money rules of billing: amounts as exact Decimal yuan, the one rounding rule, fen, capitals (大写金额), receipt numbers."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing.errors import BillingError

CENT = Decimal("0.01")
# The meter's wire format carries amounts as uint32 fen; one purchase also stays far below it.
MAX_AMOUNT = Decimal("100000.00")


def round_money(value: Decimal) -> Decimal:
    """The one rounding rule: to the fen, halves away from zero (四舍五入). Used only where a
    computed value (a shadow-billing estimate, a price times energy) becomes money."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(value) -> Decimal:
    """An amount a cashier or an API client typed: a positive number of yuan with at most two decimals.

    Accepts str, int and Decimal; a float is refused (it is not exact). Raises BillingError.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise BillingError("amount_not_a_number", value=value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("¥", "").replace("￥", "")
        if not text:
            raise BillingError("amount_missing")
    elif isinstance(value, (int, Decimal)):
        text = value
    else:
        raise BillingError("amount_not_a_number", value=value)
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise BillingError("amount_not_a_number", value=value) from None
    if not amount.is_finite():
        raise BillingError("amount_not_a_number", value=value)
    if amount == 0:
        raise BillingError("amount_zero")
    if amount < 0:
        raise BillingError("amount_negative", amount=value)
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(CENT):
        raise BillingError("amount_too_precise", amount=value)
    amount = amount.quantize(CENT)
    if amount > MAX_AMOUNT:
        raise BillingError("amount_too_large", amount=amount, limit=MAX_AMOUNT)
    return amount


def to_fen(amount: Decimal) -> int:
    """Exact yuan (two decimals at most) to integer fen for the wire."""
    q = Decimal(amount).quantize(CENT)
    if q != Decimal(amount):
        raise ValueError(f"{amount} has more than two decimals")
    return int(q * 100)


def from_fen(fen: int) -> Decimal:
    return (Decimal(int(fen)) / 100).quantize(CENT)


# ---------------------------------------------------------------------------------------------
# 大写金额, following the People's Bank rules for filling in bills: 壹拾 for a leading ten, one 零
# for any run of zeros inside the number, 元 then 零 when the 角 is zero but the 分 is not, 整
# after 元 (none after 角), 负 before a negative amount.
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SECTION_UNITS = ("", "万", "亿", "万亿")


def _section(n: int) -> str:
    """1..9999 in capitals, with 零 for inner zeros (1005 -> 壹仟零伍)."""
    out, zero, started = "", False, False
    for power, unit in ((3, "仟"), (2, "佰"), (1, "拾"), (0, "")):
        d = n // 10 ** power % 10
        if d == 0:
            zero = zero or started
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[d] + unit
        started = True
    return out


def _integer(n: int) -> str:
    sections = []
    while n:
        sections.append(n % 10000)
        n //= 10000
    if len(sections) > len(_SECTION_UNITS):
        raise ValueError("amount too large for capitals")
    out, gap = "", False
    for i in range(len(sections) - 1, -1, -1):
        s = sections[i]
        if s == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or s < 1000):
            out += "零"
        out += _section(s) + _SECTION_UNITS[i]
        gap = False
    return out


def amount_in_words(amount: Decimal) -> str:
    """Chinese capital numerals of a yuan amount: 123.45 -> 壹佰贰拾叁元肆角伍分, 0.50 -> 伍角, 100 -> 壹佰元整."""
    amount = Decimal(amount)
    if amount != amount.quantize(CENT):
        raise ValueError(f"{amount} has more than two decimals")
    sign = "负" if amount < 0 else ""
    fen_total = abs(int(amount.quantize(CENT) * 100))
    yuan, jiao, fen = fen_total // 100, fen_total // 10 % 10, fen_total % 10
    if fen_total == 0:
        return "零元整"
    out = ""
    if yuan:
        out = _integer(yuan) + "元"
        if jiao == 0 and fen == 0:
            return sign + out + "整"
        if yuan % 10 == 0 and jiao:
            out += "零"
    if jiao:
        out += _DIGITS[jiao] + "角"
    elif yuan:
        out += "零"
    if fen:
        out += _DIGITS[fen] + "分"
    return sign + out


# ---------------------------------------------------------------------------------------------
RECEIPT_PREFIX = {"sale": "S", "refund": "R", "reversal": "V", "transfer_in": "T", "closing_refund": "C"}


def receipt_number(kind: str, entry_id: int, local_day: dt.date) -> str:
    """S20261121-000042: kind letter, the site's local date, the entry's id (unique, never reused)."""
    return f"{RECEIPT_PREFIX[kind]}{local_day:%Y%m%d}-{entry_id:06d}"
