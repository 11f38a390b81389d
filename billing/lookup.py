"""Look-ups every billing service shares: a meter by its 12-digit number, the acting operator's name."""
from __future__ import annotations

import re

import sqlalchemy as sa

from billing.errors import BillingError
from storage import billing as store


def meter_by_number(conn: sa.Connection, address) -> dict:
    """The meter row of a 12-digit meter number, or BillingError meter_unknown."""
    text = str(address or "").strip()
    m = store.meter_by_address(conn, text) if re.fullmatch(r"[0-9]{12}", text) else None
    if m is None:
        raise BillingError("meter_unknown", meter=text)
    return m


def operator_name(operator: str) -> str:
    """The operator's name as the ledger keeps it (at most 100 characters), or BillingError operator_missing."""
    text = (operator or "").strip()
    if not text:
        raise BillingError("operator_missing")
    return text[:100]
