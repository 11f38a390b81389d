"""Demo history backfill: 90 days of half-hourly readings for every demo meter, generated and
written to a DuckDB file as `make run` does on first start (target < 30 s in all).

Usage: .venv/bin/python bench/backfill.py [--days 90]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import sqlalchemy as sa  # noqa: E402

from collectors.profiles import ProfileRegistry  # noqa: E402
from collectors.topology_import import import_topology  # noqa: E402
from simulator.history import backfill  # noqa: E402
from simulator.site import demo_site  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import meter  # noqa: E402
from storage.timeseries import append_readings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    site = demo_site()
    with tempfile.TemporaryDirectory() as d:
        engine = open_engine(f"duckdb:///{d}/demo.duckdb")
        migrate(engine)
        rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
        import_topology(engine, rows, set(ProfileRegistry().names()), dt.datetime(2026, 11, 21), source="bench")
        t0 = time.perf_counter()
        readings, purchases = backfill(site, days=args.days)
        t1 = time.perf_counter()
        with engine.begin() as conn:
            ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
            readings["meter_id"] = readings.pop("meter_address").map(ids)
            n = append_readings(conn, readings)
        t2 = time.perf_counter()
        dispose(engine)
    print(f"{n:,} readings ({len(site.meters())} meters x {args.days} days x 48), {len(purchases):,} purchases")
    print(f"generate {t1 - t0:.1f} s + write {t2 - t1:.1f} s = {t2 - t0:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
