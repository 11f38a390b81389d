"""Shadow billing: what each meter should have deducted per day (its readings times the tariff versions in
force) against what its balance actually lost (balance change plus the money the ledger sent it).

The expected cost of an interval between two readings uses the tariff assigned to the meter and
the version valid at the interval's start: flat = energy x flat price; time of use = each energy
register's increase x its price (the meter splits energy by its own segment table); tiered =
energy x the price of the tier the calendar month's use before the interval falls in (tier bounds
are kWh per month, SET_TARIFF). The month is the site's calendar month of the interval's end and its
use counts from the month's first interval, whatever day the report starts on: readings from before
the report's first day are read for that (a meter whose readings start within the month, or a meter
replaced in place, counts from its first reading). Registers show 0.01 kWh: when the month's use
before an interval is that close to a tier bound, the meter may have charged either tier, and the
interval's price difference is the day's tolerance (a day is reported only when off by more).
The actual deduction is exact (fen): previous balance - balance + ledger amounts with purchase
counts between the two readings. Expected values are model estimates in float kWh, turned into
money once with the one rounding rule.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from billing.money import round_money
from billing.tariffs import version_body
from storage import billing as store

MIN_DIFFERENCE = Decimal("0.05")  # below this a day's difference is rounding (registers are 0.01 kWh)
# Readings are read from this long before the first month's start, so that month's first interval (the one that
# ends in it) starts at the month's last reading before it even after the meter was silent for days.
MONTH_LEAD = dt.timedelta(days=7)
# Registers show 0.01 kWh and the meter counts finer: a month's use read from them is within this of the meter's.
REGISTER_STEP_KWH = 0.01


@dataclass(frozen=True)
class ShadowDay:
    meter_address: str
    day: dt.date
    energy_kwh: float
    expected: Decimal
    actual: Decimal
    tolerance: Decimal = Decimal("0.00")   # expected may be off by this much: the month's use was at a tier bound

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    @property
    def ratio(self) -> float | None:
        """|actual - expected| / expected (None when nothing was expected)."""
        return None if self.expected == 0 else float(abs(self.difference) / self.expected)


def tariff_periods(conn: sa.Connection, meter_ids: list[int] | None):
    """Per meter: (change times, [(mode, body) or None]) - the tariff version in force from each change time.
    `meter_ids` None: every meter (no list of ids in the query)."""
    modes = {t["id"]: t["mode"] for t in store.tariffs(conn)}
    versions: dict[int, list[tuple[dt.datetime, int, object]]] = {}
    for v in store.versions_of(conn):
        versions.setdefault(v["tariff_id"], []).append((v["valid_from"], v["version_no"], version_body(v)))
    for vs in versions.values():
        vs.sort(key=lambda x: (x[0], x[1]))
    assigned: dict[int, list[tuple[dt.datetime, int]]] = {}
    for row in store.meter_tariff_history(conn, meter_ids):
        assigned.setdefault(row["meter_id"], []).append((row["valid_from"], row["tariff_id"]))
    out = {}
    for mid, rows in assigned.items():
        times, bodies = [], []
        for i, (since, tariff_id) in enumerate(rows):
            until = rows[i + 1][0] if i + 1 < len(rows) else None
            current = None
            for valid_from, _no, body in versions.get(tariff_id, []):
                if valid_from <= since:
                    current = body
            times.append(since)
            bodies.append(None if current is None else (modes[tariff_id], current))
            for valid_from, _no, body in versions.get(tariff_id, []):
                if since < valid_from and (until is None or valid_from < until):
                    times.append(valid_from)
                    bodies.append((modes[tariff_id], body))
        out[mid] = (np.array([np.datetime64(t, "us") for t in times]), bodies)
    return out


def _interval_costs(mode: str, body, d: np.ndarray, before_month: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected yuan of each interval, and by how much it may be off because the month's use sits within the
    registers' resolution of a tier bound (either tier may be the meter's); d = register increases (total,
    sharp, peak, flat, valley)."""
    prices = np.array([float(p) for p in body.prices])
    if mode == "tou":
        return np.maximum(d[:, 1:], 0.0) @ prices, np.zeros(len(d))
    total = np.maximum(d[:, 0], 0.0)
    if mode == "tiered":
        bounds = np.array([np.inf if b is None else float(b) for b, _ in body.tiers])
        tier_prices = np.array([float(p) for _, p in body.tiers])

        def price(use):
            return tier_prices[np.minimum(np.searchsorted(bounds, use, side="right"), len(tier_prices) - 1)]
        spread = np.abs(price(before_month + REGISTER_STEP_KWH) - price(before_month - REGISTER_STEP_KWH))
        return total * price(before_month), total * spread
    return total * prices[2], np.zeros(len(d))


def _month_start(start: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Naive UTC start of the site's calendar month holding `start` (naive UTC)."""
    local = start.replace(tzinfo=dt.UTC).astimezone(tz)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return first.replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)


