"""Report export benchmark (issue 11): 100,000 rows through the report centre's writers (reports.render, over
core.workbook's streaming ExportWorkbook) as XLSX and as CSV, beside the bare SQL that fetches the same rows.

  rows    100,000 rows of the reading-history report's 15 typed columns (a time, kWh registers, power, voltage,
          current, money, counts, a relay flag, status text), fetched from a DuckDB file with one SELECT
          as a DataFrame of DuckDB's columns and turned into
          rows (reports.registry.frame_rows, as every report's rows are made: the fetch time), then written with the title row, the filter row, header, widths, number
          formats and the totals row.                                               target: XLSX <= 10 s

Usage: .venv/bin/python bench/export.py [--rows 100000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.context import BillingContext  # noqa: E402
from reports.registry import REPORTS, frame_rows  # noqa: E402
from reports.render import ReportResult, to_csv, to_xlsx  # noqa: E402
from reports.spec import ReportParams  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402

SQL = """
SELECT TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL 30 MINUTE AS ts,
       1000.0 + i * 0.25 AS energy_total, 100.0 + i * 0.05 AS energy_sharp, 300.0 + i * 0.07 AS energy_peak,
       400.0 + i * 0.08 AS energy_flat, 200.0 + i * 0.05 AS energy_valley, (i % 50) / 10.0 AS power_total,
       220.0 + (i % 7) AS voltage_a, (i % 30) / 3.0 AS current_a, CAST((50000 - i % 50000) / 100.0 AS DECIMAL(14, 2))
       AS balance, 3 + i // 1000 AS purchase_count, i % 97 <> 0 AS relay_closed,
       CASE WHEN i % 97 = 0 THEN 'arrears' WHEN i % 89 = 0 THEN '=formula-looking text' ELSE '' END AS flags,
       30.0 AS gap_minutes, false AS comm_gap
FROM range(?) t(i)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    engine = open_engine(f"duckdb:///{tmp / 'bench.duckdb'}")
    ctx = BillingContext(engine, b"\0" * 32)
    spec = REPORTS["readings"]
    params = ReportParams(dt.date(2026, 1, 1), dt.date(2026, 12, 31), meter="202611210001")
    sql_s, xlsx_s, csv_s = [], [], []
    cpu = {"sql": [], "xlsx": [], "csv": []}
    size = {}
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        with engine.connect() as conn:    # as the reports read: a frame from DuckDB's columns (storage.frames)
            frame = conn.connection.driver_connection.execute(SQL, [args.rows]).df()
        rows = frame_rows(frame)
        sql_s.append(time.perf_counter() - t0)
        cpu["sql"].append(time.process_time() - c0)
        result = ReportResult(spec, params, spec.columns, rows,
                              {c.key: 0 for c in spec.columns if c.total})
        t0, c0 = time.perf_counter(), time.process_time()
        data = to_xlsx(result, "zh", ctx.tz)
        xlsx_s.append(time.perf_counter() - t0)
        cpu["xlsx"].append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        text = to_csv(result, "zh")
        csv_s.append(time.perf_counter() - t0)
        cpu["csv"].append(time.process_time() - c0)
        size = {"xlsx": len(data), "csv": len(text.encode("utf-8"))}
    dispose(engine)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other sessions share the two cores)")
    print(f"rows: {args.rows:,} x {len(spec.columns)} columns; repeat {args.repeat}; wall median (min-max), CPU median")
    for label, xs, key in (("bare SQL (fetch)", sql_s, "sql"), ("XLSX write", xlsx_s, "xlsx"),
                           ("CSV write", csv_s, "csv")):
        print(f"  {label:<17} {statistics.median(xs):7.2f} s  ({min(xs):.2f}-{max(xs):.2f})   "
              f"CPU {statistics.median(cpu[key]):.2f} s")
    print(f"  XLSX {size['xlsx'] / 1e6:.1f} MB, CSV {size['csv'] / 1e6:.1f} MB; XLSX target 10 s: "
          f"{statistics.median(xlsx_s) / 10:.0%} of it")


if __name__ == "__main__":
    main()
