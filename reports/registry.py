"""Every report of the report centre, by name: its parameters, typed columns and the one service it runs. The
command line (`app.py report NAME`), the reports API (/api/v1/reports/NAME) and the pages read this table."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from billing.context import BillingContext
from billing.day_end import settlement_report
from billing.sales_report import sales_report
from collectors.lost_contact import lost_gateways, lost_meters
from core.text import CATALOG, quoted, t
from reports.spec import Column, ReportError, ReportParams, ReportSpec
from storage import alarm_queries
from storage.alarms import AlarmLevel, message_text


@dataclass(frozen=True)
class ReportEnv:
    """What a run needs: the billing context (database, site zone, clock) and the poll interval (reading gaps)."""
    ctx: BillingContext
    poll_interval_s: float = 60.0
    line_loss_limit: float = 0.10   # [analytics] line_loss_limit: a loss rate above it is high


def _money(key: str, total: bool = True, api: bool = True) -> Column:
    return Column(key, "money", 12, total, api)


def _count(key: str, api: bool = True) -> Column:
    return Column(key, "int", 9, True, api)


def _kwh(key: str, api: bool = True) -> Column:
    return Column(key, "kwh", 12, True, api)


# ---------------------------------------------------------------------------------------------
# runs: each calls one service and shapes its rows to the columns
def _sales(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    return sales_report(env.ctx, p.first_day, p.last_day, by=p.by, group=p.group, operator=p.operator,
                        building=p.building, channel=p.channel)


def _energy(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    try:
        from energy.analysis import Place, energy_report
    except ImportError:
        raise ReportError("report_unavailable", report="energy") from None
    frame = energy_report(env.ctx.engine, env.ctx.tz, p.first_day, p.last_day, by=p.by, group=p.group,
                          place=Place(building=p.building, floor=p.floor, rooms=(p.room,) if p.room else ()))
    rows = frame_rows(frame)
    for r in rows:
        r["period"] = period_text(r.get("period"), p.by)
        r["estimated"] = bool(r.get("estimated"))
    return rows


def _settlement(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    return settlement_report(env.ctx, p.first_day, p.last_day, operator=p.operator)


def _lost_meters(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    rows = lost_meters(env.ctx.engine, env.ctx.tz, env.ctx.now(), building=p.building)
    for r in rows:
        r["cause"] = t(f"report.cause.{r['cause']}", lang)
    return rows


def _lost_gateways(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    return lost_gateways(env.ctx.engine, env.ctx.tz, env.ctx.now())


def _alarms(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    return _alarm_rows(env, alarm_queries.AlarmQuery(open_only=True), p, lang)


def _alarm_history(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    since, until = _utc_range(env.ctx, p.first_day, p.last_day)
    return _alarm_rows(env, alarm_queries.AlarmQuery(since=since, until=until), p, lang)


def _alarm_rows(env: ReportEnv, query, p: ReportParams, lang: str) -> list[dict]:
    with env.ctx.engine.connect() as conn:
        frame, _more = alarm_queries.list_alarms(conn, query)
    rows = []
    for r in frame_rows(frame):
        if p.building and r.get("building") != p.building:
            continue
        rows.append({"opened_at": env.ctx.local(r["opened_at"]),
                     "closed_at": env.ctx.local(r["closed_at"]) if r.get("closed_at") else None,
                     "level": t(f"alarm.level.{AlarmLevel(int(r['level'])).name.lower()}", lang),
                     "kind": CATALOG.get(lang, CATALOG["en"]).get(f"alarm.kind.{r['kind']}", r["kind"]),
                     "meter": r.get("meter"), "gateway": r.get("gateway"), "building": r.get("building"),
                     "room": r.get("room"), "message": message_text(r, lang),
                     "acknowledged_by": r.get("acknowledged_by"),
                     "acknowledged_at": env.ctx.local(r["acknowledged_at"]) if r.get("acknowledged_at") else None})
    return rows


def _readings(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from energy.history import HistoryError, reading_history
    try:
        history = reading_history(env.ctx.engine, env.ctx.tz, p.meter, p.first_day, p.last_day,
                                  poll_interval_s=env.poll_interval_s)
    except HistoryError as exc:
        raise ReportError("meter_history", reason=exc.message(lang)) from None
    rows = frame_rows(history.rows)
    for r in rows:
        r["flags"] = " ".join(r.get("flags") or [])
    return rows


def _instrument_energy(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from energy.history import HistoryError, instrument_difference
    try:
        d = instrument_difference(env.ctx.engine, env.ctx.tz, p.meter, p.first_day, p.last_day)
    except HistoryError as exc:
        raise ReportError("meter_history", reason=exc.message(lang)) from None
    return [{"register": t(f"report.register.{name}", lang),
             "start_at": d.start.ts if d.start else None, "start": d.start.registers.get(name) if d.start else None,
             "end_at": d.end.ts if d.end else None, "end": d.end.registers.get(name) if d.end else None,
             "counted": counted, "energy_kwh": None if counted is None else round(counted * d.ct_ratio, 2)}
            for name, counted in d.counted.items()]


def _line_loss(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from grid.line_loss import LineLossSettings, line_loss
    frame = line_loss(env.ctx.engine, env.ctx.tz, p.first_day, p.last_day, by=p.by or "day",
                      settings=LineLossSettings(limit=env.line_loss_limit))
    rows = frame_rows(frame)
    for r in rows:
        r["class_text"] = t(f"line_loss.class.{r['class']}", lang)
    return rows


def _line_loss_meters(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from grid.line_loss import site_hints
    return frame_rows(site_hints(env.ctx.engine, env.ctx.tz, p.first_day, p.last_day))


def _power_quality(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from grid.power_quality import site_quality
    quality = site_quality(env.ctx.engine, env.ctx.tz, p.first_day, p.last_day, by=p.by or "day",
                           max_gap_s=2 * env.poll_interval_s)
    rows = frame_rows(quality.rates)
    for r in rows:
        r["kind"] = t(f"power_quality.point.{r['kind']}", lang)
    return rows


def _power_quality_stats(env: ReportEnv, p: ReportParams, lang: str) -> list[dict]:
    from grid.power_quality import site_quality
    quality = site_quality(env.ctx.engine, env.ctx.tz, p.first_day, p.last_day, by=p.by or "day",
                           max_gap_s=2 * env.poll_interval_s)
    rows = frame_rows(quality.stats)
    for r in rows:
        r["kind"] = t(f"power_quality.point.{r['kind']}", lang)
        r["quantity_text"] = t(f"power_quality.quantity.{r['quantity']}", lang)
    return rows


# ---------------------------------------------------------------------------------------------
# helpers
def frame_rows(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame's rows as plain dicts: NaN and NaT as None, numpy scalars as Python ones, Timestamps as datetimes.
    Converted a column at a time (a 100,000-row export: one conversion per column, not per value)."""
    names = list(frame.columns)
    return [dict(zip(names, values)) for values in zip(*[_python_values(frame.iloc[:, i])
                                                         for i in range(len(names))])] if len(frame) else []


