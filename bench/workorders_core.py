"""Work-order core services at 100,000 orders and 1,000,000 events (the KPI benchmark's data set).

No target of its own in the issue: these are the reads under the pages that have one (a worker's order list on
the phone within 2 s; the office's list and search) and the deadline job that runs every few minutes. Measured,
each the median of --repeat runs on a warm DuckDB file, the service beside the bare SQL of the same query:
  my_orders   a worker's open orders, soonest due first, with due flags (the phone's list)
  search      the office's search: a customer's name (substring), then an order number
  order_view  one order with steps, materials, fees and events
  job         the "workorders" job in its steady state: 1,000 arrears alarms open long enough that already have
              their orders (nothing to create), and the reminders (nothing new to queue)

Usage: .venv/bin/python bench/workorders_core.py [--orders 100000] [--events 1000000] [--repeat 7] [--db PATH]
       [--keep PATH]
(--db: a file kept by bench/workorders_kpi.py --keep, instead of seeding a new one)
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from billing.credit import Actor  # noqa: E402
from operators.service import DEFAULT_ROLE_PERMISSIONS  # noqa: E402
from storage import alarms  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.schema import operator, work_order  # noqa: E402
from workorders.service import WorkOrderService  # noqa: E402


def _kpi_bench():
    """The KPI benchmark's module (its data set and seeding), loaded from its file: bench/ is no package, and
    putting it on the path would let bench/billing.py hide the billing package."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("workorders_kpi_bench", ROOT / "bench" / "workorders_kpi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KPI = _kpi_bench()
NOW, ZONE, seed = KPI.NOW, KPI.ZONE, KPI.seed


def _median_ms(fn, repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(round((time.perf_counter() - t0) * 1000, 1))
    return statistics.median(runs), runs


def measure(path: Path, repeat: int) -> dict:
    engine = open_engine(f"duckdb:///{path}")
    svc = WorkOrderService(engine, zone=ZONE, clock=lambda: NOW)
    manager = Actor("manager", DEFAULT_ROLE_PERMISSIONS["manager"])
    with engine.connect() as conn:
        busiest = conn.execute(sa.select(work_order.c.assigned_to, sa.func.count().label("n"))
                               .where(work_order.c.state.in_(("dispatched", "accepted", "on_site", "rejected")))
                               .group_by(work_order.c.assigned_to).order_by(sa.text("n DESC")).limit(1)).first()
        username = conn.execute(sa.select(operator.c.username).where(operator.c.id == busiest[0])).scalar_one()
        sample = conn.execute(sa.select(work_order.c.id, work_order.c.number, work_order.c.customer_name)
                              .order_by(work_order.c.id.desc()).limit(1)).first()
    meters = range(1, 1001)     # alarm subjects (the data set has no topology: orders without a customer)
    with engine.begin() as conn:     # the job's steady state: open arrears alarms that have their orders already
        alarms.open_alarms_of(conn, alarms.ARREARS, alarms.AlarmLevel.CRITICAL,
                              [(alarms.meter(m), "arrears", {"balance": "0.00"}) for m in meters],
                              NOW - dt.timedelta(days=3))
    t0 = time.perf_counter()
    made = svc.raise_orders_from_alarms(NOW)
    svc.send_reminders(NOW)
    first_s = time.perf_counter() - t0
    worker = Actor(username, DEFAULT_ROLE_PERMISSIONS["worker"])
    name = (sample.customer_name or "Li")[:4]     # (the demo's orders may carry no name: a full scan, no hits)
    out = {"worker": username, "open_orders_of_worker": busiest[1], "alarm_orders_made_first": len(made),
           "first_job_s": round(first_s, 2)}
    cases = {
        "my_orders": (lambda: svc.my_orders(worker),
                      "SELECT * FROM work_order WHERE assigned_to = :w AND state IN ('created','dispatched',"
                      "'accepted','on_site','on_hold','completed','rejected') ORDER BY due_at, id",
                      {"w": busiest[0]}),
        "search_name": (lambda: svc.search(manager, text=name),
                        "SELECT * FROM work_order WHERE lower(customer_name) LIKE :t ORDER BY created_at DESC, id DESC "
                        "LIMIT 500", {"t": f"%{name.lower()}%"}),
        "search_number": (lambda: svc.search(manager, text=sample.number),
                          "SELECT * FROM work_order WHERE number = :n", {"n": sample.number}),
        "order_view": (lambda: svc.order_view(manager, sample.id),
                       "SELECT * FROM work_order_event WHERE order_id = :i ORDER BY id", {"i": sample.id}),
        "job": (lambda: svc.run_deadline_job(NOW),
                "SELECT * FROM alarm_event WHERE kind = 'arrears' AND open_key IS NOT NULL", {}),
    }
    for key, (fn, bare, params) in cases.items():
        fn()     # warm
        service_ms, runs = _median_ms(fn, repeat)
        with engine.connect() as conn:
            sql_ms, _ = _median_ms(lambda: conn.execute(sa.text(bare), params).all(), repeat)
        out[key] = {"service_ms": service_ms, "runs": runs, "sql_ms": sql_ms}
    dispose(engine)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--keep", type=Path, help="seed into this file and keep it (then rerun with --db a copy)")
    args = ap.parse_args()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db
        if path is None:
            path = args.keep or Path(tmp) / "workorders.duckdb"
            result["seed"] = seed(path, args.orders, args.events)
        result.update(measure(path, args.repeat))
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
