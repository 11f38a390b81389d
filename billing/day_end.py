"""Cashier day-end settlement (日结) and shift handover: per cashier and local day, the sales, refunds, reversals
and closing refunds with their counts, the net, and the cash to hand over (entries taken at the desk only); and
closing a day, which stores its figures as they stand (storage.schema.closed_day) and writes the operation log.

A closed day never changes. When the ledger of a closed day moves afterwards (a pending sale whose meter refused
it fails, an entry written after the close), the difference between the day as it is now and its closed figures
shows as a correction on the cashier's next open day (the day after their latest closed day); closing that day
takes the correction in (its figures keep it), so every fen is handed over once.

Who may close: a cashier their own day (sale.create: who sells, settles); anyone else's day needs
settlement.close (managers, admins). Counts as the sales reports count (billing.sales_report): entries not failed.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from billing.context import BillingContext
from billing.credit import Actor, authorize, require_actor
from billing.errors import BillingError
from billing.sales_report import ZERO, local_bounds
from core import permissions as P
from storage import audit
from storage import sales as sql

KINDS = {"sale": "sales", "refund": "refunds", "reversal": "reversals", "closing_refund": "closing_refunds"}
MONEY = ("sales", "refunds", "reversals", "closing_refunds", "net", "cash", "correction", "cash_correction",
         "to_hand_over")
MAX_DAYS = 366


def _blank(day: dt.date, operator: str) -> dict:
    row = {"day": day, "operator": operator}
    for column in KINDS.values():
        row[column], row[f"{column}_count"] = ZERO, 0
    row.update(net=ZERO, cash=ZERO, correction=ZERO, cash_correction=ZERO, closed=False, closed_by=None,
               closed_at=None)
    return row


def _live(ctx: BillingContext, conn: sa.Connection, first_day: dt.date, last_day: dt.date,
          operator: str | None = None) -> dict[tuple[dt.date, str], dict]:
    """(day, cashier) -> the day's figures as the ledger stands now."""
    since, until = local_bounds(ctx, first_day, last_day)
    out: dict[tuple[dt.date, str], dict] = {}
    for desk_only in (False, True):
        for b in sql.ledger_buckets(conn, since, until, group="operator", kinds=sql.SETTLEMENT_KINDS,
                                    operator=operator, source="desk" if desk_only else None):
            day = ctx.local(b["bucket"]).date()
            row = out.setdefault((day, b["group"]), _blank(day, b["group"]))
            if desk_only:
                row["cash"] += b["amount"]
            else:
                row[KINDS[b["kind"]]] += b["amount"]
                row[f"{KINDS[b['kind']]}_count"] += b["entries"]
                row["net"] += b["amount"]
    return out


