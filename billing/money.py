"""Money rules of billing: amounts as exact Decimal yuan, the one rounding rule, fen, capitals (大写金额), receipt numbers."""
from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from billing.errors import BillingError
from core.money import CENT, from_fen, to_fen  # noqa: F401  (billing reads them from here)
# The meter's wire format carries amounts as uint32 fen; one purchase also stays far below it.
MAX_AMOUNT = Decimal("100000.00")


def round_money(value: Decimal) -> Decimal:
    """The one rounding rule: to the fen, halves away from zero (四舍五入). Used only where a
    computed value (a shadow-billing estimate, a price times energy) becomes money."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# Characters a Chinese keyboard or an input method types for the digits and the decimal point: taken as
# the ASCII ones because the value they write is certain. A comma (either width) is never guessed at: "50,5"
# may mean 50.5 or 505, "1,000" may be 1000 or 1.000.
_FULL_WIDTH = str.maketrans({**{chr(0xFF10 + d): str(d) for d in range(10)}, "．": ".", "。": "."})
_PLAIN = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_THOUSANDS = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
_CURRENCY = ("¥", "￥")
_MAX_TEXT = 40          # longer than any amount's digits: refused before Decimal ever sees it


def parse_amount(value, *, decimals: int = 2, maximum: Decimal = MAX_AMOUNT, allow_zero: bool = False,
                 negative_code: str = "amount_negative") -> Decimal:
    """The project's one parser of an amount a person or a client typed: yuan (or yuan per kWh with
    decimals=4), returned as a Decimal with exactly `decimals` places.

    Accepted: ASCII digits with an optional point and at most `decimals` decimals (trailing zeros
    beyond them are fine), surrounding spaces, a "¥"/"￥" in front, full-width digits and a full-width or
    ideographic full stop (５０．５, ５０。５). int and Decimal are read by their digits. Refused, each with a
    BillingError whose message shows what was read: nothing (amount_missing), a float (not exact), a
    comma ("50,5" and "1,000" are ambiguous), an exponent ("1e3"), other scripts' digits ("٥"), zero
    (unless allow_zero), a negative amount (`negative_code`, so a refund form can word it), too many
    decimals, and anything above `maximum`.
    """
    if value is None:
        raise BillingError("amount_missing")
    if isinstance(value, bool) or isinstance(value, float):
        raise BillingError("amount_not_a_number", value=_shown(value))   # a float is not exact
    if isinstance(value, int):
        if abs(value).bit_length() > 128:     # str() of a huge int is slow (and refused past 4300 digits)
            raise BillingError("amount_too_large", amount="…", limit=maximum)
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise BillingError("amount_not_a_number", value=_shown(value))
        text = str(value)                     # a Decimal from JSON like 1E+3 keeps its exponent: refused below
    elif isinstance(value, str):
        text = value.strip().strip("\u3000").strip()
        for sign in _CURRENCY:
            if text.startswith(sign):
                text = text[len(sign):].strip()
                break
        if not text:
            raise BillingError("amount_missing")
    else:
        raise BillingError("amount_not_a_number", value=_shown(value))
    shown = _shown(value)
    if len(text) > _MAX_TEXT:
        raise BillingError("amount_too_long", value=shown)
    text = text.translate(_FULL_WIDTH)
    if not _PLAIN.fullmatch(text):
        if "," in text or "，" in text:
            thousands = _THOUSANDS.fullmatch(text.replace("，", ","))
            code = "amount_thousands_separator" if thousands else "amount_decimal_comma"
            raise BillingError(code, value=shown)
        if "e" in text.lower() and re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", text):
            raise BillingError("amount_exponent", value=shown)
        raise BillingError("amount_not_a_number", value=shown)
    amount = Decimal(text)
    if amount == 0 and not allow_zero:
        raise BillingError("amount_zero")
    if amount < 0:
        raise BillingError(negative_code, amount=shown)
    if amount > maximum:
        raise BillingError("amount_too_large", amount=shown, limit=maximum)
    unit = Decimal(1).scaleb(-decimals)
    if amount != amount.quantize(unit, rounding=ROUND_DOWN):
        raise BillingError("amount_too_precise", amount=shown, decimals=decimals)
    return amount.quantize(unit)


def _shown(value) -> str:
    """What was read, for a message: printable, short (of a list or an object, only its kind)."""
    if not isinstance(value, (str, int, float, Decimal)):
        return f"({type(value).__name__})"
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


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
