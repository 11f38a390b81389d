"""SQL of the money reports: the ledger's sales, refunds and reversals summed per time bucket (and per operator,
building or payment channel), and the cashiers' closed days (day-end settlement snapshots)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa

from storage.desk import SALES_KINDS
from storage.matching import equals_text
from storage.schema import building, closed_day, ledger_entry, meter, room

# What a report may be split by, and the column that says it.
GROUP_COLUMNS = {"operator": ledger_entry.c.operator, "building": building.c.name, "channel": ledger_entry.c.source}
# The kinds a cashier's day-end counts: the sales report's, and the closing refunds paid out in cash.
SETTLEMENT_KINDS = (*SALES_KINDS, "closing_refund")
BUCKETS = ("hour", "minute")


def ledger_buckets(conn: sa.Connection, since: dt.datetime, until: dt.datetime, *, bucket: str = "hour",
                   group: str | None = None, kinds: tuple[str, ...] = SALES_KINDS, operator: str | None = None,
                   building_name: str | None = None, source: str | None = None) -> list[dict]:
    """Ledger entries created in [since, until) (naive UTC), failed ones left out (their money never moved),
    summed per UTC `bucket` (hour or minute: the caller maps buckets to the site's local periods), kind, state
    and, when asked, `group` (operator, building, channel). Rows: bucket, kind, state, group, entries, amount."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket: {bucket!r}")
    start = sa.func.date_trunc(sa.literal_column(f"'{bucket}'"), ledger_entry.c.created_at).label("bucket")
    key = (GROUP_COLUMNS[group] if group else sa.literal_column("NULL")).label("group")
    q = (sa.select(start, ledger_entry.c.kind, ledger_entry.c.state, key,
                   sa.func.count().label("entries"), sa.func.sum(ledger_entry.c.amount).label("amount"))
         .select_from(ledger_entry.join(meter, ledger_entry.c.meter_id == meter.c.id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(ledger_entry.c.created_at >= since, ledger_entry.c.created_at < until,
                ledger_entry.c.state != "failed", ledger_entry.c.kind.in_(kinds))
         .group_by(start, ledger_entry.c.kind, ledger_entry.c.state, *([key] if group else [])))
    if operator:
        q = q.where(equals_text(ledger_entry.c.operator, operator))
    if building_name:
        q = q.where(equals_text(building.c.name, building_name))
    if source:
        q = q.where(ledger_entry.c.source == source)
    return [{**r, "amount": Decimal(r["amount"]).quantize(Decimal("0.01"))} for r in conn.execute(q).mappings()]


def ledger_operators_between(conn: sa.Connection, since: dt.datetime, until: dt.datetime) -> list[str]:
    """The operators with ledger entries in [since, until), by name."""
    q = (sa.select(ledger_entry.c.operator).distinct()
         .where(ledger_entry.c.created_at >= since, ledger_entry.c.created_at < until)
         .order_by(ledger_entry.c.operator))
    return list(conn.execute(q).scalars())


# ---------------------------------------------------------------------------------------------
# closed days
def closed_day_row(conn: sa.Connection, operator: str, day: dt.date) -> dict | None:
    row = conn.execute(sa.select(closed_day).where(closed_day.c.operator == operator, closed_day.c.day == day)
                       ).mappings().first()
    return _closed(row) if row else None


def closed_days(conn: sa.Connection, first_day: dt.date, last_day: dt.date,
                operator: str | None = None) -> list[dict]:
    """Closed days in [first_day, last_day] (both inclusive), by day and operator."""
    q = (sa.select(closed_day).where(closed_day.c.day >= first_day, closed_day.c.day <= last_day)
         .order_by(closed_day.c.day, closed_day.c.operator))
    if operator:
        q = q.where(closed_day.c.operator == operator)
    return [_closed(r) for r in conn.execute(q).mappings()]


def last_closed_before(conn: sa.Connection, operator: str, day: dt.date) -> dict | None:
    """The operator's latest closed day before `day`, or None."""
    row = conn.execute(sa.select(closed_day).where(closed_day.c.operator == operator, closed_day.c.day < day)
                       .order_by(closed_day.c.day.desc()).limit(1)).mappings().first()
    return _closed(row) if row else None


def insert_closed_day(conn: sa.Connection, *, operator: str, day: dt.date, figures: dict, closed_by: str,
                      closed_at: dt.datetime) -> None:
    """One closed day; the primary key (operator, day) refuses a second close of the same day."""
    conn.execute(closed_day.insert().values(operator=operator, day=day, figures=json.dumps(figures),
                                            closed_by=closed_by, closed_at=closed_at))


def _closed(row) -> dict:
    d = dict(row)
    d["figures"] = json.loads(d["figures"])
    return d