def _figures(row: dict) -> dict:
    """What a closed day keeps: money as strings with two decimals, counts as integers."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()
            if k in MONEY or k.endswith("_count")}


def _from_figures(day: dt.date, closed: dict) -> dict:
    row = _blank(day, closed["operator"])
    for k, v in closed["figures"].items():
        if k in row:
            row[k] = Decimal(v) if k in MONEY else int(v)
    row.update(closed=True, closed_by=closed["closed_by"], closed_at=closed["closed_at"])
    return row


def _open_correction(ctx: BillingContext, conn: sa.Connection, operator: str) -> tuple[Decimal, Decimal]:
    """(net, cash): how far the operator's closed days, as the ledger stands now, are from what they were closed
    with, less the corrections later closed days took in already: what the next open day must carry."""
    closed = sql.closed_days(conn, dt.date(1970, 1, 1), dt.date(9999, 12, 31), operator=operator)
    if not closed:
        return ZERO, ZERO
    live = _live(ctx, conn, closed[0]["day"], closed[-1]["day"], operator=operator)
    net = cash = ZERO
    for c in closed:
        now, f = live.get((c["day"], operator)) or _blank(c["day"], operator), c["figures"]
        net += now["net"] - Decimal(f["net"]) - Decimal(f.get("correction", "0"))
        cash += now["cash"] - Decimal(f["cash"]) - Decimal(f.get("cash_correction", "0"))
    return net, cash


def settlement_report(ctx: BillingContext, first_day: dt.date, last_day: dt.date,
                      operator: str | None = None) -> list[dict]:
    """Rows per local day and cashier in [first_day, last_day]: sales, refunds, reversals, closing_refunds (signed,
    with *_count), net, cash (desk entries only), correction and cash_correction (a closed day's later changes,
    on the cashier's next open day), to_hand_over (cash + cash_correction), closed, closed_by, closed_at (site
    time). A closed day shows its closed figures."""
    if last_day < first_day:
        raise ValueError("the last day is before the first")
    with ctx.engine.connect() as conn:
        rows = _live(ctx, conn, first_day, last_day, operator)
        for c in sql.closed_days(conn, first_day, last_day, operator):
            rows[(c["day"], c["operator"])] = _from_figures(c["day"], c)
        cashiers = {op for _, op in rows} | ({operator} if operator else set(
            sql.ledger_operators_between(conn, *local_bounds(ctx, first_day, last_day))))
        for op in sorted(cashiers):
            last_closed = sql.last_closed_before(conn, op, dt.date(9999, 12, 31))
            if last_closed is None:
                continue
            next_open = last_closed["day"] + dt.timedelta(days=1)
            net, cash = _open_correction(ctx, conn, op)
            if (net or cash) and first_day <= next_open <= last_day:
                row = rows.setdefault((next_open, op), _blank(next_open, op))
                row["correction"], row["cash_correction"] = net, cash
    out = sorted(rows.values(), key=lambda r: (r["day"], r["operator"]))
    for r in out:
        r["to_hand_over"] = r["cash"] + r["cash_correction"]
        if r["closed_at"] is not None:
            r["closed_at"] = ctx.local(r["closed_at"])
    return out


def close_day(ctx: BillingContext, actor: Actor, operator: str, day: dt.date) -> dict:
    """Close `operator`'s local `day`: its figures (with the open correction of earlier closed days) stored as they
    stand, and the operation log written. Refused: another cashier's day without settlement.close, a day in the
    future, a day closed already, a day before the cashier's latest closed day."""
    actor = require_actor(actor)
    authorize(ctx, actor, P.SALE_CREATE if actor.username == operator else P.SETTLEMENT_CLOSE,
              f"closed_day:{operator[:60]}:{day}")
    today = ctx.local(ctx.now()).date()
    if day > today:
        raise BillingError("day_not_over", day=day.isoformat())
    now = ctx.now()
    with ctx.engine.begin() as conn:
        if sql.closed_day_row(conn, operator, day) is not None:
            raise BillingError("day_closed_already", day=day.isoformat(), operator=operator)
        later = sql.last_closed_before(conn, operator, dt.date(9999, 12, 31))
        if later is not None and later["day"] > day:
            raise BillingError("day_before_closed", day=day.isoformat(), closed=later["day"].isoformat())
        row = _live(ctx, conn, day, day, operator).get((day, operator)) or _blank(day, operator)
        row["correction"], row["cash_correction"] = _open_correction(ctx, conn, operator)
        row["to_hand_over"] = row["cash"] + row["cash_correction"]
        figures = _figures(row)
        sql.insert_closed_day(conn, operator=operator, day=day, figures=figures, closed_by=actor.username,
                              closed_at=now)
        audit.record(conn, operator=actor.username, action="settlement.close_day", target=f"{operator}:{day}",
                     ts=now, after=figures, source=actor.address)
    return {**row, "closed": True, "closed_by": actor.username, "closed_at": ctx.local(now)}


def close_past_days(ctx: BillingContext, actor: Actor, operator: str, first_day: dt.date, last_day: dt.date) -> int:
    """Close each of `operator`'s days first..last not closed yet, in order (the demo's history); how many."""
    done = 0
    day = first_day
    while day <= last_day:
        with ctx.engine.connect() as conn:
            closed = sql.closed_day_row(conn, operator, day) is not None
        if not closed:
            close_day(ctx, actor, operator, day)
            done += 1
        day += dt.timedelta(days=1)
    return done
