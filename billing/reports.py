"""Reconciliation reports: open count / balance mismatch alarms, and meters whose balance moved
differently from what their readings and tariff say (shadow billing, > 1 % on some day)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing.context import BillingContext
from billing.reconcile import RECONCILIATION_ALARMS
from billing.shadow import meters_off_by
from storage.reports import meter_places, open_alarms_with_meters


def reconciliation_alarms(ctx: BillingContext) -> list[dict]:
    with ctx.engine.connect() as conn:
        rows = open_alarms_with_meters(conn, RECONCILIATION_ALARMS)
    for r in rows:
        r["opened_at"] = ctx.local(r["opened_at"])
    return rows


def shadow_report(ctx: BillingContext, first_day: dt.date, last_day: dt.date, threshold: float = 0.01) -> list[dict]:
    """Meters off by more than `threshold` on at least one local day in [first_day, last_day]."""
    if last_day < first_day:
        raise ValueError("the last day is before the first")
    start = _utc(dt.datetime.combine(first_day, dt.time()), ctx.tz)
    end = _utc(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), ctx.tz)
    rows = meters_off_by(ctx.engine, start, end, ctx.tz, threshold=threshold)
    with ctx.engine.connect() as conn:
        places = meter_places(conn, [r["meter_address"] for r in rows])
    for r in rows:
        r["building"], r["room"] = places.get(r["meter_address"], (None, None))
        r["difference"] = Decimal(r["actual"]) - Decimal(r["expected"])
    return rows


def _utc(local: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    return local.replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)
