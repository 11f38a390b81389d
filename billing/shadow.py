"""Shadow billing: what each meter should have deducted per day (its readings times the tariff versions in
force) against what its balance actually lost (balance change plus the money the ledger sent it).

The expected cost of an interval between two readings uses the tariff assigned to the meter and
the version valid at the interval's start: flat = energy x flat price; time of use = each energy
register's increase x its price (the meter splits energy by its own segment table); tiered =
energy x the price of the tier the month's use so far falls in (month in the site's zone, counted
from the month's first reading in the window, as the meter counts from its month start). The
actual deduction is exact (fen): previous balance - balance + ledger amounts with purchase counts
between the two readings. Expected values are model estimates in float kWh, turned into money
once with the one rounding rule.
"""
from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import sqlalchemy as sa

from billing.money import round_money
from billing.tariffs import version_body
from storage import billing as store

MIN_DIFFERENCE = Decimal("0.05")  # below this a day's difference is rounding (registers are 0.01 kWh)


@dataclass(frozen=True)
class ShadowDay:
    meter_address: str
    day: dt.date
    energy_kwh: float
    expected: Decimal
    actual: Decimal

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    @property
    def ratio(self) -> float | None:
        """|actual - expected| / expected (None when nothing was expected)."""
        return None if self.expected == 0 else float(abs(self.difference) / self.expected)


def _tariff_lookup(conn: sa.Connection, meter_ids: list[int]):
    modes = {t["id"]: t["mode"] for t in store.tariffs(conn)}
    versions: dict[int, list[tuple[dt.datetime, int, tuple]]] = {}
    for v in store.versions_of(conn):
        body = version_body(v)
        versions.setdefault(v["tariff_id"], []).append((v["valid_from"], v["version_no"], body))
    for vs in versions.values():
        vs.sort(key=lambda x: (x[0], x[1]))
    assigned: dict[int, list[tuple[dt.datetime, int]]] = {}
    for row in store.meter_tariff_history(conn, meter_ids):
        assigned.setdefault(row["meter_id"], []).append((row["valid_from"], row["tariff_id"]))

    def at(meter_id: int, t: dt.datetime):
        rows = assigned.get(meter_id, [])
        i = bisect.bisect_right([r[0] for r in rows], t) - 1
        if i < 0:
            return None
        tariff_id = rows[i][1]
        vs = versions.get(tariff_id, [])
        j = bisect.bisect_right([v[0] for v in vs], t) - 1
        return None if j < 0 else (modes[tariff_id], vs[j][2])
    return at


def _tier_price(tiers, month_kwh: float) -> float:
    for bound, price in tiers:
        if bound is None or month_kwh < bound:
            return float(price)
    return float(tiers[-1][1])


def shadow_billing(engine: sa.Engine, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo,
                   meter_ids: list[int] | None = None) -> list[ShadowDay]:
    """Per meter and local day, expected vs actual deduction over readings in [start, end)."""
    with engine.connect() as conn:
        ids = meter_ids if meter_ids is not None else store.opened_meter_ids(conn)
        if not ids:
            return []
        tariff_at = _tariff_lookup(conn, ids)
        rows = store.readings_for_shadow(conn, ids, start, end)
        credits: dict[int, dict[int, int]] = {}
        for m in ids:
            for e in store.entries_of_meter(conn, m, limit=100000, states=("pending", "confirmed")):
                credits.setdefault(m, {})[e["purchase_count"]] = int(Decimal(e["amount"]) * 100)
        addresses = {m: (store.meter_by_id(conn, m) or {}).get("address", str(m)) for m in ids}
    out: list[ShadowDay] = []
    by_meter: dict[int, list[tuple]] = {}
    for r in rows:
        if r.energy_total is None or r.balance is None or r.purchase_count is None:
            continue
        by_meter.setdefault(r.meter_id, []).append(r)
    offset = tz.utcoffset(dt.datetime(2000, 1, 1))
    for mid, rs in by_meter.items():
        if len(rs) < 2:
            continue
        ts = [r.ts for r in rs]
        reg = np.array([[r.energy_total, r.energy_sharp or 0.0, r.energy_peak or 0.0, r.energy_flat or 0.0,
                         r.energy_valley or 0.0] for r in rs], dtype=float)
        bal = np.array([int(Decimal(r.balance) * 100) for r in rs], dtype=np.int64)
        pcs = [int(r.purchase_count) for r in rs]
        paid = credits.get(mid, {})
        local = [t + (tz.utcoffset(t) if tz.utcoffset(t) is not None else offset) for t in ts]
        month_base: dict[tuple[int, int], float] = {}
        days: dict[dt.date, list] = {}
        for i in range(1, len(rs)):
            tariff = tariff_at(mid, ts[i - 1])
            if tariff is None:
                continue
            mode, body = tariff
            d = reg[i] - reg[i - 1]
            prices = [float(p) for p in body.prices]
            if mode == "tou":
                cost = float(np.dot(np.maximum(d[1:], 0.0), prices))
            elif mode == "tiered":
                key = (local[i - 1].year, local[i - 1].month)
                base = month_base.setdefault(key, reg[i - 1][0])
                cost = max(d[0], 0.0) * _tier_price(body.tiers, reg[i - 1][0] - base)
            else:
                cost = max(d[0], 0.0) * prices[2]
            credited = sum(paid.get(c, 0) for c in range(pcs[i - 1] + 1, pcs[i] + 1))
            actual_fen = int(bal[i - 1] - bal[i]) + credited
            acc = days.setdefault(local[i - 1].date(), [0.0, 0.0, 0])
            acc[0] += max(d[0], 0.0)
            acc[1] += cost
            acc[2] += actual_fen
        for day, (kwh, cost, actual_fen) in sorted(days.items()):
            out.append(ShadowDay(addresses[mid], day, round(kwh, 3), round_money(Decimal(repr(cost))),
                                 (Decimal(actual_fen) / 100).quantize(Decimal("0.01"))))
    out.sort(key=lambda s: (s.meter_address, s.day))
    return out


def meters_off_by(engine: sa.Engine, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo,
                  threshold: float = 0.01, min_difference: Decimal = MIN_DIFFERENCE,
                  meter_ids: list[int] | None = None) -> list[dict]:
    """Meters with at least one day whose actual deduction differs from the expected by more than
    `threshold` (1 %) and by more than `min_difference` yuan; worst day first."""
    flagged: dict[str, dict] = {}
    for s in shadow_billing(engine, start, end, tz, meter_ids):
        diff = abs(s.difference)
        if diff <= min_difference:
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
