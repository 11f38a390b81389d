"""Ingest: readings rows per second through storage.append_readings into a DuckDB file,
against a plain DuckDB DataFrame insert of the same rows (target ratio >= 0.5).

Usage: .venv/bin/python bench/ingest.py [--rows 2000000] [--repeat 3]
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
from storage.timeseries import append_readings  # noqa: E402


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


def plain_insert(path: str, df: pd.DataFrame) -> float:
    """The reference: the same DataFrame inserted as it is into a table of its own shape."""
    con = duckdb.connect(path)
    con.execute("CREATE TABLE readings AS SELECT * FROM df LIMIT 0")
    t0 = time.perf_counter()
    con.execute("INSERT INTO readings SELECT * FROM df")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def ours(path: str, df: pd.DataFrame) -> float:
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        append_readings(conn, df)
    elapsed = time.perf_counter() - t0
    dispose(engine)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    df = make_rows(args.rows)
    ref, got = [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.repeat):
            ref.append(plain_insert(f"{d}/ref{i}.duckdb", df))
            got.append(ours(f"{d}/ours{i}.duckdb", df))
    r, g = statistics.median(ref), statistics.median(got)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()} "
          f"duckdb {duckdb.__version__}")
    print(f"rows: {args.rows}, repeats: {args.repeat} (median)")
    print(f"plain DuckDB DataFrame insert: {r:.2f} s = {args.rows / r:,.0f} rows/s")
    print(f"storage.append_readings:      {g:.2f} s = {args.rows / g:,.0f} rows/s (includes dtype shaping)")
    print(f"ratio (ours / plain, rows/s): {r / g:.2f}  target >= 0.5")


if __name__ == "__main__":
    main()
