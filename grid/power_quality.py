"""Power quality of a transformer area's monitoring points: voltage qualification rate (time within the band),
three-phase voltage unbalance (from magnitudes), current unbalance, power factor, THD of voltage and current;
daily and monthly statistics, and alarms (through the alarm service) when a day's statistic breaks its limit."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from grid.line_loss import local_midnight, period_label, period_starts
from storage import alarms
from storage import grid as store

# Bands: 380 V three-phase +-7 % (on the phase voltage: the area's nominal, 220 or 230 V); 220 V single-phase
# +7 % / -10 % (GB/T 12325).
THREE_PHASE_BAND = (-0.07, 0.07)
SINGLE_PHASE_BAND = (-0.10, 0.07)
DEFAULT_NOMINAL_V = 220.0
# Limits (GB/T 15543, GB/T 14549, the utility's current rule): the daily 95th percentile must stay within them;
# voltage unbalance also has a short-time limit for the day's maximum.
VOLTAGE_UNBALANCE_LIMIT = 0.02
VOLTAGE_UNBALANCE_SHORT_LIMIT = 0.04
CURRENT_UNBALANCE_LIMIT = 0.15
THD_U_LIMIT = 0.05
# Quantities with statistics: (name, limit or None). Fractions, like loss rates (power factor: itself).
QUANTITIES = (("voltage_unbalance", VOLTAGE_UNBALANCE_LIMIT), ("current_unbalance", CURRENT_UNBALANCE_LIMIT),
              ("power_factor", None), ("thd_u", THD_U_LIMIT), ("thd_i", None))
ALARM_KINDS = {"voltage_unbalance": "pq_voltage_unbalance", "current_unbalance": "pq_current_unbalance",
               "thd_u": "pq_thd_u"}
UNBALANCE_METHOD = "magnitudes"   # angles are not measured: the triangle formula on the three magnitudes


# ---------------------------------------------------------------------------------------------
# pure functions on series
def sample_seconds(ts: pd.Series, end: pd.Timestamp | dt.datetime, max_gap_s: float) -> np.ndarray:
    """How long each sample stands for: until the next sample (or `end` for the last), at most max_gap_s (a
    longer silence is not monitored time)."""
    t = pd.to_datetime(ts).to_numpy(dtype="datetime64[ns]")
    if len(t) == 0:
        return np.zeros(0)
    nxt = np.append(t[1:], np.datetime64(pd.Timestamp(end).to_datetime64(), "ns"))
    return np.clip((nxt - t) / np.timedelta64(1, "s"), 0, max_gap_s)


def voltage_band(nominal: float, phases: int) -> tuple[float, float]:
    low, high = THREE_PHASE_BAND if phases == 3 else SINGLE_PHASE_BAND
    return nominal * (1 + low), nominal * (1 + high)


@dataclass(frozen=True)
class Qualification:
    monitored_s: float
    above_s: float
    below_s: float

    @property
    def rate(self) -> float | None:
        """(1 - (time above + time below) / time monitored); None when nothing was monitored."""
        if self.monitored_s <= 0:
            return None
        return 1 - (self.above_s + self.below_s) / self.monitored_s


def qualification(volts: pd.DataFrame, seconds: np.ndarray, band: tuple[float, float]) -> Qualification:
    """Time above and below the band over the samples (columns: one per phase). A three-phase sample is above
    when any phase is above the band, else below when any phase is below; a sample without a voltage is not
    monitored."""
    v = volts.to_numpy(dtype=float)
    seen = ~np.isnan(v).all(axis=1)
    above = np.nan_to_num(v, nan=-np.inf).max(axis=1) > band[1]
    below = ~above & (np.nan_to_num(v, nan=np.inf).min(axis=1) < band[0])
    return Qualification(float(seconds[seen].sum()), float(seconds[seen & above].sum()),
                         float(seconds[seen & below].sum()))


def voltage_unbalance(a, b, c) -> np.ndarray:
    """Negative- over positive-sequence voltage from the three magnitudes alone (angles not measured): the
    triangle formula u = sqrt((1 - sqrt(3 - 6L)) / (1 + sqrt(3 - 6L))), L = (a^4 + b^4 + c^4) / (a^2 + b^2 + c^2)^2,
    exact for three phasors that close a triangle (line-to-line voltages); on phase voltages it is the usual
    estimate. A fraction; NaN where a phase is missing or zero."""
    a, b, c = (np.asarray(x, dtype=float) for x in (a, b, c))
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = a * a + b * b + c * c
        big_l = (a ** 4 + b ** 4 + c ** 4) / (s2 * s2)
        root = np.sqrt(np.clip(3 - 6 * big_l, 0, None))
        out = np.sqrt(np.clip((1 - root) / (1 + root), 0, None))
    out[(a <= 0) | (b <= 0) | (c <= 0) | np.isnan(a + b + c)] = np.nan
    return out


def current_unbalance(a, b, c) -> np.ndarray:
    """(Imax - Imin) / Imax per sample, a fraction; NaN where the largest current is 0 or a phase is missing."""
    i = np.column_stack([np.asarray(x, dtype=float) for x in (a, b, c)])
    with np.errstate(invalid="ignore", divide="ignore"):
        hi, lo = i.max(axis=1), i.min(axis=1)
        return np.where(hi > 0, (hi - lo) / hi, np.nan)


def statistics(values: np.ndarray, seconds: np.ndarray, limit: float | None) -> dict:
    """mean, max, 95th percentile of the samples and the time over the limit (seconds); NaN samples left out."""
    ok = ~np.isnan(values)
    if not ok.any():
        return {"samples": 0, "mean": None, "max": None, "p95": None, "over_limit_s": None}
    v, s = values[ok], seconds[ok]
    return {"samples": int(ok.sum()), "mean": float(v.mean()), "max": float(v.max()),
            "p95": float(np.percentile(v, 95)),
            "over_limit_s": None if limit is None else float(s[v > limit].sum())}


# ---------------------------------------------------------------------------------------------
# the service
RATE_COLUMNS = ("period", "point", "kind", "phases", "band_low", "band_high", "monitored_h", "above_h", "below_h",
                "rate")
STAT_COLUMNS = ("period", "point", "kind", "quantity", "samples", "mean", "max", "p95", "over_limit_h", "limit",
                "method")


@dataclass(frozen=True)
class AreaQuality:
    rates: pd.DataFrame        # RATE_COLUMNS: per monitoring point and period, and the area's ("*") per period
    stats: pd.DataFrame        # STAT_COLUMNS: per three-phase point, period and quantity


def area_quality(engine: sa.Engine, tz: dt.tzinfo, area_id: int, first: dt.date, last: dt.date, by: str = "day",
                 max_gap_s: float = 3600.0, three_phase_only: bool = False) -> AreaQuality:
    """The area's power quality per period (local days or months, both ends inclusive): the voltage
    qualification rate of each monitoring point (terminal and master meter three-phase, prepaid meters on
    voltage_a single-phase) and of the area (its points' times summed), and the statistics of the three-phase
    points."""
    starts = period_starts(first, last, by)
    bounds = [local_midnight(d, tz) for d in starts]
    with engine.connect() as conn:
        area = store.areas(conn).set_index("id").loc[int(area_id)]
        points = store.area_points(conn, area_id)
        if three_phase_only:
            points = points[points["kind"] != "customer"]
        series = store.point_readings(conn, list(points["meter_id"]), bounds[0], bounds[-1])
        harmonics = store.point_harmonics(conn, list(points.loc[points["kind"] != "customer", "meter_id"]),
                                          bounds[0], bounds[-1])
    nominal = float(area["nominal_voltage"]) if pd.notna(area["nominal_voltage"]) else DEFAULT_NOMINAL_V
    rates, stats = [], []
    empty_series, empty_thd = series.iloc[:0], harmonics.iloc[:0]
    series_of = dict(tuple(series.groupby("meter_id")))
    thd_of = dict(tuple(harmonics.groupby("meter_id")))
    for k in range(len(starts) - 1):
        label, lo, hi = period_label(starts[k], by), bounds[k], bounds[k + 1]
        total = [0.0, 0.0, 0.0]
        for p in points.itertuples():
            three = p.kind != "customer"
            mine = series_of.get(p.meter_id, empty_series)
            rows = mine[(mine["ts"] >= lo) & (mine["ts"] < hi)]
            secs = sample_seconds(rows["ts"], hi, max_gap_s)
            cols = ["voltage_a", "voltage_b", "voltage_c"] if three else ["voltage_a"]
            band = voltage_band(nominal, 3 if three else 1)
            q = qualification(rows[cols], secs, band)
            total = [total[0] + q.monitored_s, total[1] + q.above_s, total[2] + q.below_s]
            rates.append({"period": label, "point": p.address, "kind": p.kind, "phases": 3 if three else 1,
                          "band_low": round(band[0], 1), "band_high": round(band[1], 1),
                          "monitored_h": q.monitored_s / 3600, "above_h": q.above_s / 3600,
                          "below_h": q.below_s / 3600, "rate": q.rate})
            if three:
                mine = thd_of.get(p.meter_id, empty_thd)
                thd = mine[(mine["ts"] >= lo) & (mine["ts"] < hi)]
                stats += _point_stats(label, p, rows, secs, thd, sample_seconds(thd["ts"], hi, max_gap_s))
        area_q = Qualification(*total)
        rates.append({"period": label, "point": "*", "kind": "area", "phases": None, "band_low": None,
                      "band_high": None, "monitored_h": area_q.monitored_s / 3600,
                      "above_h": area_q.above_s / 3600, "below_h": area_q.below_s / 3600, "rate": area_q.rate})
    return AreaQuality(pd.DataFrame(rates, columns=list(RATE_COLUMNS)), pd.DataFrame(stats, columns=list(STAT_COLUMNS)))


def site_quality(engine: sa.Engine, tz: dt.tzinfo, first: dt.date, last: dt.date, by: str = "day",
                 max_gap_s: float = 3600.0) -> AreaQuality:
    """area_quality of every transformer area, with an `area` column after the period."""
    with engine.connect() as conn:
        areas = store.areas(conn)
    rates, stats = [], []
    for area_id, name in zip(areas["id"], areas["name"]):
        q = area_quality(engine, tz, int(area_id), first, last, by, max_gap_s)
        rates.append(q.rates.assign(area=name))
        stats.append(q.stats.assign(area=name))
    order = lambda cols: ["period", "area", *cols[1:]]  # noqa: E731
    if not rates:
        return AreaQuality(pd.DataFrame(columns=order(list(RATE_COLUMNS))),
                           pd.DataFrame(columns=order(list(STAT_COLUMNS))))
    return AreaQuality(pd.concat(rates, ignore_index=True)[order(list(RATE_COLUMNS))],
                       pd.concat(stats, ignore_index=True)[order(list(STAT_COLUMNS))])


def _point_stats(label: str, p, rows: pd.DataFrame, secs: np.ndarray, thd: pd.DataFrame,
                 thd_secs: np.ndarray) -> list[dict]:
    values = {
        "voltage_unbalance": voltage_unbalance(rows["voltage_a"], rows["voltage_b"], rows["voltage_c"]),
        "current_unbalance": current_unbalance(rows["current_a"], rows["current_b"], rows["current_c"]),
        "power_factor": rows["pf_total"].to_numpy(dtype=float),
    }
    # THD is kept in percent by the profiles; the statistics are fractions like the others
    thd_u = thd[["thd_u_a", "thd_u_b", "thd_u_c"]].to_numpy(dtype=float) / 100
    thd_i = thd[["thd_i_a", "thd_i_b", "thd_i_c"]].to_numpy(dtype=float) / 100
    out = []
    for name, limit in QUANTITIES:
        if name in ("thd_u", "thd_i"):
            block = thd_u if name == "thd_u" else thd_i
            with np.errstate(all="ignore"):
                v = np.where(np.isnan(block).all(axis=1), np.nan, np.nanmax(np.nan_to_num(block, nan=-1), axis=1)) \
                    if len(block) else np.zeros(0)
            s = thd_secs
        else:
            v, s = values[name], secs
        st = statistics(v, s, limit)
        out.append({"period": label, "point": p.address, "kind": p.kind, "quantity": name, "samples": st["samples"],
                    "mean": st["mean"], "max": st["max"], "p95": st["p95"],
                    "over_limit_h": None if st["over_limit_s"] is None else st["over_limit_s"] / 3600,
                    "limit": limit, "method": UNBALANCE_METHOD if name == "voltage_unbalance" else None})
    return out


def breaches(stats: pd.DataFrame) -> pd.DataFrame:
    """The statistics that break their limit: the 95th percentile above the limit, or for voltage unbalance the
    day's maximum above the short-time limit (4 %)."""
    if stats.empty:
        return stats
    limit = stats["limit"].astype(float)
    p95_over = stats["p95"].astype(float) > limit
    short_over = (stats["quantity"] == "voltage_unbalance") & (stats["max"].astype(float) > VOLTAGE_UNBALANCE_SHORT_LIMIT)
    return stats[(p95_over | short_over) & stats["quantity"].isin(list(ALARM_KINDS))]


def evaluate_day(engine: sa.Engine, tz: dt.tzinfo, day: dt.date, now: dt.datetime,
                 area_ids: Sequence[int] | None = None, max_gap_s: float = 3600.0) -> dict:
    """The day's statistics of every area's three-phase points against their limits, through the alarm service:
    an event per point and quantity that broke its limit (opened, or updated if open), and the open events of
    the points and quantities back within it closed. Returns the counts opened and closed."""
    with engine.connect() as conn:
        areas = store.areas(conn)
    ids = list(areas["id"]) if area_ids is None else [int(a) for a in area_ids]
    opened = closed = 0
    for area_id in ids:
        q = area_quality(engine, tz, area_id, day, day, "day", max_gap_s, three_phase_only=True)
        if q.stats.empty:
            continue
        broken = breaches(q.stats)
        with engine.connect() as conn:
            points = store.area_points(conn, area_id).set_index("address")["meter_id"]
        with engine.begin() as conn:
            for r in broken.itertuples():
                short = r.quantity == "voltage_unbalance" and r.max > VOLTAGE_UNBALANCE_SHORT_LIMIT
                value, limit = (r.max, VOLTAGE_UNBALANCE_SHORT_LIMIT) if short else (r.p95, r.limit)
                alarms.open_alarm(conn, ALARM_KINDS[r.quantity], alarms.meter(int(points[r.point])),
                                  alarms.AlarmLevel.WARNING, "pq_limit",
                                  {"day": day.isoformat(), "point": r.point, "statistic": "max" if short else "p95",
                                   "value": f"{value * 100:.2f} %", "limit": f"{limit * 100:g} %"}, now)
                opened += 1
            fine = q.stats[q.stats["quantity"].isin(list(ALARM_KINDS)) & q.stats["samples"].gt(0)
                           & ~q.stats.index.isin(broken.index)]
            for quantity, group in fine.groupby("quantity"):
                closed += alarms.close_alarms_of(conn, ALARM_KINDS[quantity],
                                                 [alarms.meter(int(points[a])) for a in group["point"]], now)
    return {"opened": opened, "closed": closed}


def attach_power_quality(engine: sa.Engine, tz: dt.tzinfo, clock, jobs, interval_s: float = 3600.0,
                         max_gap_s: float = 3600.0) -> None:
    """The scheduler's `power_quality` job: yesterday's (local) statistics against their limits, every
    interval_s (re-evaluating a day is harmless: an open event is updated, not doubled)."""
    def run() -> dict:
        now = clock()
        yesterday = (now.replace(tzinfo=dt.timezone.utc).astimezone(tz) - dt.timedelta(days=1)).date()
        return {"day": yesterday.isoformat(), **evaluate_day(engine, tz, yesterday, now, max_gap_s=max_gap_s)}
    jobs.add(JOB, run, interval_s)


JOB = "power_quality"
