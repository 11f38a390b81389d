"""The managers' dashboard's figures in one call: today's load against yesterday and the same day last week,
energy and sales of the last 30 days, alarms opened per day, the top consumers and each building's share."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from core.clock import site_time
from energy.analysis import energy_report, site_meters
from energy.history import local_range

DAYS = 30
TOP = 10


@dataclass(frozen=True)
class ManagerFigures:
    today: dt.date
    curves: dict[str, pd.DataFrame]   # "today" / "yesterday" / "last_week": minute (after local midnight), kw
    energy: pd.DataFrame              # day, energy_kwh, estimated, gap
    sales: pd.DataFrame               # day, net (float yuan, for a chart), count
    alarms: pd.DataFrame              # day, count
    top: pd.DataFrame                 # building, floor, room, energy_kwh (largest first)
    share: pd.DataFrame               # building, energy_kwh


def _curve(quarters: pd.DataFrame, day: dt.date, now_local: dt.datetime) -> pd.DataFrame:
    """A day's load per quarter hour (kW = kWh x 4) out of the site's quarters; today's quarter still running is
    left out (it would read as a drop to nothing)."""
    start = pd.Timestamp(day)
    df = quarters[(quarters["period"] >= start) & (quarters["period"] < start + pd.Timedelta(days=1))]
    df = df[df["period"] + pd.Timedelta(minutes=15) <= pd.Timestamp(now_local)]
    minutes = (df["period"] - start).dt.total_seconds() // 60
    return pd.DataFrame({"minute": minutes.astype(int), "kw": df["energy_kwh"] * 4.0})


def manager_figures(ctx, today: dt.date) -> ManagerFigures:
    """`ctx`: the billing context (engine, zone, clock); `today`: the site's local day."""
    from billing.sales_report import sales_report
    from storage.alarm_queries import opened_per_hour

    engine, tz = ctx.engine, ctx.tz
    first = today - dt.timedelta(days=DAYS - 1)
    now_local = ctx.local(ctx.now())
    meters = site_meters(engine)     # the meters' places, read once for the two energy queries
    # the three days' quarters in one query (the eight days from a week ago to today)
    quarters = energy_report(engine, tz, today - dt.timedelta(days=7), today, by="15min", group="site",
                             meters=meters)
    curves = {name: _curve(quarters, today - dt.timedelta(days=back), now_local)
              for name, back in (("today", 0), ("yesterday", 1), ("last_week", 7))}
    days = pd.date_range(pd.Timestamp(first), pd.Timestamp(today), freq="D")
    # one read of the daily rollup for the 30 days' bars, the top consumers and the buildings' shares: the rooms'
    # days (a prepaid meter always has a room, so a day of the site is the sum of its rooms')
    rooms = energy_report(engine, tz, first, today, by="day", group="room", meters=meters)
    daily = rooms.groupby("period").agg(energy_kwh=("energy_kwh", "sum"), estimated=("estimated", "any"),
                                        gap=("gap", "any"))
    daily = daily.reindex(days)   # every day of the 30 on the axis, a day without data empty
    energy = pd.DataFrame({"day": days, "energy_kwh": daily["energy_kwh"].to_numpy(),
                           "estimated": daily["estimated"].fillna(False).astype(bool).to_numpy(),
                           "gap": daily["gap"].fillna(False).astype(bool).to_numpy()})
    sold = sales_report(ctx, first, today, by="day")
    sales = pd.DataFrame({"day": pd.to_datetime([r["period"] for r in sold]),
                          "net": [float(r["net"]) for r in sold], "count": [r["count"] for r in sold]})
    with engine.connect() as conn:
        hours = opened_per_hour(conn, *local_range(tz, first, today))
    if len(hours):
        local_days = site_time(pd.to_datetime(hours["hour"]), tz).dt.normalize()
        counted = hours.assign(day=local_days).groupby("day")["count"].sum()
    else:
        counted = pd.Series(dtype=int)
    alarms = pd.DataFrame({"day": days, "count": [int(counted.get(d, 0)) for d in days]})
    top = (rooms.groupby(["building", "floor", "room"], dropna=False)["energy_kwh"].sum().reset_index()
           .sort_values("energy_kwh", ascending=False).head(TOP).reset_index(drop=True))
    share = rooms.groupby("building", dropna=False)["energy_kwh"].sum().reset_index()   # a building = its rooms
    return ManagerFigures(today, curves, energy, sales, alarms, top, share)