def _local_seconds(ts: np.ndarray, tz: dt.tzinfo) -> np.ndarray:
    """Naive UTC datetime64 -> the site's wall-clock time as seconds since 1970 (any zone, daylight saving too)."""
    local = pd.DatetimeIndex(ts).tz_localize("UTC").tz_convert(tz).tz_localize(None)
    return local.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """For each position, the index of the first position of its run of equal keys (all keys equal)."""
    n = len(keys[0])
    new = np.ones(n, dtype=bool)
    new[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in keys])
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def shadow_billing(engine: sa.Engine, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo,
                   meter_ids: list[int] | None = None) -> list[ShadowDay]:
    """Per meter and local day, expected vs actual deduction over readings in [start, end)."""
    with engine.connect() as conn:
        ids = meter_ids if meter_ids is not None else store.opened_meter_ids(conn)
        if not ids:
            return []
        periods = tariff_periods(conn, ids)
        frame = store.readings_frame(conn, ids, _month_start(start, tz) - MONTH_LEAD, end)
        paid: dict[int, dict[int, dict[int, int]]] = {}    # meter -> count epoch -> count -> fen
        for mid, epoch, count, amount in store.live_amounts_by_count(conn, ids):
            by_count = paid.setdefault(mid, {}).setdefault(int(epoch), {})
            by_count[int(count)] = by_count.get(int(count), 0) + int(Decimal(amount) * 100)
        epochs = store.epoch_starts(conn, ids)
        addresses = store.meter_addresses(conn, ids)
    first_reported = np.datetime64(start, "us")
    # whole columns once (the frame is ordered by meter and time), then each meter's slice of them
    meter_col = frame["meter_id"].to_numpy(dtype=np.int64)
    ts_col = frame["ts"].to_numpy(dtype="datetime64[us]")
    reg_col = frame[["energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley"]].to_numpy(
        dtype=float, na_value=0.0)
    bal_col = frame["balance_fen"].to_numpy(dtype=np.int64)
    pcs_col = frame["purchase_count"].to_numpy(dtype=np.int64)
    local_col = _local_seconds(ts_col, tz)
    cuts = np.flatnonzero(np.r_[True, meter_col[1:] != meter_col[:-1], True]) if len(frame) else np.zeros(1, int)
    out: list[ShadowDay] = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        mid = int(meter_col[a])
        if b - a < 2 or mid not in periods:
            continue
        ts, reg, bal, pcs, local_s = ts_col[a:b], reg_col[a:b], bal_col[a:b], pcs_col[a:b], local_col[a:b]
        d = np.diff(reg, axis=0)
        # Each reading belongs to the count epoch in force at its time (a meter replaced in place starts
        # again at 0); an interval across two epochs, or whose count fell (the swap itself), is not billed.
        starts = epochs.get(mid, [])
        epoch = np.zeros(len(ts), dtype=np.int64)
        for since, e in starts:
            epoch[ts >= np.datetime64(since, "us")] = e
        # The month's use before each interval: from the start reading of the first interval that ends in the
        # same local month (and starts in the same epoch: a new meter counts its month from its first reading).
        months = local_s[1:].astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        first = _run_starts(months, epoch[:-1])
        before_month = reg[:-1, 0] - reg[first, 0]
        times, bodies = periods[mid]
        which = np.searchsorted(times, ts[:-1], side="right") - 1
        cost = np.full(len(d), np.nan)
        spread = np.zeros(len(d))
        for k in np.unique(which):
            if k < 0 or bodies[k] is None:
                continue
            mask = which == k
            mode, body = bodies[k]
            cost[mask], spread[mask] = _interval_costs(mode, body, d[mask], before_month[mask])
        credited = np.zeros(len(d), dtype=np.int64)
        for e in np.unique(epoch):
            counts = paid.get(mid, {}).get(int(e), {})
            top = int(max(pcs.max(), max(counts, default=0)))
            cum = np.zeros(top + 2, dtype=np.int64)
            for count, fen in counts.items():
                if 0 <= count <= top:
                    cum[count] += fen
            cum = np.cumsum(cum)
            same = (epoch[:-1] == e) & (epoch[1:] == e)
            credited[same] = cum[np.maximum(pcs[1:][same], 0)] - cum[np.maximum(pcs[:-1][same], 0)]
        cost[(epoch[:-1] != epoch[1:]) | (pcs[1:] < pcs[:-1])] = np.nan
        actual = bal[:-1] - bal[1:] + credited
        day = (local_s[:-1] // 86400)
        ok = ~np.isnan(cost) & (ts[:-1] >= first_reported)    # earlier readings only count the month's use
        for dnum in np.unique(day[ok]):
            sel = ok & (day == dnum)
            out.append(ShadowDay(addresses[mid], dt.date(1970, 1, 1) + dt.timedelta(days=int(dnum)),
                                 round(float(np.maximum(d[sel, 0], 0.0).sum()), 3),
                                 round_money(Decimal(repr(float(cost[sel].sum())))),
                                 (Decimal(int(actual[sel].sum())) / 100).quantize(Decimal("0.01")),
                                 round_money(Decimal(repr(float(spread[sel].sum()))))))
    out.sort(key=lambda s: (s.meter_address, s.day))
    return out


def meters_off_by(engine: sa.Engine, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo,
                  threshold: float = 0.01, min_difference: Decimal = MIN_DIFFERENCE,
                  meter_ids: list[int] | None = None) -> list[dict]:
    """Meters with at least one day whose actual deduction differs from the expected by more than
    `threshold` (1 %) and by more than `min_difference` yuan plus the day's tolerance; worst day first."""
    flagged: dict[str, dict] = {}
    for s in shadow_billing(engine, start, end, tz, meter_ids):
        diff = abs(s.difference)
        if diff <= min_difference + s.tolerance:
            continue
        ratio = s.ratio if s.ratio is not None else float("inf")
        if ratio <= threshold:
            continue
        f = flagged.setdefault(s.meter_address, {"meter_address": s.meter_address, "days": 0, "worst_day": s.day,
                                                 "worst_ratio": ratio, "expected": s.expected, "actual": s.actual})
        f["days"] += 1
        if ratio > f["worst_ratio"]:
            f.update(worst_day=s.day, worst_ratio=ratio, expected=s.expected, actual=s.actual)
    return sorted(flagged.values(), key=lambda f: -f["worst_ratio"])
