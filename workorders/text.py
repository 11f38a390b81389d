"""Typed text and numbers as work orders keep them: one line of printable text, a decimal within bounds, a quantity
(full-width digits read as ASCII). Shared by the service and the operating-card parser (workorders/cards.py)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from workorders.errors import WorkOrderError

MAX_QUANTITY = Decimal("99999")


def one_line(value, length: int) -> str:
    """Typed text as kept: printable, whitespace runs as one space, at most `length` characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value if value is not None else ""))
    return " ".join(text.split())[:length]


def _decimal(value, code: str, lowest: Decimal, highest: Decimal, places: int = 2) -> Decimal:
    """A typed number as Decimal within [lowest, highest] with at most `places` decimals; WorkOrderError(code)
    otherwise (full-width digits, "50,5", exponents, text, NaN)."""
    if isinstance(value, bool) or value is None:
        raise WorkOrderError(code)
    text = str(value).strip()
    if not text or len(text) > 20 or not text.isascii() or not all(ch.isdigit() or ch == "." for ch in text):
        raise WorkOrderError(code)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise WorkOrderError(code) from None
    if not number.is_finite() or not lowest <= number <= highest or number != round(number, places):
        raise WorkOrderError(code)
    return number


_FULL_WIDTH = str.maketrans("０１２３４５６７８９．。", "0123456789..")


def _quantity(value, *, positive: bool = False) -> Decimal:
    """A typed quantity: full-width digits and stops read as ASCII ("２．５" is 2.5); a comma, an exponent, text or
    more than 3 decimals refused (quantity_invalid), as is 0 for a new line (quantity_positive) and above 99999."""
    if isinstance(value, str):
        value = value.strip().strip("\u3000").translate(_FULL_WIDTH)
    number = _decimal(value, "quantity_invalid", Decimal("0"), MAX_QUANTITY, places=3)
    if positive and number <= 0:
        raise WorkOrderError("quantity_positive")
    return number
