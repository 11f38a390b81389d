"""History backfill: vectorised half-hourly readings and purchases for a site, ending at the meters' current registers.

The history is generated backwards from the meters' current state (the spec's initial state, a
state file, or a running Field), so it joins the live data: energy registers are cumulative and
monotone and end at the current values; the balance goes down by consumption times the meter's
tariff and up by the purchases returned beside the readings, whose counts are consecutive and end
at the current purchase_count. Rooms in arrears at the end were tripped some hours before it
and used nothing since. The field's meters go on counting the month's use (monthly tiers) where the
history leaves it. Everything is numpy over (meters x intervals); the only Python loops
run per meter or per distinct tariff.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.load import ROOM_PEAK_KW, demand_fraction_array, local_minute_of_day, local_month_key
from simulator.meters import AreaTerminal, MasterMeter, PrepaidMeter
from simulator.site import SiteSpec
from simulator.tariff import MODE_TIERED, price_array, segment_table

READING_COLUMNS = ("ts", "meter_address", "voltage_a", "voltage_b", "voltage_c", "current_a", "current_b",
                   "current_c", "power_total", "pf_total", "frequency", "energy_total", "energy_sharp",
                   "energy_peak", "energy_flat", "energy_valley", "balance_fen", "purchase_count", "relay_closed")
PURCHASE_COLUMNS = ("ts", "meter_address", "amount_fen", "purchase_count_after")


def _current_field(site: SiteSpec, state_file, field, end_s: float):
    if field is not None:
        return field
    from simulator.field import Field  # local: history is usable without sockets, Field is only read here
    return Field(site, state_file=state_file, clock=lambda: end_s)


def backfill(site: SiteSpec, days: int = 90, end=None, interval_minutes: int = 30, seed: int = 1,
             state_file: str | Path | None = None, field=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings and purchases for every meter of `site` over `days` days up to `end` (UTC, default now).

    Readings: one row per meter per interval, ts-major; `ts` is timezone-naive UTC; the room-only
    columns (energy_sharp..valley, balance_fen, purchase_count, relay_closed) are null for master
    meters and terminals (nullable Int64 / boolean dtypes).
    """
    if end is None:
        end_s = field.clock() if field is not None else time.time()
    elif isinstance(end, (int, float)):
        end_s = float(end)
    else:
        stamp = pd.Timestamp(end)
        end_s = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()
    step = interval_minutes * 60
    last = int(end_s // step * step)
    n_t = int(days * 86400 // step)
    ts_s = last - step * np.arange(n_t - 1, -1, -1, dtype=np.int64)
    hours = step / 3600.0
    rng = np.random.default_rng(seed)
    live = _current_field(site, state_file, field, end_s)

    rooms = [m for m in live.meters.values() if isinstance(m, PrepaidMeter)]
    masters = [m for m in live.meters.values() if isinstance(m, MasterMeter)]
    terminals = [m for m in live.meters.values() if isinstance(m, AreaTerminal)]
    room_cols = _rooms(rooms, ts_s, hours, step, rng)
    if "month_key" in room_cols:
        _continue_month(live, rooms, room_cols["month_key"], room_cols["month_kwh"])
    upstream = _upstream(rooms, masters, terminals, room_cols, ts_s, rng)

    addresses = np.array([m.address for m in rooms] + [m.address for m in masters + terminals], dtype=object)
    n_m = len(addresses)

    def stack(key, fill=np.nan):
        parts = [room_cols.get(key, np.full((len(rooms), n_t), fill))]
        parts.append(upstream.get(key, np.full((len(masters) + len(terminals), n_t), fill)))
        return np.concatenate(parts, axis=0).T.ravel()

    data = {"ts": pd.to_datetime(np.repeat(ts_s, n_m), unit="s").as_unit("us"),
            "meter_address": pd.array(np.tile(addresses, n_t), dtype="str")}
    for key in READING_COLUMNS[2:16]:
        data[key] = stack(key)
    n_up = len(masters) + len(terminals)
    for key, dtype in (("balance_fen", "Int64"), ("purchase_count", "Int64"), ("relay_closed", "boolean")):
        values = np.concatenate([room_cols[key], np.zeros((n_up, n_t), dtype=room_cols[key].dtype)]).T.ravel()
        mask = np.concatenate([np.zeros((len(rooms), n_t), bool), np.ones((n_up, n_t), bool)]).T.ravel()
        array_type = pd.arrays.BooleanArray if dtype == "boolean" else pd.arrays.IntegerArray
        data[key] = array_type(values, mask)
    readings = pd.DataFrame(data, columns=list(READING_COLUMNS))
    return readings, room_cols["purchases"]


def _continue_month(live, rooms: list[PrepaidMeter], month_key: int, month_kwh: np.ndarray) -> None:
    """The live meters go on counting the month the history ends in, so their monthly tier prices follow on from
    the history's (a meter's counter otherwise starts at 0 when the field starts, in the middle of a month)."""
    def apply():
        for m, kwh in zip(rooms, month_kwh):
            m.month_key, m.monthly_kwh = month_key, float(kwh)
    live._call_in_loop(apply)  # the field's own loop thread advances the meters


def _rooms(rooms: list[PrepaidMeter], ts_s: np.ndarray, hours: float, step: int, rng) -> dict:
    n_m, n_t = len(rooms), len(ts_s)
    frac = demand_fraction_array(ts_s)
    character = np.array([m.character * (3.0 if m.three_phase else 1.0) for m in rooms])
    day = (ts_s - ts_s[0]) // 86400
    day_noise = rng.normal(0.0, 0.2, (n_m, int(day[-1]) + 1))[:, day] if n_t else np.zeros((n_m, 0))
    noise = np.exp(day_noise + rng.normal(0.0, 0.25, (n_m, n_t)) - 0.05)
    power = ROOM_PEAK_KW * character[:, None] * frac[None, :] * noise

    # rooms tripped at the end (arrears or a remote trip) have been off for the last few hours
    tripped_end = np.array([not m.relay_closed for m in rooms])
    off_hours = rng.uniform(2.0, 72.0, n_m)
    off = tripped_end[:, None] & (ts_s[None, :] > ts_s[-1] - off_hours[:, None] * 3600)
    power[off] = 0.0
    kwh = power * hours

    # energy registers by TOU segment, cumulative, ending at the current registers
    minute = local_minute_of_day(ts_s)
    seg = np.empty((n_m, n_t), dtype=np.int8)
    tables: dict[tuple, np.ndarray] = {}
    for i, m in enumerate(rooms):
        key = tuple(m.segments)
        if key not in tables:
            tables[key] = np.frombuffer(segment_table(key), dtype=np.uint8)[minute]
        seg[i] = tables[key]
    cum = np.cumsum(kwh, axis=1)
    out: dict = {}
    total_end = np.array([m.energy_total for m in rooms])
    energy_seg = []
    for s, name in enumerate(("energy_sharp", "energy_peak", "energy_flat", "energy_valley")):
        cum_s = np.cumsum(np.where(seg == s, kwh, 0.0), axis=1)
        end_s = np.array([m.energy_kwh[s] for m in rooms])
        value = np.maximum(end_s[:, None] - (cum_s[:, -1:] - cum_s), 0.0)
        energy_seg.append(value)
        out[name] = np.floor(value * 100.0) / 100.0
    out["energy_total_exact"] = np.maximum(total_end[:, None] - (cum[:, -1:] - cum), 0.0)
    out["energy_total"] = np.floor(sum(energy_seg) * 100.0) / 100.0

    # money: cost by tariff, purchases that explain the balance. A month's use (monthly tiers) counts from the
    # reading that starts its first interval; the history's first month from its first reading, as nothing
    # before that reading is known to whoever checks the deductions against the readings.
    months = local_month_key(ts_s)
    month_start = np.searchsorted(months, months, side="left")
    before = np.concatenate((np.zeros((n_m, 1)), cum[:, :-1]), axis=1)
    anchor = np.where(month_start == 0, cum[:, :1], before[:, month_start])
    cost = np.zeros((n_m, n_t))
    for i, m in enumerate(rooms):
        if not m.prepaid_enabled:
            continue
        monthly_before = np.maximum(before[i] - anchor[i], 0.0) if m.tariff.mode == MODE_TIERED else np.zeros(n_t)
        cost[i] = kwh[i] * price_array(m.tariff, seg[i], monthly_before) / 100.0
    cost_cum = np.cumsum(cost, axis=1)
    cost_after = np.rint(cost_cum[:, -1:] - cost_cum).astype(np.int64)  # fen charged after each reading

    balance = np.empty((n_m, n_t), dtype=np.int64)
    count = np.empty((n_m, n_t), dtype=np.int64)
    p_ts, p_addr, p_amount, p_after = [], [], [], []
    for i, m in enumerate(rooms):
        b_end, pc_end = m.balance_fen, m.purchase_count
        after = cost_after[i]
        bought_after = np.zeros(n_t, dtype=np.int64)
        n_after = np.zeros(n_t, dtype=np.int64)
        if m.prepaid_enabled and pc_end > 0 and after[0] > 0:
            level, amount = m.spec.recharge_at_fen, m.spec.recharge_fen
            first = max(amount, -(-(b_end - level + 500) // 1000) * 1000)
            n_max = pc_end
            thresholds = level + first - b_end + amount * np.arange(n_max, dtype=np.int64)
            amounts = np.full(n_max, amount, dtype=np.int64)
            amounts[0] = first
            thresholds = thresholds[thresholds <= after[0]]
            k = len(thresholds)
            if k:
                amounts = amounts[:k]
                # `after` decreases along t: purchase j falls in the interval that ends at the first reading
                # whose remaining cost is below its threshold
                idx = n_t - np.searchsorted(after[::-1], thresholds, side="left")  # first t with after[t] < thr
                idx = np.clip(idx, 1, n_t - 1)
                offsets = rng.uniform(0.05, 0.95, k) * step
                p_ts.append(ts_s[idx - 1] + offsets)
                p_addr.append(np.full(k, m.address, dtype=object))
                p_amount.append(amounts)
                p_after.append(pc_end - np.arange(k, dtype=np.int64))
                # purchases strictly after reading t: those with idx > t
                marks = np.zeros(n_t + 1, dtype=np.int64)
                np.add.at(marks, idx, amounts)
                counts = np.zeros(n_t + 1, dtype=np.int64)
                np.add.at(counts, idx, 1)
                bought_after = np.cumsum(marks[::-1])[::-1][1:]
                n_after = np.cumsum(counts[::-1])[::-1][1:]
        balance[i] = b_end + (after if m.prepaid_enabled else 0) - bought_after
        count[i] = pc_end - n_after
    if n_t:
        out["month_key"] = int(months[-1]) + 1970 * 12        # the meters' key: year * 12 + month - 1
        out["month_kwh"] = cum[:, -1] - anchor[:, -1]
    out["balance_fen"] = balance
    out["purchase_count"] = count
    out["relay_closed"] = ~off

    # electrical values at register resolution
    v_noise = rng.normal(0.0, 0.6, (n_m, n_t))
    factor = np.array([m.area.voltage_factor for m in rooms])[:, None]
    voltage = np.round((226.0 - 8.0 * frac[None, :]) * factor + v_noise, 1)
    pf = np.clip(np.array([m.pf_base for m in rooms])[:, None] + rng.normal(0.0, 0.005, (n_m, n_t)), 0.5, 0.999)
    three = np.array([m.three_phase for m in rooms])[:, None]
    share_a = np.where(three, 0.40, 1.0)
    current_a = power * 1000.0 * share_a / (voltage * pf)
    out["voltage_a"] = voltage
    out["voltage_b"] = np.where(three, voltage, 0.0)
    out["voltage_c"] = np.where(three, voltage, 0.0)
    out["current_a"] = np.round(current_a, 2)
    out["current_b"] = np.where(three, np.round(power * 330.0 / (voltage * pf), 2), 0.0)
    out["current_c"] = np.where(three, np.round(power * 270.0 / (voltage * pf), 2), 0.0)
    out["power_total"] = np.round(power, 3)
    out["power_exact"] = power
    out["pf_total"] = np.round(pf, 3)
    out["frequency"] = np.round(50.0 + rng.normal(0.0, 0.015, (n_m, n_t)), 2)

    if p_ts:
        order_ts = np.concatenate(p_ts)
        purchases = pd.DataFrame({
            "ts": pd.to_datetime(np.round(order_ts).astype(np.int64), unit="s").as_unit("us"),
            "meter_address": pd.array(np.concatenate(p_addr), dtype="str"),
            "amount_fen": np.concatenate(p_amount).astype(np.int64),
            "purchase_count_after": np.concatenate(p_after).astype(np.int64)})
        purchases = purchases.sort_values(["ts", "meter_address"], kind="stable").reset_index(drop=True)
    else:
        purchases = pd.DataFrame({"ts": pd.Series([], dtype="datetime64[us]"),
                                  "meter_address": pd.Series([], dtype="str"),
                                  "amount_fen": pd.Series([], dtype=np.int64),
                                  "purchase_count_after": pd.Series([], dtype=np.int64)})
    out["purchases"] = purchases
    return out


def _upstream(rooms, masters, terminals, room_cols, ts_s, rng) -> dict:
    """Master meters (rooms of the building + line loss) and terminals (master or area rooms + loss)."""
    n_t = len(ts_s)
    frac = demand_fraction_array(ts_s)
    index = {id(m): i for i, m in enumerate(rooms)}
    power = room_cols["power_exact"]
    energy = room_cols["energy_total_exact"]
    rows_power, rows_energy = [], []
    master_series = {}
    for master in masters:
        idx = [index[id(r)] for r in master.rooms]
        loss = 1.0 + master.line_loss
        p = power[idx].sum(axis=0) * loss if idx else np.zeros(n_t)
        e_rooms = energy[idx].sum(axis=0) if idx else np.zeros(n_t)
        e_end = master.energy_import
        e = np.maximum(e_end - loss * (e_rooms[-1] - e_rooms), 0.0) if n_t else e_rooms
        master_series[id(master)] = (p, e)
        rows_power.append(p)
        rows_energy.append(e)
    for terminal in terminals:
        loss = 1.0 + terminal.line_loss
        if terminal.master is not None and id(terminal.master) in master_series:
            p_up, e_up = master_series[id(terminal.master)]
        else:
            idx = [index[id(r)] for r in terminal.rooms]
            p_up = power[idx].sum(axis=0) if idx else np.zeros(n_t)
            e_up = energy[idx].sum(axis=0) if idx else np.zeros(n_t)
        rows_power.append(p_up * loss)
        rows_energy.append(np.maximum(terminal.energy_total - loss * (e_up[-1] - e_up), 0.0) if n_t else e_up)
    n_up = len(rows_power)
    if not n_up:
        return {}
    p = np.vstack(rows_power)
    factor = np.array([m.area.voltage_factor for m in masters + terminals])[:, None]
    voltage = np.round((228.0 - 6.0 * frac[None, :]) * factor + rng.normal(0.0, 0.5, (n_up, n_t)), 1)
    pf = np.clip(0.93 + rng.normal(0.0, 0.01, (n_up, n_t)), 0.5, 0.999)
    current = np.round(p * 1000.0 / 3.0 / (voltage * pf), 2)
    return {"voltage_a": voltage, "voltage_b": voltage, "voltage_c": voltage,
            "current_a": current, "current_b": current, "current_c": current,
            "power_total": np.round(p, 3), "pf_total": np.round(pf, 3),
            "frequency": np.round(50.0 + rng.normal(0.0, 0.015, (n_up, n_t)), 2),
            "energy_total": np.round(np.vstack(rows_energy), 2)}
