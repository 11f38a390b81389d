"""Money on the wire and in readings: exact Decimal yuan <-> integer fen (one definition for every layer)."""
from __future__ import annotations

from decimal import Decimal

CENT = Decimal("0.01")


def to_fen(amount: Decimal) -> int:
    """Exact yuan (two decimals at most) to integer fen for the wire; more decimals raise ValueError."""
    q = Decimal(amount).quantize(CENT)
    if q != Decimal(amount):
        raise ValueError(f"{amount} has more than two decimals")
    return int(q * 100)


def from_fen(fen: int) -> Decimal:
    """Integer fen to Decimal yuan with two decimals."""
    return (Decimal(int(fen)) / 100).quantize(CENT)


def reading_fen(amount: Decimal | None) -> int | None:
    """A balance read off a meter (0.01 yuan resolution, scaled by its profile) as fen; None stays None."""
    if amount is None:
        return None
    return int((Decimal(amount) * 100).to_integral_value())
