"""A worker's order list on a phone in Chromium: ready within 2 s (issue 12).

  The demo site (its 90 days of work orders in every state, from workorders.demo) with --extra more open orders
  dispatched to the demo worker, so the list is long. A phone context (390 x 844, touch, device scale 2) signed in
  as the worker: navigation start to the list ready (the last order's card drawn), the median of --repeat loads
  (the first load, which fetches the scripts, is not counted). Beside it the bare service call the page's layout
  makes (WorkOrderService.my_orders, one query) and the SQL alone (storage.workorders.worker_orders).

Usage: .venv/bin/python bench/workorders_phone.py [--extra 200] [--repeat 7]
"""
from __future__ import annotations

import argparse
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


def add_orders(rt, n: int) -> int:
    """`n` new orders for demo customers, dispatched to the demo worker (through the service)."""
    import sqlalchemy as sa

    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    from storage.schema import account, operator
    svc = rt.workorders
    manager = Actor("manager", DEFAULT_ROLE_PERMISSIONS["manager"])
    with rt.engine.connect() as conn:
        accounts = list(conn.execute(sa.select(account.c.id).order_by(account.c.id)).scalars())
        worker_id = conn.execute(sa.select(operator.c.id).where(operator.c.username == "worker")).scalar_one()
    for i in range(n):
        o = svc.create(manager, type=("repair", "temporary", "safety_inspection")[i % 3],
                       priority=("urgent", "high", "normal", "low")[i % 4],
                       description=f"Bench order {i}", account=accounts[i % len(accounts)]).order
        svc.dispatch(manager, o["id"], worker_id)
    return worker_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS, demo_password
    from storage.workorders import worker_orders
    from tests.conftest import CHROMIUM_ARGS, chromium_path
    from tests.webclient import base_url, start_demo_runtime
    from workorders import model as M

    tmp = Path(tempfile.mkdtemp(prefix="wattline-bench-phone-"))
    t0 = time.perf_counter()
    rt = start_demo_runtime(tmp)
    started = time.perf_counter() - t0
    try:
        worker_id = add_orders(rt, args.extra)
        worker = Actor("worker", DEFAULT_ROLE_PERMISSIONS["worker"])
        rows = rt.workorders.my_orders(worker)
        last = rows[-1]["id"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; demo started in "
              f"{started:.0f} s; the worker's open orders: {len(rows)}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                          device_scale_factor=2)
            page = context.new_page()
            page.goto(base_url(rt) + "/login")
            page.fill("#login-username", "worker")
            page.fill("#login-password", demo_password())
            page.click("#login-submit")
            page.wait_for_url("**/work")
            ready = f"#work-order-{last}"
            page.wait_for_selector(ready, state="attached", timeout=60000)
            loads = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                page.goto(base_url(rt) + "/work")
                page.wait_for_selector(ready, state="attached", timeout=60000)
                loads.append(time.perf_counter() - t0)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            context.close()
            browser.close()
        calls, sql = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            rt.workorders.my_orders(worker)
            calls.append(time.perf_counter() - t0)
            with rt.engine.connect() as conn:
                t0 = time.perf_counter()
                worker_orders(conn, worker_id, M.OPEN_STATES)
                sql.append(time.perf_counter() - t0)
        med = statistics.median(loads)
        print(f"{'page':<10} {'orders':>6} {'median ready':>12} {'max':>7} {'service':>8} {'bare SQL':>9} {'ratio':>6}"
              f" {'width':>6}")
        print(f"{'/work':<10} {len(rows):>6} {med:>11.2f}s {max(loads):>6.2f}s {statistics.median(calls):>7.3f}s "
              f"{statistics.median(sql):>8.3f}s {med / TARGET_S:>6.2f} {width:>5}px")
    finally:
        rt.stop()


if __name__ == "__main__":
    main()
