"""The transformer area page in Chromium: a week of one-minute telemetry of one area drawn within 2 s (issue 13).

  The demo site (--days of half-hourly history; 1 keeps its start short) with one area's terminal given a whole
  week of one-minute polls instead (its demo history taken out, 10,080 polls bulk-inserted from a DataFrame into
  readings and device_readings: grid.demo.terminal_telemetry). Then /grid/area?id=<area>&range=7d is opened in one
  signed-in Chromium: navigation start until the live values (the per-phase table) and every line of the trends
  are drawn, the median of --repeat loads (the first load, which fetches the scripts, is not counted). Beside it,
  without the browser, what the page's layout computes on the server (the area's live state, the week's rows,
  the figure thinned to the point budget) and a zoom into one day (the callback's work).

Usage: .venv/bin/python bench/area_page.py [--days 1] [--repeat 5] [--area "Area B1"]
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

TARGET_S = 2.0
WEEK_MINUTES = 7 * 24 * 60


def start(tmp: Path, days: int):
    from core.config import Config, DemoConfig
    from serve.runtime import Runtime
    from tests.conftest import free_port, free_port_block
    cfg = Config(database_url=f"duckdb:///{tmp / 'site.duckdb'}", port=free_port(),
                 master_key_file=str(tmp / "master.key"), qr_key_file=str(tmp / "qr.key"),
                 demo=DemoConfig(database_url=f"duckdb:///{tmp / 'demo.duckdb'}", base_port=free_port_block(20),
                                 state_file=str(tmp / "field.json"), history_days=days, poll_interval_s=3600.0))
    t0 = time.perf_counter()
    rt = Runtime(cfg, demo=True).start()
    rt.serve_in_thread()
    return rt, time.perf_counter() - t0


def seed_week(rt, area_name: str) -> tuple[dict, int, float]:
    """The area's terminal: its history replaced by a week of one-minute polls up to now (bulk, from a frame)."""
    import pandas as pd
    import sqlalchemy as sa

    from core.clock import utcnow
    from grid.demo import READING_KEYS, terminal_telemetry
    from storage.schema import device_readings, readings, transformer_area
    from storage.timeseries import append_device_history, append_readings
    with rt.engine.connect() as conn:
        area = dict(conn.execute(sa.select(transformer_area).where(transformer_area.c.name == area_name))
                    .mappings().one())
    tid = area["terminal_meter_id"]
    end = pd.Timestamp(utcnow()).floor("min")
    ts = pd.date_range(end=end - pd.Timedelta(minutes=1), periods=WEEK_MINUTES, freq="min")
    frame = terminal_telemetry(ts, nominal_v=area["nominal_voltage"] or 220.0,
                               rating_kva=area["rating_kva"] or 630.0).assign(meter_id=tid)
    t0 = time.perf_counter()
    with rt.engine.begin() as conn:
        conn.execute(readings.delete().where(readings.c.meter_id == tid, readings.c.ts < end.to_pydatetime()))
        conn.execute(device_readings.delete().where(device_readings.c.meter_id == tid,
                                                    device_readings.c.ts < end.to_pydatetime()))
        n = append_readings(conn, frame[["ts", "meter_id", *READING_KEYS]])
        append_device_history(conn, frame.drop(columns=list(READING_KEYS)))
    return area, n, time.perf_counter() - t0


def server_work(rt, area_id: int) -> tuple[int, int]:
    """What the page's layout computes: the live state, the week's rows, the thinned figure (rows, most points)."""
    from core.clock import utcnow
    from dashboard.components.grid_area import trend_points, trends_figure
    from grid.telemetry import area_live, area_trends, trend_window
    live = area_live(rt.engine, area_id)
    window = trend_window(utcnow(), "7d")
    frame = area_trends(rt.engine, live.area, *window)
    fig = trends_figure(frame, (live.area["band_low"], live.area["band_high"]), rt.billing.tz, "en", window=window)
    return len(frame), max(trend_points(fig))


def zoom_work(rt, area_id: int) -> int:
    """A zoom into one day of the week: that day's rows again, thinned."""
    from core.clock import utcnow
    from dashboard.components.grid_area import trend_points, trends_figure
    from grid.telemetry import area_trends, find_area
    area = find_area(rt.engine, area_id)
    hi = utcnow() - dt.timedelta(days=3)
    frame = area_trends(rt.engine, area, hi - dt.timedelta(days=1), hi)
    fig = trends_figure(frame, (area["band_low"], area["band_high"]), rt.billing.tz, "en")
    return max(trend_points(fig))


# ready: the per-phase table there and every line of the figure's data drawn
READY = """() => {
  const plot = document.querySelector('#gar-chart .js-plotly-plot');
  const drawn = document.querySelectorAll('#gar-chart .scatterlayer .trace').length;
  return document.querySelector('#gar-live table') !== null && plot !== null && plot.data !== undefined &&
    plot.data.length > 0 && drawn >= plot.data.length;
}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--area", default="Area B1")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM_ARGS, chromium_path
    from tests.webclient import base_url, browser_signed_in
    tmp = Path(tempfile.mkdtemp(prefix="wattline-bench-area-"))
    rt, started = start(tmp, args.days)
    try:
        area, n, seeded_s = seed_week(rt, args.area)
        rows, points = server_work(rt, int(area["id"]))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; demo started in "
              f"{started:.0f} s; {args.area}: {n:,} one-minute polls of its terminal bulk-inserted in {seeded_s:.2f} s")
        print(f"the week on the page: {rows:,} rows, at most {points:,} points a line")
        print(f"load average at the start: {os.getloadavg()[0]:.1f}; server CPU: the serving process's CPU time per "
              "load (this process runs the server; Chromium's own time is not in it)")
        path = f"/grid/area?id={int(area['id'])}&range=7d"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context, page = browser_signed_in(browser, rt, "operator", locale="en-US")
            page.goto(base_url(rt) + path)        # scripts fetched and cached: not counted
            page.wait_for_function(READY, timeout=60000)
            traces = page.evaluate("document.querySelectorAll('#gar-chart .scatterlayer .trace').length")
            loads, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                page.goto(base_url(rt) + path)
                page.wait_for_function(READY, timeout=60000)
                loads.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            context.close()
            browser.close()
        calls, calls_cpu, zooms = [], [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            server_work(rt, int(area["id"]))
            calls.append(time.perf_counter() - t0)
            calls_cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            zoom_work(rt, int(area["id"]))
            zooms.append(time.perf_counter() - t0)
        med = statistics.median(loads)
        print(f"{'page':<34} {'median ready':>12} {'max':>7} {'server CPU':>10} {'layout work':>11} {'its CPU':>8} "
              f"{'zoom 1 day':>10} {'ratio':>6}")
        print(f"{'/grid/area (7 days, ' + str(traces) + ' lines)':<34} {med:>11.2f}s {max(loads):>6.2f}s "
              f"{statistics.median(cpu):>9.3f}s {statistics.median(calls):>10.3f}s "
              f"{statistics.median(calls_cpu):>7.3f}s {statistics.median(zooms):>9.3f}s {med / TARGET_S:>6.2f}")
        print(f"loads: {', '.join(f'{x:.2f}' for x in loads)} s; load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        rt.stop()


if __name__ == "__main__":
    main()
