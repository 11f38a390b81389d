"""Billing on the demo site: seeding 90 days of sales, selling, dispatching to the meters, reconciling after a
poll, shadow billing over 90 days, and the payment API's sale round trip.

The simulator runs in its own process (`app.py simulate`), the billing side writes a DuckDB file.
Usage: .venv/bin/python bench/billing.py [--days 90] [--api-sales 200]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import sqlalchemy as sa  # noqa: E402

from billing import ledger, settlement  # noqa: E402
from billing.credit import Actor  # noqa: E402
from billing.api import create_api_client  # noqa: E402
from billing.context import BillingContext, utcnow  # noqa: E402
from billing.demo import seed_demo_billing  # noqa: E402
from billing.reconcile import reconcile  # noqa: E402
from billing.shadow import shadow_billing  # noqa: E402
from collectors.cycle import CollectorService  # noqa: E402
from collectors.dispatch import Dispatcher  # noqa: E402
from collectors.poller import FieldIO  # noqa: E402
from collectors.profiles import ProfileRegistry  # noqa: E402
from collectors.topology_import import import_topology  # noqa: E402
from core import permissions as P  # noqa: E402
from simulator.field import Field  # noqa: E402
from simulator.history import backfill  # noqa: E402
from simulator.secure import TEST_MASTER_KEY  # noqa: E402
from simulator.site import demo_site, find_free_base_port  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import meter  # noqa: E402
from storage.timeseries import append_readings  # noqa: E402

# the bench sells as a cashier would, through the gate (billing.credit) with the permission it checks
BENCH_CASHIER = Actor("bench", frozenset({P.SALE_CREATE}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--api-sales", type=int, default=200)
    args = ap.parse_args()
    base = find_free_base_port(20)
    site = demo_site(base_port=base)
    with tempfile.TemporaryDirectory() as d:
        sim = subprocess.Popen([sys.executable, "app.py", "simulate", "--site", "demo", "--base-port", str(base),
                                "--state-file", f"{d}/field.json", "--key-hex", TEST_MASTER_KEY.hex()],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            while "simulating" not in (sim.stdout.readline() or "simulating"):
                pass
            run(site, d, args)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(30)


def run(site, d: str, args) -> None:
    engine = open_engine(f"duckdb:///{d}/billing.duckdb")
    migrate(engine)
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(engine, rows, set(ProfileRegistry().names()), utcnow(), source="bench")
    ctx = BillingContext(engine, bytes(32), clock=utcnow)
    field = Field(site)   # the simulator process starts from the same spec: same counts and balances
    readings, purchases = backfill(site, days=args.days, field=field)
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        readings["meter_id"] = readings.pop("meter_address").map(ids)
        append_readings(conn, readings)
    counts = {a: m.purchase_count for a, m in field.meters.items() if hasattr(m, "purchase_count")}
    t0 = time.perf_counter()
    info = seed_demo_billing(ctx, site, purchases, readings["ts"].min().to_pydatetime(), counts)
    seed_s = time.perf_counter() - t0
    print(f"seed: {info['accounts']} accounts, {info['sales']:,} sales from {args.days} days in {seed_s:.2f} s")

    with FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(engine, fio, clock=utcnow)
        dispatcher = Dispatcher(engine, fio, TEST_MASTER_KEY, utcnow,
                                on_settled=partial(settlement.settle_command, ctx))
        collector.run_cycle()
        t0 = time.perf_counter()
        reconcile(engine, utcnow)
        first_reconcile = time.perf_counter() - t0
        with engine.connect() as conn:
            opened = [a for a, in conn.execute(sa.select(meter.c.address).where(meter.c.status == "opened")
                                                 .order_by(meter.c.address))]
        t0 = time.perf_counter()
        for a in opened:
            ledger.sell(ctx, a, "10.00", BENCH_CASHIER)
        sell_s = time.perf_counter() - t0
        print(f"sell: {len(opened)} sales in {sell_s:.2f} s = {len(opened) / sell_s:.0f} sales/s "
              f"({sell_s / len(opened) * 1000:.1f} ms each, entry + command + audit in one transaction)")
        t0 = time.perf_counter()
        summary = dispatcher.run_once()
        disp_s = time.perf_counter() - t0
        print(f"dispatch: {summary.acked} recharges acknowledged by the meters on 16 buses in {disp_s:.2f} s "
              f"({summary.acked / disp_s:.0f}/s)")
        t0 = time.perf_counter()
        collector.run_cycle()
        cycle_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = reconcile(engine, utcnow)
        rec_s = time.perf_counter() - t0
        print(f"reconcile after a poll: {report.checked} meters in {rec_s:.2f} s (first one {first_reconcile:.2f} s; "
              f"poll cycle {cycle_s:.2f} s); alarms opened: {len(report.opened)}")
        end = utcnow() + dt.timedelta(minutes=1)
        t0 = time.perf_counter()
        days = shadow_billing(engine, end - dt.timedelta(days=args.days + 1), end, ctx.tz)
        shadow_s = time.perf_counter() - t0
        print(f"shadow billing: {len({s.meter_address for s in days})} meters x {args.days} days "
              f"({len(days):,} meter-days) in {shadow_s:.2f} s")
        api_bench(ctx, opened, args.api_sales)
    dispose(engine)


def api_bench(ctx, opened: list[str], n: int) -> None:
    from waitress import create_server

    from dashboard.app import create_app
    token = create_api_client(ctx, "bench", "bench")
    app = create_app(lambda: {"status": "ok"}, services=SimpleNamespace(billing=ctx, qr_key=bytes(32)))
    server = create_server(app.server, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/api/v1/sales"
    times = []
    for i in range(n):
        body = json.dumps({"meter_address": opened[i % len(opened)], "amount": "1.00", "request_id": f"b-{i}"})
        req = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req) as resp:
            resp.read()
        times.append(time.perf_counter() - t0)
    server.close()
    times.sort()
    print(f"API POST /api/v1/sales: {n} sales, median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {times[int(len(times) * 0.95)] * 1000:.1f} ms (sale written, command queued; not waiting for the meter)")


if __name__ == "__main__":
    main()
