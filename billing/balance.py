"""What billing knows of a meter's money (its last reading and entries not shown yet) and its next purchase count."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from storage import billing as store


@dataclass(frozen=True)
class Balance:
    """What billing knows of a meter's money: the last reading plus confirmed entries it does not show yet."""
    balance: Decimal | None          # None: never read
    reading_ts: dt.datetime | None
    pending_credits: Decimal
    pending_debits: Decimal          # negative or zero

    @property
    def refundable(self) -> Decimal:
        return (self.balance or Decimal("0.00")) + self.pending_debits

    @property
    def projected(self) -> Decimal:
        return (self.balance or Decimal("0.00")) + self.pending_credits


def known_balance(conn: sa.Connection, meter_id: int) -> Balance:
    reading = store.meter_reading(conn, meter_id)
    count = reading["purchase_count"] if reading else None
    pos = store.money_position(conn, meter_id, count)
    if reading is None or reading["balance"] is None:
        return Balance(None, None, pos["pending_credits"], pos["pending_debits"])
    return Balance(Decimal(reading["balance"]) + pos["unreflected"], reading["ts"], pos["pending_credits"],
                   pos["pending_debits"])


def next_purchase_count(conn: sa.Connection, meter_id: int) -> int:
    """Call inside meter_transaction only: the count the meter's next money command carries."""
    return max(store.max_live_count(conn, meter_id) or 0, store.max_base_count(conn, meter_id) or 0) + 1
