"""The sales reports (日/月/年销售报表): the ledger's sales, refunds and reversals per local hour, day, month or year,
optionally per operator, building or payment channel.

What counts: entries of kind sale, refund and reversal that did not fail (pending and confirmed: the money of a
pending entry is at the desk already, as the sales records and the overview's sales of the day count it), dated
by when they were written (created_at) in the site's local time. Refunds and reversals carry their sign (their
effect on the balance: a refund is negative, a reversal of a sale negative, of a refund positive); net is the sum.
`pending` is the part of net whose meter has not confirmed yet. The payment channel is the entry's source: desk,
api, or demo (entries the demo seeded, shown as their own channel, never mixed into desk or api).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing.context import BillingContext
from core.clock import site_time, utc_time
from storage import sales as sql

BY = ("hour", "day", "month", "year")
GROUPS = tuple(sql.GROUP_COLUMNS)          # operator, building, channel
ZERO = Decimal("0.00")
_KIND_COLUMN = {"sale": "sales", "refund": "refunds", "reversal": "reversals", "closing_refund": "closing_refunds"}


def period_of(local: dt.datetime, by: str) -> str:
    """The label of the local period `local` falls in: "2026-11-01 13:00", "2026-11-01", "2026-11", "2026"."""
    return local.strftime({"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[by])


def periods(first_day: dt.date, last_day: dt.date, by: str) -> list[str]:
    """Every period label of [first_day, last_day] in order (both days inclusive)."""
    out: list[str] = []
    if by == "hour":
        t = dt.datetime.combine(first_day, dt.time())
        while t.date() <= last_day:
            out.append(period_of(t, by))
            t += dt.timedelta(hours=1)
        return out
    day = first_day
    while day <= last_day:
        label = period_of(dt.datetime.combine(day, dt.time()), by)
        if not out or out[-1] != label:
            out.append(label)
        day += dt.timedelta(days=1)
    return out


def local_bounds(ctx: BillingContext, first_day: dt.date, last_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first day 00:00, the day after the last 00:00) of the site's clock as naive UTC."""
    return (utc_time(dt.datetime.combine(first_day, dt.time()), ctx.tz),
            utc_time(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), ctx.tz))


def _bucket(ctx: BillingContext, since: dt.datetime, until: dt.datetime) -> str:
    """Hour buckets map to local periods exactly when the zone's offset is whole hours (China's is); else minutes."""
    offsets = {ctx.tz.utcoffset(t.replace(tzinfo=dt.UTC).astimezone(ctx.tz)) for t in (since, until)}
    return "hour" if all(o is not None and o.total_seconds() % 3600 == 0 for o in offsets) else "minute"


def empty_row(period: str, group_value=None, group: str | None = None) -> dict:
    row = {"period": period}
    if group:
        row[group] = group_value
    row.update(sales=ZERO, refunds=ZERO, reversals=ZERO, net=ZERO, pending=ZERO, count=0, sales_count=0,
               refunds_count=0, reversals_count=0)
    return row


def sales_report(ctx: BillingContext, first_day: dt.date, last_day: dt.date, by: str = "day",
                 group: str | None = None, *, operator: str | None = None, building: str | None = None,
                 channel: str | None = None) -> list[dict]:
    """Rows per local period (and per `group` value): period, [group], sales, refunds, reversals, net, pending
    (Decimal to the fen), count (entries), sales_count, refunds_count, reversals_count. Without a group every
    period of the range has a row (zero when nothing was sold); with one, only the pairs that had entries."""
    if by not in BY:
        raise ValueError(f"by: {by!r}")
    if group is not None and group not in GROUPS:
        raise ValueError(f"group: {group!r}")
    if last_day < first_day:
        raise ValueError("the last day is before the first")
    since, until = local_bounds(ctx, first_day, last_day)
    with ctx.engine.connect() as conn:
        buckets = sql.ledger_buckets(conn, since, until, bucket=_bucket(ctx, since, until), group=group,
                                     operator=operator, building_name=building, source=channel)
    rows: dict[tuple, dict] = {}
    if group is None:
        rows = {(p, None): empty_row(p) for p in periods(first_day, last_day, by)}
    for b in buckets:
        period = period_of(site_time(b["bucket"], ctx.tz), by)
        row = rows.setdefault((period, b["group"]), empty_row(period, b["group"], group))
        add_entries(row, b["kind"], b["amount"], b["entries"], pending=b["state"] == "pending")
    return sorted(rows.values(), key=lambda r: (r["period"], "" if group is None else str(r[group] or "")))


def add_entries(row: dict, kind: str, amount: Decimal, entries: int, *, pending: bool = False) -> None:
    """Add `entries` ledger entries of `kind` worth `amount` (signed) to a report row."""
    column = _KIND_COLUMN[kind]
    row[column] = row.get(column, ZERO) + amount
    row[f"{column}_count"] = row.get(f"{column}_count", 0) + entries
    row["net"] += amount
    row["count"] += entries
    if pending:
        row["pending"] += amount


def sales_totals(rows: list[dict]) -> dict:
    """The sum of report rows' money and counts (a report's totals row)."""
    total = empty_row("")
    for r in rows:
        for k, v in r.items():
            if k in total and k != "period":
                total[k] += v
    return total
