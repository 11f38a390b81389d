"""Work-order KPIs and statistics tables (issue 12, managers). The definitions are written once as pure pandas
functions over one frame of per-order facts (storage.workorder_kpis.order_facts: orders, their events and the
follow-up calls), each tested on a small known frame. The page's report (kpi_report) does not fetch a row per order:
the database sums the same facts by type and site month (storage.workorder_kpis.fact_groups) and the functions at
the end finish the figures from those few hundred rows; tests check on a seeded database of each engine that it
equals the per-order report (kpi_report_from_facts).

Definitions (the period is a range of the site's local days; an order belongs to it by its creation time):
- completion rate: orders completed (completed at least once, whatever came after) / orders not cancelled;
- overdue rate: orders finished after their deadline, or still open past it now / orders not cancelled that
  have a deadline (the deadline already moved by the time the order was on hold: the clock paused);
- customer satisfaction rate: orders rated 4 or 5 of 5 / orders rated; the rating is the follow-up call's when the
  customer was reached and rated, else the one the customer gave at completion;
- worker online rate: the terminals' share of working time seen (workorders' field side), passed in;
- visits: arrivals on site (on_site events) of the period's orders, repeated visits counted;
- first response time: mean hours from creation to the worker's first acceptance;
- repair completion time by month: mean hours from creation to first completion of repair orders, less the time
  on hold, by the month of completion;
- first-time-fix rate: completed orders never rejected at review and not reopened / completed orders;
- reopen rate: completed orders followed, within REOPEN_DAYS of completion, by a new order of the same type for the
  same customer (account, else meter) / completed orders.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from core.clock import site_time, utc_time
from storage import workorder_kpis as sql
from workorders.errors import WorkOrderError

REOPEN_DAYS = 30
SATISFIED = 4            # a rating of 4 or 5 (of 5) counts as satisfied
OPEN_STATES = ("created", "dispatched", "accepted", "on_site", "rejected", "on_hold")
DONE_STATES = ("completed", "approved", "archived")



@dataclass(frozen=True)
class Kpis:
    orders: int                          # orders of the period (cancelled included)
    completion_rate: float | None        # 0..1; None: nothing to rate
    overdue_rate: float | None
    satisfaction_rate: float | None
    online_rate: float | None
    visits: int
    first_response_h: float | None
    first_time_fix_rate: float | None
    reopen_rate: float | None
    repair_hours_by_month: pd.DataFrame = field(repr=False)   # month (YYYY-MM), hours, orders

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("orders", "completion_rate", "overdue_rate", "satisfaction_rate",
                                               "online_rate", "visits", "first_response_h", "first_time_fix_rate",
                                               "reopen_rate")}


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _hours(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 3600.0


def _periods(utc: pd.Series, zone: dt.tzinfo) -> tuple[pd.Series, pd.Series]:
    """The site's month and quarter of each stored time as whole numbers (year * 12 + month - 1, year * 4 +
    quarter - 1; empty where NaT): the zone is applied once, the words only for the rows a table shows."""
    local = site_time(pd.to_datetime(utc), zone)
    month = (local.dt.year * 12 + local.dt.month - 1).astype("Int64")
    return month, month // 12 * 4 + month % 12 // 3


def period_text(code: int, grain: str = "month") -> str:
    """A month code as "2026-11", a quarter code as "2026Q4"."""
    code = int(code)
    return f"{code // 4:04d}Q{code % 4 + 1}" if grain == "quarter" else f"{code // 12:04d}-{code % 12 + 1:02d}"


def prepare_facts(raw: pd.DataFrame, now: dt.datetime, zone: dt.tzinfo = dt.UTC) -> pd.DataFrame:
    """storage.workorder_kpis.order_facts as the KPIs read it: typed times and counts, the customer as one key
    (the account, else the meter), the site's month and quarter of creation and completion (`zone`), and an order
    on hold now counted as held until now: its clock is paused, so its deadline moves on with it."""
    out = raw.copy()
    for c in ("created_at", "due_at", "held_since", "accepted_at", "completed_at"):
        out[c] = pd.to_datetime(out[c])
    for c in ("held_s", "rejections", "visits"):
        out[c] = pd.to_numeric(out[c]).fillna(0).astype(float)
    out["satisfaction"] = pd.to_numeric(out["satisfaction"]).astype(float)
    held_now = ((pd.Timestamp(now) - out["held_since"]).dt.total_seconds()).where(
        out["state"] == "on_hold").fillna(0).clip(lower=0)
    out["held_s"] = out["held_s"] + held_now
    out["due_at"] = out["due_at"] + pd.to_timedelta(held_now, unit="s")
    # one number per customer: an account's id doubled, else a meter's doubled plus one (NaN: no customer)
    account = pd.to_numeric(out["account_id"]).astype(float)
    meter = pd.to_numeric(out["meter_id"]).astype(float)
    out["customer"] = (account * 2).where(account.notna(), meter * 2 + 1)
    out["created_month"], out["created_quarter"] = _periods(out["created_at"], zone)
    out["completed_month"], out["completed_quarter"] = _periods(out["completed_at"], zone)
    # text as categories: the KPIs filter rows a dozen times, and a category moves as its small integer codes
    for c in ("type", "state", "building"):
        out[c] = out[c].astype("category")
    return out


def reopened(facts: pd.DataFrame, days: int = REOPEN_DAYS) -> set:
    """The ids of completed orders followed, within `days` after their completion, by a new order of the same
    type for the same customer (the customer came back: the fix did not hold)."""
    known = facts[facts["customer"].notna()]
    done = known[known["completed_at"].notna()]
    if done.empty:
        return set()
    later = known[["customer", "type", "created_at"]].rename(columns={"created_at": "next_at"}).sort_values("next_at")
    left = done[["customer", "type", "completed_at", "id"]].sort_values("completed_at")
    matched = pd.merge_asof(left, later, left_on="completed_at", right_on="next_at", by=["customer", "type"],
                            direction="forward", tolerance=pd.Timedelta(days=days), allow_exact_matches=False)
    return set(matched.loc[matched["next_at"].notna(), "id"])


def compute_kpis(facts: pd.DataFrame, now: dt.datetime, start: dt.datetime, end: dt.datetime,
                 *, online_rate: float | None = None) -> Kpis:
    """The KPIs of the orders created in [start, end) (naive UTC) as they stand at `now`; `facts` may hold later
    orders too (those that reopen the period's)."""
    period = facts[(facts["created_at"] >= start) & (facts["created_at"] < end)]
    live = period[period["state"] != "cancelled"]
    completed = live[live["completed_at"].notna()]
    with_due = live[live["due_at"].notna()]
    finished_or_now = with_due["completed_at"].fillna(pd.Timestamp(now))
    overdue = int((finished_or_now > with_due["due_at"]).sum())
    rated = live["satisfaction"].dropna()
    accepted = live[live["accepted_at"].notna()]
    response = _hours(accepted["accepted_at"] - accepted["created_at"])
    back = completed["id"].isin(reopened(facts))
    first_time = completed[(completed["rejections"] == 0) & ~back]
    return Kpis(
        orders=len(period),
        completion_rate=_rate(len(completed), len(live)),
        overdue_rate=_rate(overdue, len(with_due)),
        satisfaction_rate=_rate(int((rated >= SATISFIED).sum()), len(rated)),
        online_rate=online_rate,
        visits=int(live["visits"].sum()),
        first_response_h=None if response.empty else float(response.mean()),
        first_time_fix_rate=_rate(len(first_time), len(completed)),
        reopen_rate=_rate(int(back.sum()), len(completed)),
        repair_hours_by_month=repair_hours_by_month(completed),
    )


def repair_hours_by_month(facts: pd.DataFrame, order_type: str = "repair") -> pd.DataFrame:
    """Mean hours from creation to completion (less the time on hold) of `order_type` orders, by the site's
    month of completion: month ("YYYY-MM"), hours, orders."""
    done = facts[(facts["type"] == order_type) & facts["completed_at"].notna()]
    if done.empty:
        return pd.DataFrame({"month": pd.Series(dtype=str), "hours": pd.Series(dtype=float),
                             "orders": pd.Series(dtype=int)})
    hours = _hours(done["completed_at"] - done["created_at"]) - done["held_s"] / 3600.0
    out = pd.DataFrame({"month": done["completed_month"], "hours": hours}).groupby(
        "month", as_index=False).agg(hours=("hours", "mean"), orders=("hours", "size")).sort_values("month")
    return out.assign(month=[period_text(c) for c in out["month"]]).reset_index(drop=True)


def counts_by_period(facts: pd.DataFrame, grain: str = "month") -> pd.DataFrame:
    """Orders created and completed per type per site month ("2026-11") or quarter ("2026Q4"): period, type,
    created, completed (completed counted in the period of completion: "new meters installed this quarter")."""
    key = "quarter" if grain == "quarter" else "month"
    created = facts.groupby([f"created_{key}", "type"], observed=True).size().rename("created").rename_axis(
        ["period", "type"])
    done = facts[facts["completed_at"].notna()]
    completed = done.groupby([f"completed_{key}", "type"], observed=True).size().rename("completed").rename_axis(
        ["period", "type"])
    out = pd.concat([created, completed], axis=1).fillna(0).astype(int).reset_index()
    if out.empty:
        return pd.DataFrame({"period": pd.Series(dtype=str), "type": pd.Series(dtype=str),
                             "created": pd.Series(dtype=int), "completed": pd.Series(dtype=int)})
    out = out.assign(type=out["type"].astype(str)).sort_values(["period", "type"])
    return out.assign(period=[period_text(c, grain) for c in out["period"]]).reset_index(drop=True)


def orders_by_type(facts: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """工单分类统计表: per type: orders, completed, open, on hold, cancelled, overdue, completion rate, mean hours
    to completion (less hold). Rows in type order, no totals row (the table and the export add one)."""
    f = facts.assign(
        done=facts["completed_at"].notna(),
        open=facts["state"].isin(OPEN_STATES) & (facts["state"] != "on_hold"),
        held=facts["state"] == "on_hold",
        cancelled=facts["state"] == "cancelled",
        late=(facts["state"] != "cancelled") & facts["due_at"].notna()
        & (facts["completed_at"].fillna(pd.Timestamp(now)) > facts["due_at"]),
        hours=_hours(facts["completed_at"] - facts["created_at"]) - facts["held_s"] / 3600.0,
    )
    out = f.groupby("type", as_index=False, observed=True).agg(
        orders=("id", "size"), completed=("done", "sum"), open=("open", "sum"), on_hold=("held", "sum"),
        cancelled=("cancelled", "sum"), overdue=("late", "sum"), hours=("hours", "mean"))
    live = out["orders"] - out["cancelled"]
    out["completion_rate"] = (out["completed"] / live.where(live > 0)).astype(float)
    for c in ("orders", "completed", "open", "on_hold", "cancelled", "overdue"):
        out[c] = out[c].astype(int)
    return out.sort_values("type").reset_index(drop=True)


def totals_row(table: pd.DataFrame, sums: tuple[str, ...]) -> dict:
    """The totals of a statistics table's count columns (the last row of the table and of its export)."""
    return {c: (table[c].sum() if len(table) else 0) for c in sums}


@dataclass(frozen=True)
class KpiReport:
    """What the KPI page and its export show for a period of the site's local days."""
    first_day: dt.date
    last_day: dt.date
    kpis: Kpis
    by_type: pd.DataFrame          # orders_by_type
    by_month: pd.DataFrame         # counts_by_period(month)
    by_quarter: pd.DataFrame       # counts_by_period(quarter)
    tools: pd.DataFrame            # storage.workorder_kpis.items_by_class("tool")
    materials: pd.DataFrame        # ... ("material")
    types: list[dict]              # key, name_en, name_zh


MAX_DAYS = 366 * 2


def month_bounds(first: dt.datetime, last: dt.datetime, zone: dt.tzinfo) -> list[tuple[int, dt.datetime]]:
    """The site's months from the one holding the stored time `first` to the one holding `last`: (month code as
    _periods writes it, the month's first moment as naive UTC), ascending."""
    local = site_time(first, zone)
    year, month = local.year, local.month
    end = site_time(last, zone)
    out = []
    while (year, month) <= (end.year, end.month):
        out.append((year * 12 + month - 1, utc_time(dt.datetime(year, month, 1), zone)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


_SUMS = ("orders", "cancelled", "live", "completed", "open", "on_hold", "with_due", "overdue", "rated", "satisfied",
         "visits", "accepted", "first_time", "reopened", "done_hours_n")


def _period_groups(groups: list[dict]) -> list[dict]:
    """fact_groups' rows of the period, counts as int and seconds as float (a few hundred rows: plain Python, no
    frame: pandas' fixed costs were a third of the page's time)."""
    out = []
    for g in groups:
        if int(g["in_period"]) != 1:
            continue
        row = {c: int(g[c] or 0) for c in _SUMS}
        row.update(type=g["type"], created_month=int(g["created_month"]),
                   completed_month=None if g["completed_month"] is None else int(g["completed_month"]),
                   done_hours_s=float(g["done_hours_s"] or 0), response_s=float(g["response_s"] or 0))
        out.append(row)
    return out


def kpis_from_groups(groups: list[dict], online_rate: float | None = None) -> Kpis:
    """compute_kpis from storage.workorder_kpis.fact_groups: the same definitions, summed."""
    g = _period_groups(groups)
    s = {c: sum(r[c] for r in g) for c in _SUMS}
    response_s = sum(r["response_s"] for r in g)
    return Kpis(
        orders=s["orders"],
        completion_rate=_rate(s["completed"], s["live"]),
        overdue_rate=_rate(s["overdue"], s["with_due"]),
        satisfaction_rate=_rate(s["satisfied"], s["rated"]),
        online_rate=online_rate,
        visits=s["visits"],
        first_response_h=None if s["accepted"] == 0 else response_s / s["accepted"] / 3600.0,
        first_time_fix_rate=_rate(s["first_time"], s["completed"]),
        reopen_rate=_rate(s["reopened"], s["completed"]),
        repair_hours_by_month=_repair_from_groups(g),
    )


def _repair_from_groups(g: list[dict], order_type: str = "repair") -> pd.DataFrame:
    months: dict[int, list] = {}
    for r in g:
        if r["type"] == order_type and r["completed"] > 0:
            m = months.setdefault(r["completed_month"], [0.0, 0])
            m[0] += r["done_hours_s"]
            m[1] += r["completed"]
    keys = sorted(months)
    return pd.DataFrame({"month": pd.Series([period_text(k) for k in keys], dtype=str),
                         "hours": pd.Series([months[k][0] / months[k][1] / 3600.0 for k in keys], dtype=float),
                         "orders": pd.Series([months[k][1] for k in keys], dtype=int)})


BY_TYPE_COLUMNS = ("orders", "completed", "open", "on_hold", "cancelled", "overdue")


def by_type_from_groups(groups: list[dict]) -> pd.DataFrame:
    """orders_by_type from fact_groups."""
    types: dict[str, dict] = {}
    for r in _period_groups(groups):
        t = types.setdefault(r["type"], dict.fromkeys((*BY_TYPE_COLUMNS, "hs", "hn"), 0))
        for c in BY_TYPE_COLUMNS:
            t[c] += r[c]
        t["hs"] += r["done_hours_s"]
        t["hn"] += r["done_hours_n"]
    keys = sorted(types)
    nan = float("nan")
    live = [types[k]["orders"] - types[k]["cancelled"] for k in keys]
    return pd.DataFrame({
        "type": pd.Series(keys, dtype=object),
        **{c: pd.Series([types[k][c] for k in keys], dtype="int64") for c in BY_TYPE_COLUMNS},
        "hours": pd.Series([types[k]["hs"] / 3600.0 / types[k]["hn"] if types[k]["hn"] else nan for k in keys],
                           dtype=float),
        "completion_rate": pd.Series([types[k]["completed"] / n if n > 0 else nan for k, n in zip(keys, live)],
                                     dtype=float),
    })


def counts_from_groups(groups: list[dict], grain: str = "month") -> pd.DataFrame:
    """counts_by_period from fact_groups."""
    quarter = grain == "quarter"
    period = (lambda m: m // 12 * 4 + m % 12 // 3) if quarter else (lambda m: m)
    counts: dict[tuple[int, str], list[int]] = {}
    for r in _period_groups(groups):
        counts.setdefault((period(r["created_month"]), r["type"]), [0, 0])[0] += r["orders"]
        if r["completed"] > 0:
            counts.setdefault((period(r["completed_month"]), r["type"]), [0, 0])[1] += r["completed"]
    keys = sorted(k for k, (made, done) in counts.items() if made or done)
    return pd.DataFrame({"period": pd.Series([period_text(p, grain) for p, _ in keys], dtype=str),
                         "type": pd.Series([t for _, t in keys], dtype=str),
                         "created": pd.Series([counts[k][0] for k in keys], dtype=int),
                         "completed": pd.Series([counts[k][1] for k in keys], dtype=int)})


def kpi_report(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime, first_day: dt.date, last_day: dt.date,
               *, online_rate: float | None = None) -> KpiReport:
    """The KPIs and statistics tables of the orders created on the site's days first..last (inclusive): summed in
    the database (storage.workorder_kpis.fact_groups: a few hundred rows, not a row per order) and finished here
    by the definitions above."""
    if last_day < first_day:
        raise WorkOrderError("range_reversed")
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise WorkOrderError("range_too_long", days=MAX_DAYS)
    start = utc_time(dt.datetime.combine(first_day, dt.time()), zone)
    end = utc_time(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), zone)
    with engine.connect() as conn:
        lo, hi = sql.time_range(conn, start)
        if lo is None:
            groups = []
        else:
            groups = sql.fact_groups(conn, start, end, now, month_bounds(lo, hi, zone), REOPEN_DAYS, SATISFIED,
                                     OPEN_STATES)
        items = sql.items_by_class(conn, start, end)
        types = sql.order_types(conn)
    return KpiReport(first_day, last_day, kpis_from_groups(groups, online_rate), by_type_from_groups(groups),
                     counts_from_groups(groups, "month"), counts_from_groups(groups, "quarter"),
                     _kind(items, "tool"), _kind(items, "material"), types)


def kpi_report_from_facts(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime, first_day: dt.date,
                          last_day: dt.date, *, online_rate: float | None = None) -> KpiReport:
    """The same report from a frame of per-order facts (one row per order, the definitions above applied in
    pandas): the reference the summed report is tested against."""
    start = utc_time(dt.datetime.combine(first_day, dt.time()), zone)
    end = utc_time(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), zone)
    with engine.connect() as conn:
        facts = prepare_facts(sql.order_facts(conn, since=start), now, zone)
        items = sql.items_by_class(conn, start, end)
        types = sql.order_types(conn)
    period = facts[facts["created_at"] < end]
    return KpiReport(first_day, last_day, compute_kpis(facts, now, start, end, online_rate=online_rate),
                     orders_by_type(period, now), counts_by_period(period, "month"),
                     counts_by_period(period, "quarter"), _kind(items, "tool"), _kind(items, "material"),
                     types)


def _kind(items: pd.DataFrame, kind: str) -> pd.DataFrame:
    return items[items["kind"] == kind].drop(columns="kind").reset_index(drop=True)
