"""Reconciliation after every poll: each billed meter's purchase count and balance against the ledger.

- Purchase count: the meter must report the ledger's highest confirmed count (or its base count
  when it has none), or a count up to the highest pending one (a command applied whose answer is
  not recorded yet). Anything else opens a "count_mismatch" alarm; it closes itself once the
  meter and the ledger agree again.
- Balance: between two readings a balance can only fall (consumption) or rise by the money the
  ledger sent in between (entries with counts between the two readings'). A larger rise opens a
  "balance_mismatch" alarm (money that did not come through the ledger: tampering or a foreign
  recharge), left open for an operator, who resolves it with a note once it is looked into
  (resolve_alarm; the note goes to the operation log).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from storage import audit
from storage import billing as store
from storage import alarms
from storage.alarms import (
    BALANCE_MISMATCH, COMMAND_FAILED, COUNT_MISMATCH, MAILBOX_CONFLICT, AlarmLevel, alarm_by_id, close_alarm,
    close_alarm_by_id, open_alarm,
)

# mailbox_conflict: the dispatcher read a meter's answer that was not its frame's (another master on the bus);
# command_failed: a money or relay command the meter refused. Listed here so an operator sees them beside the
# mismatches they may explain, and resolves them with a note.
RECONCILIATION_ALARMS = (COUNT_MISMATCH, BALANCE_MISMATCH, MAILBOX_CONFLICT, COMMAND_FAILED)


@dataclass
class ReconcileReport:
    checked: int = 0
    opened: list[tuple[str, str]] = field(default_factory=list)   # (meter address, alarm kind)
    cleared: list[str] = field(default_factory=list)


def expected_counts(bounds: tuple[int | None, int | None, int | None]) -> tuple[int, int]:
    """(count the ledger knows applied, highest count that may already be applied)."""
    confirmed, pending, base = bounds
    known = max(confirmed or 0, base or 0)
    return known, max(known, pending or 0)


def reconcile(engine: sa.Engine, clock: Callable[[], dt.datetime]) -> ReconcileReport:
    """Check every billed meter with a reading newer than the last one checked."""
    now = clock()
    report = ReconcileReport()
    with engine.begin() as conn:
        bounds = store.live_count_bounds(conn)
        mismatched = alarms.open_subjects(conn, COUNT_MISMATCH, "meter")
        unexplained = alarms.open_subjects(conn, BALANCE_MISMATCH, "meter")
        marks = []
        for row in store.reconcile_rows(conn):
            if row["mark_ts"] is not None and row["ts"] <= row["mark_ts"]:
                continue
            report.checked += 1
            mid, address, count = row["meter_id"], row["address"], row["purchase_count"]
            balance = None if row["balance"] is None else Decimal(row["balance"])
            if count is not None:
                known, upper = expected_counts(bounds.get(mid, (None, None, None)))
                if count < known or count > upper:
                    params = {"meter": address, "count": count, "expected": known}
                    if upper > known:
                        code, params = "count_mismatch_in_flight", {**params, "upper": upper}
                    else:
                        code = "count_mismatch"
                    open_alarm(conn, COUNT_MISMATCH, alarms.meter(mid), AlarmLevel.CRITICAL, code, params, now)
                    if mid not in mismatched:
                        mismatched.add(mid)
                        report.opened.append((address, COUNT_MISMATCH))
                elif mid in mismatched and close_alarm(conn, COUNT_MISMATCH, alarms.meter(mid), now):
                    mismatched.discard(mid)
                    report.cleared.append(address)
            mark_count, mark_balance = row["mark_count"], row["mark_balance"]
            if balance is not None and mark_balance is not None and count is not None and mark_count is not None:
                rise = balance - Decimal(mark_balance)
                if rise > 0 or count != mark_count:  # consumption alone only lowers the balance
                    credited = (store.amounts_between_counts(conn, mid, mark_count, count) if count > mark_count
                                else Decimal("0"))
                    if rise > credited:
                        open_alarm(conn, BALANCE_MISMATCH, alarms.meter(mid), AlarmLevel.CRITICAL, "balance_mismatch",
                                   {"meter": address, "rise": str(rise), "credited": str(credited)}, now)
                        if mid not in unexplained:
                            unexplained.add(mid)
                            report.opened.append((address, BALANCE_MISMATCH))
            marks.append({"meter_id": mid, "ts": row["ts"], "purchase_count": count, "balance": balance})
        store.set_reconcile_marks(conn, marks)
    return report


def resolve_alarm(engine: sa.Engine, clock: Callable[[], dt.datetime], alarm_id, operator: str, note,
                  remote: str | None = None) -> dict:
    """Close an open reconciliation alarm an operator has looked into, with a note (operation log).

    A count mismatch that is still there opens again at the meter's next reading."""
    from billing.errors import BillingError
    from billing.credit import reason_text
    from billing.lookup import operator_name
    operator = operator_name(operator)
    note = reason_text(note, required=True)
    if isinstance(alarm_id, bool) or not str(alarm_id or "").strip().isdigit():
        raise BillingError("alarm_not_open", alarm=alarm_id)
    now = clock()
    with engine.begin() as conn:
        alarm = alarm_by_id(conn, int(str(alarm_id).strip()))
        if alarm is None or alarm["kind"] not in RECONCILIATION_ALARMS or alarm["closed_at"] is not None \
                or not close_alarm_by_id(conn, alarm["id"], now):
            raise BillingError("alarm_not_open", alarm=alarm_id)
        m = store.meter_by_id(conn, alarm["subject_id"]) if alarm["subject_kind"] == "meter" else None
        audit.record(conn, operator=operator, action="billing.alarm_resolve", ts=now, source=remote,
                     target=f"meter:{m['address']}" if m else f"alarm:{alarm['id']}",
                     before={"alarm": alarm["id"], "kind": alarm["kind"], "message": alarms.message_text(alarm, "en"),
                             "opened_at": alarm["opened_at"]},
                     after={"closed_at": now, "note": note})
    return {**alarm, "closed_at": now}