def _python_values(col: pd.Series) -> list:
    missing = col.isna().to_numpy()
    kind = col.dtype.kind
    if kind == "M" and getattr(col.dtype, "tz", None) is None:
        values = list(pd.DatetimeIndex(col).to_pydatetime())
    elif kind in "iufb" and not missing.any():
        return col.tolist()
    else:
        values = [v.to_pydatetime() if isinstance(v, pd.Timestamp) else v.item() if hasattr(v, "item")
                  and not isinstance(v, (str, bytes)) else v for v in col.astype(object).tolist()]
    if missing.any():
        values = [None if gone else v for v, gone in zip(values, missing)]
    return values


def period_text(value, by: str | None) -> str:
    """A period as the reports label it: "2026-11-01 13:00", "2026-11-01", "2026-11", "2026"."""
    if value is None or isinstance(value, str):
        return value or ""
    fmt = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}.get(by or "day")
    return pd.Timestamp(value).strftime(fmt)


def _utc_range(ctx: BillingContext, first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    from billing.sales_report import local_bounds
    return local_bounds(ctx, first, last)


RANGE = frozenset({"from", "to"})
_PLACE = (Column("building", "text", 16), Column("floor", "int", 7), Column("room", "text", 12))

REPORTS: dict[str, ReportSpec] = {s.name: s for s in (
    ReportSpec("sales", (Column("period", "text", 17), _money("sales"), _money("refunds"), _money("reversals"),
                         _money("net"), _count("count"), _money("pending", api=False),
                         _count("sales_count", api=False), _count("refunds_count", api=False),
                         _count("reversals_count", api=False)),
               _sales, takes=RANGE | {"by", "group", "operator", "building", "channel"},
               by=("day", "month", "year", "hour"), groups=("operator", "building", "channel"),
               group_columns={"operator": (Column("operator", "text", 16),),
                              "building": (Column("building", "text", 16),),
                              "channel": (Column("channel", "text", 10),)},
               max_days=3660, max_days_by={"hour": 31}, chart="net"),
    ReportSpec("energy", (Column("period", "text", 17), _kwh("energy_kwh"), _kwh("energy_sharp", False),
                          _kwh("energy_peak", False), _kwh("energy_flat", False), _kwh("energy_valley", False),
                          Column("estimated", "bool", 10)),
               _energy, takes=RANGE | {"by", "group", "place"}, by=("day", "hour", "month"),
               groups=("site", "building", "floor", "room"), default_group="site",
               group_columns={"building": _PLACE[:1], "floor": _PLACE[:2], "room": _PLACE},
               max_days=366, max_days_by={"hour": 31}, chart="energy_kwh"),
    ReportSpec("settlement", (Column("day", "date", 12), Column("operator", "text", 16), _money("sales"),
                              _count("sales_count"), _money("refunds"), _count("refunds_count"), _money("reversals"),
                              _count("reversals_count"), _money("closing_refunds"), _money("net"), _money("cash"),
                              _money("correction"), _money("cash_correction"), _money("to_hand_over"),
                              Column("closed", "bool", 8), Column("closed_by", "text", 14),
                              Column("closed_at", "datetime", 19)),
               _settlement, takes=RANGE | {"operator"}, max_days=92),
    ReportSpec("lost-meters", (Column("meter", "text", 14), *_PLACE, Column("gateway", "text", 16),
                               Column("bus_no", "int", 6), Column("lost_since", "datetime", 19),
                               Column("lost_hours", "number", 10), Column("cause", "text", 18),
                               Column("last_seen", "datetime", 19), Column("last_error", "text", 30)),
               _lost_meters, takes=frozenset({"building"})),
    ReportSpec("lost-gateways", (Column("gateway", "text", 16), Column("host", "text", 16),
                                 Column("lost_buses", "int", 8), Column("buses", "int", 8),
                                 Column("lost_since", "datetime", 19), Column("lost_hours", "number", 10),
                                 _count("meters_taken"), Column("meters", "text", 40),
                                 Column("last_error", "text", 30)),
               _lost_gateways),
    ReportSpec("alarms", (Column("opened_at", "datetime", 19), Column("level", "text", 10), Column("kind", "text", 18),
                          Column("meter", "text", 14), Column("gateway", "text", 14), Column("building", "text", 14),
                          Column("room", "text", 10), Column("message", "text", 40),
                          Column("acknowledged_by", "text", 14), Column("acknowledged_at", "datetime", 19)),
               _alarms, takes=frozenset({"building"})),
    ReportSpec("alarm-history", (Column("opened_at", "datetime", 19), Column("closed_at", "datetime", 19),
                                 Column("level", "text", 10), Column("kind", "text", 18), Column("meter", "text", 14),
                                 Column("gateway", "text", 14), Column("building", "text", 14),
                                 Column("room", "text", 10), Column("message", "text", 40),
                                 Column("acknowledged_by", "text", 14), Column("acknowledged_at", "datetime", 19)),
               _alarm_history, takes=RANGE | {"building"}, max_days=366),
    ReportSpec("readings", (Column("ts", "datetime", 19), _kwh("energy_total", False), _kwh("energy_sharp", False),
                            _kwh("energy_peak", False), _kwh("energy_flat", False), _kwh("energy_valley", False),
                            Column("power_total", "number", 10), Column("voltage_a", "number", 9),
                            Column("current_a", "number", 9), _money("balance", total=False),
                            Column("purchase_count", "int", 9), Column("relay_closed", "bool", 8),
                            Column("flags", "text", 20), Column("gap_minutes", "number", 9),
                            Column("comm_gap", "bool", 8)),
               _readings, takes=RANGE | {"meter"}, required=frozenset({"meter"}), max_days=92),
    ReportSpec("instrument-energy", (Column("register", "text", 16), Column("start_at", "datetime", 19),
                                     Column("start", "kwh", 14), Column("end_at", "datetime", 19),
                                     Column("end", "kwh", 14), Column("counted", "kwh", 12),
                                     Column("energy_kwh", "kwh", 12)),
               _instrument_energy, takes=RANGE | {"meter"}, required=frozenset({"meter"}), max_days=3660),
    ReportSpec("line-loss", (Column("period", "text", 11), Column("area", "text", 16), _kwh("supply_kwh"),
                             _kwh("sales_kwh"), _kwh("loss_kwh"), Column("loss_rate", "percent", 10),
                             Column("class", "text", 14), Column("class_text", "text", 14, api=False),
                             Column("interpolated", "bool", 10), Column("missing_meters", "text", 30)),
               _line_loss, takes=RANGE | {"by"}, by=("day", "month"), max_days=366, chart="loss_kwh"),
    ReportSpec("line-loss-meters", (Column("area", "text", 16), Column("meter", "text", 14),
                                    Column("correlation", "number", 11), Column("days", "int", 6),
                                    _kwh("kwh")),
               _line_loss_meters, takes=RANGE, max_days=92),
    ReportSpec("power-quality", (Column("period", "text", 11), Column("area", "text", 16), Column("point", "text", 14),
                                 Column("kind", "text", 14), Column("phases", "int", 7),
                                 Column("band_low", "number", 9), Column("band_high", "number", 9),
                                 Column("monitored_h", "number", 10), Column("above_h", "number", 9),
                                 Column("below_h", "number", 9), Column("rate", "percent", 9)),
               _power_quality, takes=RANGE | {"by"}, by=("day", "month"), max_days=62),
    ReportSpec("power-quality-stats", (Column("period", "text", 11), Column("area", "text", 16),
                                       Column("point", "text", 14), Column("kind", "text", 14),
                                       Column("quantity", "text", 18), Column("quantity_text", "text", 22, api=False),
                                       Column("samples", "int", 8), Column("mean", "percent", 9),
                                       Column("max", "percent", 9), Column("p95", "percent", 9),
                                       Column("over_limit_h", "number", 10), Column("limit", "percent", 8),
                                       Column("method", "text", 12)),
               _power_quality_stats, takes=RANGE | {"by"}, by=("day", "month"), max_days=62),
)}


def report(name: str) -> ReportSpec:
    """The report of this name; ReportError report_unknown otherwise."""
    spec = REPORTS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ReportError("report_unknown", name=quoted(name), known=", ".join(REPORTS))
    return spec
