"""Telemetry a transformer terminal would have reported (the demo's history on first start, the area page's
benchmark): per phase voltage and current, neutral current, P, Q, PF, THD of voltage and current, temperatures,
humidity, tap, capacitor steps, capacity mode and the signals, vectorised over the times given."""
from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage import grid as store
from storage.timeseries import append_device_history

VOLTS_PER_STEP = 0.025      # a tap step moves the secondary voltage by 2.5 % of nominal
BREAKERS_CLOSED = 6         # the demo terminal's outlets 1..6 closed, 7 and 8 spare (open)


def _load_fraction(ts: pd.Series) -> np.ndarray:
    """A day's shape of a residential area's load (0..1): low at night, an evening peak (site time about UTC+8)."""
    hours = ((ts.dt.hour + ts.dt.minute / 60.0 + 8.0) % 24.0).to_numpy()
    evening = np.exp(-((hours - 20.0) ** 2) / 6.0)
    morning = 0.5 * np.exp(-((hours - 8.0) ** 2) / 4.0)
    return 0.25 + 0.6 * evening + 0.3 * morning


def terminal_telemetry(ts, *, nominal_v: float = 220.0, rating_kva: float = 630.0, power_kw=None, pf=None,
                       tap_position: int = 3, tap_count: int = 5, seed: int = 1) -> pd.DataFrame:
    """One terminal's readings at the times `ts` (naive UTC): every key the wattline-ttu profile reads, as the
    collector stores them (readings' keys and device history's, signal flags as booleans). `power_kw` / `pf`: the
    area's load where known (a backfilled history), else a day's shape on a third of the rating."""
    ts = pd.Series(pd.to_datetime(ts)).reset_index(drop=True)
    n = len(ts)
    rng = np.random.default_rng(seed)
    shape = _load_fraction(ts) if n else np.zeros(0)
    if power_kw is None:
        p = rating_kva * 0.45 * shape * np.exp(rng.normal(0.0, 0.06, n))
    else:
        p = np.nan_to_num(np.asarray(power_kw, dtype=float), nan=0.0)
    if pf is None:
        pf_v = np.clip(0.92 - 0.05 * shape + rng.normal(0.0, 0.01, n), 0.75, 0.99)
    else:
        pf_v = np.clip(np.nan_to_num(np.asarray(pf, dtype=float), nan=0.9), 0.5, 1.0)
    q = p * np.tan(np.arccos(pf_v))
    load = np.clip(np.hypot(p, q) / rating_kva, 0.0, 1.5)
    middle = (tap_count + 1) / 2
    level = nominal_v * (1 + VOLTS_PER_STEP * (tap_position - middle) + 0.03 - 0.05 * load)
    out = {"ts": ts.to_numpy(dtype="datetime64[us]")}
    share = np.array([0.35, 0.33, 0.32])
    currents = []
    for i, phase in enumerate("abc"):
        v = level * (1 + rng.normal(0.0, 0.003, n)) - 2.0 * i * load
        out[f"voltage_{phase}"] = v
        current = p * 1000.0 * share[i] / np.maximum(v * pf_v, 1.0)
        out[f"current_{phase}"] = current
        currents.append(current)
    ia, ib, ic = currents
    out["current_n"] = np.sqrt(np.maximum(ia ** 2 + ib ** 2 + ic ** 2 - ia * ib - ib * ic - ic * ia, 0.0))
    out["power_total"] = p
    out["reactive_total"] = q
    out["pf_total"] = pf_v
    out["frequency"] = 50.0 + rng.normal(0.0, 0.01, n)
    for i, phase in enumerate("abc"):
        out[f"thd_u_{phase}"] = np.clip(1.8 + 0.8 * load + rng.normal(0.0, 0.15, n) + 0.1 * i, 0.5, None)
        out[f"thd_i_{phase}"] = np.clip(6.0 + 3.0 * shape + rng.normal(0.0, 0.6, n) - 0.3 * i, 1.0, None)
    hours = ((ts.dt.hour + 8) % 24).to_numpy() if n else np.zeros(0)
    ambient = 14.0 + 5.0 * np.sin((hours - 9.0) / 24.0 * 2 * np.pi) + rng.normal(0.0, 0.3, n)
    out["ambient_temp"] = ambient
    out["oil_temp"] = ambient + 12.0 + 30.0 * load ** 2 + rng.normal(0.0, 0.3, n)
    out["humidity"] = np.clip(60.0 - 10.0 * np.sin((hours - 9.0) / 24.0 * 2 * np.pi) + rng.normal(0.0, 1.0, n),
                              10.0, 99.0)
    out["tap_position"] = np.full(n, int(tap_position), dtype="int64")
    out["capacitor_steps"] = (1 << np.minimum(4, (p * 0.35 / 15.0).astype(int))) - 1
    out["capacity_mode"] = np.ones(n, dtype="int64")
    for name in ("door_open", "smoke", "water"):
        out[name] = np.zeros(n, dtype=bool)
    for i in range(1, 9):
        out[f"breaker_{i}"] = np.full(n, i <= BREAKERS_CLOSED)
    return pd.DataFrame(out)


READING_KEYS = ("voltage_a", "voltage_b", "voltage_c", "current_a", "current_b", "current_c", "power_total",
                "pf_total", "frequency")


def seed_terminal_history(conn: sa.Connection, readings: pd.DataFrame, tap_count: int = 5) -> int:
    """The device history of the areas' terminals at the times of their backfilled readings (`readings`:
    meter_id, ts and their load), so the area page has trends on the demo's first start; the rows written."""
    areas = store.areas(conn)
    written = 0
    for a in areas.dropna(subset=["terminal_meter_id"]).itertuples():
        mine = readings.loc[readings["meter_id"] == int(a.terminal_meter_id)].sort_values("ts")
        if mine.empty:
            continue
        frame = terminal_telemetry(mine["ts"], nominal_v=float(a.nominal_voltage or 220.0),
                                   rating_kva=float(a.rating_kva or 630.0),
                                   power_kw=pd.to_numeric(mine["power_total"], errors="coerce").to_numpy(),
                                   pf=pd.to_numeric(mine["pf_total"], errors="coerce").to_numpy(),
                                   tap_count=tap_count, tap_position=(tap_count + 1) // 2, seed=int(a.id))
        device = frame.drop(columns=list(READING_KEYS)).assign(meter_id=int(a.terminal_meter_id))
        written += append_device_history(conn, device)
    return written
