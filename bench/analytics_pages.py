"""Analytics pages in Chromium: every page of the Analysis menu ready within 2 s on the 480-meter demo site.

  For each page: navigation start to the page ready (its heading and its first chart drawn, or its grid's first
  row), the median of --repeat loads in one signed-in Chromium (the first load of the run, which fetches the
  scripts, is not counted). Beside it, without the browser, the service call the page's layout makes (the bare
  query time: energy.manager.manager_figures, energy.analysis.energy_report, ...), on the same database.
  The demo is seeded with --days of half-hourly history (90 as the real demo) and its rollups built at start.

Usage: .venv/bin/python bench/analytics_pages.py [--days 90] [--repeat 5]
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


def pages(rt) -> list[tuple[str, str, object]]:
    """(path, selector that says the page is ready, the service call its layout makes)."""
    from energy.analysis import anomalies, energy_report
    from energy.history import instrument_difference, metered_devices, reading_history
    from energy.insights import load_curve
    from energy.manager import manager_figures
    ctx, engine, tz = rt.billing, rt.engine, rt.billing.tz
    today = ctx.local(ctx.now()).date()
    devices = metered_devices(engine)
    room = next(d["address"] for d in devices if d.get("room"))
    master = next((d["address"] for d in devices if not d.get("room")), room)
    week, fortnight = today - dt.timedelta(days=6), today - dt.timedelta(days=13)
    return [
        ("/dashboard", "#mdash-share .main-svg", lambda: manager_figures(ctx, today)),
        ("/analysis/energy", "#aen-chart .bars", lambda: energy_report(engine, tz, fortnight, today, by="day",
                                                                       group="building")),
        # the page's layout computes its first tab only (the load curve); a tab is computed when it is opened
        ("/analysis/insights", "#ains-load .scatterlayer .trace", lambda: load_curve(engine, tz, fortnight, today)),
        ("/analysis/anomalies", "#aano-curve .main-svg", lambda: anomalies(engine, tz, week, today)),
        (f"/analysis/history?meter={room}", "#ahist-chart .main-svg",
         lambda: reading_history(engine, tz, room, week, today, poll_interval_s=rt.cfg.poll_interval_s)),
        (f"/analysis/instrument?meter={master}", "#ainst-query",
         lambda: instrument_difference(engine, tz, master, today - dt.timedelta(days=29), today)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from storage.timeseries import readings_count
    from tests.conftest import CHROMIUM_ARGS, chromium_path
    from tests.webclient import base_url, browser_signed_in
    tmp = Path(tempfile.mkdtemp(prefix="wattline-bench-analytics-"))
    rt, started = start(tmp, args.days)
    try:
        with rt.engine.connect() as conn:
            n_readings = readings_count(conn)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
              f"demo: {rt.demo_info.meters} meters, {n_readings:,} readings ({args.days} days), started in {started:.0f} s")
        print(f"load average at the start: {os.getloadavg()[0]:.1f}; server CPU: the serving process's CPU time per "
              "load (this process runs the server; Chromium's own time is not in it)")
        print(f"{'page':<44} {'median ready':>12} {'max':>7} {'server CPU':>10} {'service':>8} {'svc CPU':>8} "
              f"{'ratio':>6}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context, page = browser_signed_in(browser, rt, "analyst", locale="en-US")
            for path, ready, service in pages(rt):
                page.goto(base_url(rt) + path)       # scripts fetched and cached: not counted
                page.wait_for_selector(ready, timeout=60000)
                loads, cpu = [], []
                for _ in range(args.repeat):
                    t0, c0 = time.perf_counter(), time.process_time()
                    page.goto(base_url(rt) + path)
                    page.wait_for_selector(ready, timeout=60000)
                    loads.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                calls, calls_cpu = [], []
                for _ in range(args.repeat):
                    t0, c0 = time.perf_counter(), time.process_time()
                    service()
                    calls.append(time.perf_counter() - t0)
                    calls_cpu.append(time.process_time() - c0)
                med = statistics.median(loads)
                print(f"{path.split('?')[0]:<44} {med:>11.2f}s {max(loads):>6.2f}s {statistics.median(cpu):>9.3f}s "
                      f"{statistics.median(calls):>7.3f}s {statistics.median(calls_cpu):>7.3f}s {med / TARGET_S:>6.2f}")
            context.close()
            browser.close()
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        rt.stop()


if __name__ == "__main__":
    main()
