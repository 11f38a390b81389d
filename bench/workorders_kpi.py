"""Work-order KPI page on the server: 100,000 orders and 1,000,000 events.         target <= 500 ms

The orders are the demo's generator (workorders.demo: a year of orders in every state, with steps, materials,
confirmations and follow-up calls) scaled up, on 5,000 customers; more events (re-dispatches) bring the events to
one million. Measured, each the median of --repeat runs on a warm DuckDB file:
  sql      the bare queries (the per-order facts over orders, events and calls summed by type and month in the
           database; tools and materials; types)
  service  Office.kpis: the queries, the KPIs, the statistics tables, the online rate (what the page's callback calls)
  page     service + the page's builders (tiles, two figures, four tables) serialised to JSON as Dash sends them

Usage: .venv/bin/python bench/workorders_kpi.py [--orders 100000] [--events 1000000] [--repeat 7] [--keep PATH]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.io  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from billing.credit import Actor  # noqa: E402
from operators.service import DEFAULT_ROLE_PERMISSIONS, Accounts  # noqa: E402
from storage import workorder_kpis as sql  # noqa: E402
from storage import workorder_office as store  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import work_order, work_order_event  # noqa: E402
from workorders.demo import seed_demo_work_orders  # noqa: E402
from workorders.kpis import OPEN_STATES, REOPEN_DAYS, SATISFIED, month_bounds  # noqa: E402
from workorders.office import Office  # noqa: E402
from workorders.service import WorkOrderService  # noqa: E402

NOW = dt.datetime(2026, 12, 2, 6, 0)
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
DAYS = 365
TARGET_MS = 500.0


def seed(path: Path, orders: int, events: int) -> dict:
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    accounts = Accounts(engine, lambda: NOW)
    accounts.seed()
    accounts.ensure_demo_operators("bench-password")
    t0 = time.perf_counter()
    info = seed_demo_work_orders(engine, ZONE, NOW, days=DAYS, per_day=orders / DAYS)
    rng = np.random.default_rng(5)
    with engine.begin() as conn:
        # 5,000 customers (the demo's orders have none without accounts): the reopen rate has work to do
        conn.execute(sa.text("UPDATE work_order SET account_id = 1 + (id * 7919) % 5000"))
        have = conn.execute(sa.select(sa.func.count()).select_from(work_order_event)).scalar_one()
        more = max(0, events - have)
        ids = pd.DataFrame(conn.execute(sa.select(work_order.c.id, work_order.c.created_at)).all(),
                           columns=["order_id", "created_at"])
        pick = ids.iloc[rng.integers(0, len(ids), more)].reset_index(drop=True)
        store.bulk_insert(conn, work_order_event, pd.DataFrame({
            "order_id": pick["order_id"], "action": "dispatch", "from_state": "dispatched",
            "to_state": "dispatched", "actor": "manager",
            "ts": pick["created_at"] + pd.to_timedelta(rng.uniform(60, 3600, more), unit="s"),
            "note": "bench: handed to another worker"}))
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("work_order", "work_order_event", "work_order_step", "work_order_material",
                            "work_order_followup", "work_order_confirmation", "terminal_seen")}
    dispose(engine)
    return {"seconds": time.perf_counter() - t0, **counts, "generated": info}


def _median_ms(fn, repeat: int) -> tuple[float, list[float], float]:
    """Median wall time, the runs, and the median CPU time of this process (all its threads): on a machine shared
    with other work the wall time waits for a core, the CPU time does not."""
    runs, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(runs), runs, statistics.median(cpu)


def measure(path: Path, repeat: int) -> dict:
    from dashboard.components.workorders_office import (counts_rows, item_rows, kpi_tiles, months_figure,
                                                        repair_figure, stats_table, type_names, type_rows)
    engine = open_engine(f"duckdb:///{path}")
    service = WorkOrderService(engine, zone=ZONE, clock=lambda: NOW)
    office = Office(service)
    manager = Actor("manager", DEFAULT_ROLE_PERMISSIONS["manager"])
    last = (NOW + dt.timedelta(hours=8)).date()
    first = last - dt.timedelta(days=89)          # the page's default: the last 90 days
    start = dt.datetime.combine(first, dt.time()) - dt.timedelta(hours=8)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time()) - dt.timedelta(hours=8)

    def bare():
        with engine.connect() as conn:
            lo, hi = sql.time_range(conn, start)
            sql.fact_groups(conn, start, end, NOW, month_bounds(lo, hi, ZONE), REOPEN_DAYS, SATISFIED, OPEN_STATES)
            sql.items_by_class(conn, start, end)
            sql.order_types(conn)

    def page():
        report = office.kpis(manager, first, last, NOW)
        names = type_names(report.types, "en")
        parts = [kpi_tiles(report.kpis, "en"), months_figure(report.by_month, names, "en"),
                 repair_figure(report.kpis.repair_hours_by_month, "en"), stats_table(*type_rows(report, "en")),
                 stats_table(*counts_rows(report.by_quarter, names, "en")),
                 stats_table(*item_rows(report.tools, "en", money=False)),
                 stats_table(*item_rows(report.materials, "en", money=True))]
        json.dumps(parts, cls=plotly.utils.PlotlyJSONEncoder)
        return report

    page()   # warm: DuckDB's caches, pandas' first calls
    sql_ms, _sql_runs, sql_cpu = _median_ms(bare, repeat)
    service_ms, _service_runs, service_cpu = _median_ms(lambda: office.kpis(manager, first, last, NOW), repeat)
    page_ms, page_runs, page_cpu = _median_ms(page, repeat)
    report = page()
    dispose(engine)
    return {"sql_ms": sql_ms, "service_ms": service_ms, "page_ms": page_ms, "runs_page": page_runs,
            "sql_cpu": sql_cpu, "service_cpu": service_cpu, "page_cpu": page_cpu,
            "period_orders": report.kpis.orders, "kpis": report.kpis.as_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="a DuckDB file to reuse (seeded when missing)")
    args = ap.parse_args()
    path = args.keep or Path(tempfile.mkdtemp(prefix="wattline-wo-bench-")) / "bench.duckdb"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    if not path.exists():
        seeded = seed(path, args.orders, args.events)
        print("seeded:", {k: v for k, v in seeded.items() if k != "generated"})
    r = measure(path, args.repeat)
    print(f"period of the page: {r['period_orders']:,} orders of the last 90 days")
    print(f"bare SQL        {r['sql_ms']:8.1f} ms wall  {r['sql_cpu']:8.1f} ms CPU")
    print(f"service         {r['service_ms']:8.1f} ms wall  {r['service_cpu']:8.1f} ms CPU")
    print(f"page (server)   {r['page_ms']:8.1f} ms wall  {r['page_cpu']:8.1f} ms CPU   target {TARGET_MS:.0f} ms, "
          f"ratio {r['page_ms'] / TARGET_MS:.2f} (wall), {r['page_cpu'] / TARGET_MS:.2f} (CPU); "
          f"runs {', '.join(f'{x:.0f}' for x in r['runs_page'])}; load {os.getloadavg()[0]:.1f}")
    print("kpis:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r["kpis"].items()})


if __name__ == "__main__":
    main()
