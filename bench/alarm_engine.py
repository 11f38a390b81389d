"""Alarm engine benchmark: one evaluation (billing.alarm_engine.AlarmEngine.evaluate, what runs after every poll
cycle) over the 10,080-meter scale site on DuckDB: the first one, which opens thousands of events (about 40 % of
the meters are at or below an alarm amount), and the steady one after it, where nothing changes.

Usage: .venv/bin/python bench/alarm_engine.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.overview import NOW, seed  # noqa: E402
from billing.alarm_engine import AlarmEngine  # noqa: E402
from simulator.site import scale_site  # noqa: E402
from storage.engine import dispose  # noqa: E402
from storage.schema import alarm_event  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = seed(Path(tmp) / "bench.duckdb", scale_site(), history_days=0)
        alarms = AlarmEngine(engine, clock=lambda: NOW)
        t0 = time.perf_counter()
        first = alarms.evaluate()
        first_s = time.perf_counter() - t0
        with engine.connect() as conn:
            meters = conn.execute(sa.text("SELECT count(*) FROM meter_state")).scalar()
            opened = conn.execute(sa.select(sa.func.count()).select_from(alarm_event)).scalar()
        steady = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            alarms.evaluate()
            steady.append(time.perf_counter() - t0)
        print(f"meters {meters}; first evaluation: {first_s * 1000:.0f} ms, {len(first.opened)} events opened "
              f"({opened} in the table); steady evaluation (nothing changes): median "
              f"{statistics.median(steady) * 1000:.0f} ms, max {max(steady) * 1000:.0f} ms over {args.repeat}")
        dispose(engine)


if __name__ == "__main__":
    main()
