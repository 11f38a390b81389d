"""A worker's order list on a phone in Chromium: ready within 2 s (issue 12).

  The demo site (its 90 days of work orders in every state, from workorders.demo) with --extra more open orders
  dispatched to the demo worker, so the list is long. A phone context (390 x 844, touch, device scale 2) signed in
  as the worker: navigation start to the list ready (the page draws the first FIRST_CARDS orders and a "more"
  button: ready when the last of those cards and the button are drawn), the median of --repeat loads (the first
  load, which fetches the scripts, is not counted); then "more": the tap to the last order's card drawn. Beside it
  the bare service call the page's layout makes (WorkOrderService.my_orders, one query) and the SQL alone
  (storage.workorders.worker_orders). CPU per load: this process (the server's threads run in it) and Chromium
  with Playwright's driver (the child processes, from /proc): on a shared machine the wall time waits for a core.

Usage: .venv/bin/python bench/workorders_phone.py [--extra 200] [--repeat 7] [--first N]
  --first N  draw N cards first instead of the page's FIRST_CARDS (e.g. 1000: every card, as before "more")
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


def _children_cpu() -> float:
    """CPU seconds (user + system) of every process descended from this one (Chromium, Playwright's driver)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    mine, total = {os.getpid()}, 0.0
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                total += cpu[pid]
                changed = True
    return total


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
    ap.add_argument("--first", type=int, help="cards drawn first (default: the page's FIRST_CARDS)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from billing.credit import Actor
    from operators.service import DEFAULT_ROLE_PERMISSIONS, demo_password
    from storage.workorders import worker_orders
    from tests.conftest import CHROMIUM_ARGS, chromium_path
    from dashboard.components import field as field_cards
    if args.first:
        field_cards.FIRST_CARDS = args.first      # the server runs in this process
    FIRST_CARDS = field_cards.FIRST_CARDS
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
            drawn = f"#work-order-{rows[min(FIRST_CARDS, len(rows)) - 1]['id']}"
            more = "#work-more" if len(rows) > FIRST_CARDS else None
            page.wait_for_selector(drawn, state="attached", timeout=60000)
            loads, taps, server_cpu, browser_cpu = [], [], [], []
            for _ in range(args.repeat):
                c0, b0 = time.process_time(), _children_cpu()
                t0 = time.perf_counter()
                page.goto(base_url(rt) + "/work")
                page.wait_for_selector(drawn, state="attached", timeout=60000)
                if more:
                    page.wait_for_selector(more, state="visible", timeout=60000)
                loads.append(time.perf_counter() - t0)
                server_cpu.append(time.process_time() - c0)
                browser_cpu.append(_children_cpu() - b0)
                if more:
                    t0 = time.perf_counter()
                    page.click(more)
                    page.wait_for_selector(f"#work-order-{last}", state="attached", timeout=60000)
                    taps.append(time.perf_counter() - t0)
            shown = page.evaluate("Array.from(document.querySelectorAll('#work-orders > a')).map(a => a.id)")
            assert shown == [f"work-order-{r['id']}" for r in rows], "the list after 'more' is not in due order"
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
        print(f"{'page':<10} {'orders':>6} {'drawn':>5} {'median ready':>12} {'max':>7} {'server CPU':>10} "
              f"{'browser CPU':>11} {'service':>8} {'bare SQL':>9} {'ratio':>6} {'width':>6}")
        print(f"{'/work':<10} {len(rows):>6} {min(FIRST_CARDS, len(rows)):>5} {med:>11.2f}s {max(loads):>6.2f}s "
              f"{statistics.median(server_cpu):>9.2f}s {statistics.median(browser_cpu):>10.2f}s "
              f"{statistics.median(calls):>7.3f}s {statistics.median(sql):>8.3f}s {med / TARGET_S:>6.2f} {width:>5}px")
        if taps:
            print(f"'more' (the other {len(rows) - FIRST_CARDS} cards): median {statistics.median(taps):.2f}s, "
                  f"max {max(taps):.2f}s; runs {', '.join(f'{x:.2f}' for x in loads)} (ready), "
                  f"load {os.getloadavg()[0]:.1f}")
    finally:
        rt.stop()


if __name__ == "__main__":
    main()
