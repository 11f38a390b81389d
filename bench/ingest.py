"""Ingest: rows per second through storage.append_readings (prepaid meters' readings) and
storage.append_device_history (master meters' and terminals' history) into a DuckDB file, each against a
plain DuckDB DataFrame insert of the same frame (target ratio >= 0.5).

Usage: .venv/bin/python bench/ingest.py [--rows 2000000] [--repeat 3] [--only readings|history]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import DEVICE_SIGNAL_BITS  # noqa: E402
from storage.timeseries import append_device_history, append_readings  # noqa: E402


def make_rows(n: int, meters: int = 480) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    ts0 = np.datetime64("2026-08-23T00:00:00")
    idx = np.arange(n)
    return pd.DataFrame({
        "ts": ts0 + (idx // meters).astype("timedelta64[m]") * 30,
        "meter_id": (idx % meters + 1).astype("int64"),
        "voltage_a": rng.normal(220, 3, n), "current_a": rng.gamma(2, 1.0, n),
        "power_total": rng.gamma(2, 0.2, n), "pf_total": rng.uniform(0.85, 0.99, n),
        "frequency": rng.normal(50, 0.02, n), "energy_total": np.cumsum(rng.gamma(2, 0.05, n)),
        "energy_sharp": rng.gamma(2, 1, n), "energy_peak": rng.gamma(2, 1, n),
        "energy_flat": rng.gamma(2, 1, n), "energy_valley": rng.gamma(2, 1, n),
        "purchase_count": rng.integers(0, 50, n), "relay_closed": rng.random(n) > 0.05,
        "balance_fen": rng.integers(-500, 50000, n),
    })


def make_device_rows(n: int, devices: int = 40) -> pd.DataFrame:
    """A site mix as the poll cycle hands it over: half master meters (SDM630: per-phase power and power factor,
    reactive power, neutral current, voltage THD), half transformer terminals (TTU: THD of voltage and current,
    temperatures, humidity, tap, capacitor steps, capacity mode, door/smoke/water and eight breakers, and the
    profile's own key tap_count as JSON). Keys a device does not read are null, as in the cycle's frame."""
    rng = np.random.default_rng(2)
    ts0 = np.datetime64("2026-08-23T00:00:00")
    idx = np.arange(n)
    ttu = idx % devices >= devices // 2

    def only(mask, values):
        return np.where(mask, values, np.nan)

    cols = {
        "ts": ts0 + (idx // devices).astype("timedelta64[m]") * 5,
        "meter_id": (idx % devices + 1).astype("int64"),
    }
    for k in ("power_a", "power_b", "power_c"):
        cols[k] = only(~ttu, rng.gamma(2, 10.0, n))
    for k in ("pf_a", "pf_b", "pf_c"):
        cols[k] = only(~ttu, rng.uniform(0.85, 0.99, n))
    cols["current_n"] = rng.gamma(2, 2.0, n)
    cols["reactive_total"] = rng.gamma(2, 5.0, n)
    for k in ("thd_u_a", "thd_u_b", "thd_u_c"):
        cols[k] = rng.normal(3, 0.3, n)
    for k in ("thd_i_a", "thd_i_b", "thd_i_c"):
        cols[k] = only(ttu, rng.normal(8, 1, n))
    cols["oil_temp"] = only(ttu, rng.normal(45, 5, n))
    cols["ambient_temp"] = only(ttu, rng.normal(15, 5, n))
    cols["humidity"] = only(ttu, rng.uniform(30, 90, n))
    for k, hi in (("tap_position", 6), ("capacitor_steps", 16), ("capacity_mode", 2)):
        cols[k] = pd.array(np.where(ttu, rng.integers(0, hi, n), 0), dtype="Int64")
        cols[k][~ttu] = pd.NA
    for k in DEVICE_SIGNAL_BITS:
        flags = pd.array(rng.random(n) > 0.3, dtype="boolean")
        flags[~ttu] = pd.NA
        cols[k] = flags
    cols["extra"] = np.where(ttu, '{"tap_count": 5}', None)
    return pd.DataFrame(cols)


def plain_insert(path: str, df: pd.DataFrame) -> float:
    """The reference: the same DataFrame inserted as it is into a table of its own shape."""
    con = duckdb.connect(path)
    con.execute("CREATE TABLE readings AS SELECT * FROM df LIMIT 0")
    t0 = time.perf_counter()
    con.execute("INSERT INTO readings SELECT * FROM df")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def ours(path: str, df: pd.DataFrame, append=append_readings) -> float:
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        append(conn, df)
    elapsed = time.perf_counter() - t0
    dispose(engine)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=("readings", "history"))
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()} "
          f"duckdb {duckdb.__version__}")
    print(f"rows: {args.rows}, repeats: {args.repeat} (median)")
    cases = (("readings", make_rows, append_readings, "storage.append_readings"),
             ("history", make_device_rows, append_device_history, "storage.append_device_history"))
    for name, make, append, label in cases:
        if args.only not in (None, name):
            continue
        df = make(args.rows)
        ref, got = [], []
        with tempfile.TemporaryDirectory() as d:
            for i in range(args.repeat):
                ref.append(plain_insert(f"{d}/ref{i}.duckdb", df))
                got.append(ours(f"{d}/ours{i}.duckdb", df, append))
        r, g = statistics.median(ref), statistics.median(got)
        print(f"[{name}] {len(df.columns)} columns")
        print(f"  plain DuckDB DataFrame insert: {r:.2f} s = {args.rows / r:,.0f} rows/s")
        print(f"  {label + ':':<31}{g:.2f} s = {args.rows / g:,.0f} rows/s (includes dtype shaping)")
        print(f"  ratio (ours / plain, rows/s): {r / g:.2f}  target >= 0.5")


if __name__ == "__main__":
    main()
