"""Batch control benchmarks: the simulator in its own process at 9600 baud (frame times emulated), the dispatcher
sending batches through billing.control over loopback into a DuckDB file.

  batch   trip, then close, every demo meter (one batch each): the batch's time (queue + dispatch until every
          command is settled) over the physical bus time of its frames, max over buses            target <= 1.3
          The frames of one relay command: a mailbox read (is it free?), the frame's write, a mailbox read (its
          result) and the state blocks read back to confirm the relay bits (RTU sizes at 9600 baud).
  click   one command on an idle bus: from queue_batch (the click) to the command confirmed in the database, with
          the dispatcher woken as the serving process wakes it (ctx.notify -> Dispatcher.kick)    target <= 2 s

Usage: .venv/bin/python bench/control.py [batch|click|all]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from billing import control, settlement  # noqa: E402
from billing.context import BillingContext, utcnow  # noqa: E402
from billing.credit import Actor  # noqa: E402
from collectors.commands import frame_registers  # noqa: E402
from collectors.cycle import CollectorService  # noqa: E402
from collectors.dispatch import Dispatcher, command_frame  # noqa: E402
from collectors.modbus import due_blocks  # noqa: E402
from collectors.poller import FieldIO  # noqa: E402
from collectors.profiles import ProfileRegistry  # noqa: E402
from core import permissions as P  # noqa: E402
from poll_cycle import prepare, start_simulator  # noqa: E402
from simulator.site import find_free_base_port, get_site  # noqa: E402
from simulator.timing import read_transaction_seconds, transaction_seconds  # noqa: E402
from storage.engine import dispose  # noqa: E402
from storage.schema import command  # noqa: E402

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978")   # bench/poll_cycle.py's simulator key
BAUD = 9600
READBACK_REGISTERS = 8
OPERATOR = Actor("bench", frozenset({P.RELAY_BATCH, P.RELAY_COMMAND}))


def command_bus_seconds(profile, meter_id: int, frame: bytes) -> float:
    """Wire time of one relay command's frames: mailbox read, FC16 write of the frame, result read, state read."""
    regs = len(frame_registers(frame))
    write = transaction_seconds(6 + 2 * regs, 5, BAUD)            # FC16: fc, addr, qty, bytes, data / fc, addr, qty
    mailbox = read_transaction_seconds(READBACK_REGISTERS, BAUD)
    state = sum(read_transaction_seconds(b.count, BAUD) for b in due_blocks(profile, 0, meter_id))
    return 2 * mailbox + write + state


def physical_seconds(engine, targets: dict, profiles: ProfileRegistry, batch_id: str) -> tuple[float, int]:
    """Max over buses of the wire time of the batch's commands (the frames they needed at least)."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(command).where(command.c.batch_id == batch_id)).mappings()]
    per_bus: dict = {}
    for cmd in rows:
        t = targets[cmd["meter_id"]]
        frame = command_frame(KEY, t.meter_address, cmd, int(time.time()))
        per_bus[t.endpoint] = per_bus.get(t.endpoint, 0.0) + command_bus_seconds(
            profiles.get(t.profile), cmd["meter_id"], frame)
    return max(per_bus.values()), len(per_bus)


def run_batch(ctx, dispatcher, addresses: list[str], action: str, reason: str | None) -> tuple[str, float, dict]:
    start = time.perf_counter()
    done = control.queue_batch(ctx, OPERATOR, control.Selection(meters=tuple(addresses)), action, reason,
                               confirm=True)
    while True:
        dispatcher.run_once()
        view = control.batch_view(ctx, done.batch_id)
        if not view.open:
            break
    return done.batch_id, time.perf_counter() - start, view.counts


def bench_batch(ctx, engine, fio, profiles, service) -> dict:
    targets = {t.meter_id: t for t in service.targets()}
    prepaid = [t for t in targets.values() if ctx.is_prepaid_profile(t.profile)]
    addresses = [t.meter_address for t in prepaid]
    dispatcher = Dispatcher(engine, fio, KEY, utcnow, on_settled=partial(settlement.settle_command, ctx),
                            send_timeout_s=3.0, workers=32)
    out = {"meters": len(addresses)}
    for action, reason in (("trip", "benchmark"), ("close", None)):
        batch_id, seconds, counts = run_batch(ctx, dispatcher, addresses, action, reason)
        physical, buses = physical_seconds(engine, targets, profiles, batch_id)
        out[action] = {"seconds": round(seconds, 2), "physical_s": round(physical, 2), "buses": buses,
                       "ratio": round(seconds / physical, 3), "counts": counts}
        print(f"{action}: {len(addresses)} meters on {buses} buses in {seconds:.2f} s; physical bus time "
              f"{physical:.2f} s (max over buses); ratio {seconds / physical:.3f} (target <= 1.3); {counts}",
              flush=True)
    return out


def bench_click(ctx, engine, fio, service, repeats: int = 5) -> dict:
    """The serving process's path: the dispatcher's worker thread, woken by ctx.notify after the batch commits."""
    dispatcher = Dispatcher(engine, fio, KEY, utcnow, on_settled=partial(settlement.settle_command, ctx),
                            send_timeout_s=3.0, retry_interval_s=30.0)
    ctx.notify = dispatcher.kick
    dispatcher.start()
    target = next(t for t in service.targets() if ctx.is_prepaid_profile(t.profile))
    times = []
    try:
        for i in range(repeats):
            action = "trip" if i % 2 == 0 else "close"
            start = time.perf_counter()
            done = control.queue_batch(ctx, OPERATOR, control.Selection(meters=(target.meter_address,)), action,
                                       "benchmark", confirm=True)
            while control.batch_view(ctx, done.batch_id).open:
                time.sleep(0.005)
            times.append(time.perf_counter() - start)
            state = control.batch_view(ctx, done.batch_id).rows[0]["state"]
            print(f"click {i + 1}: {action} of {target.meter_address} {state} in {times[-1]:.3f} s", flush=True)
    finally:
        dispatcher.stop()
        ctx.notify = None
    return {"seconds": [round(s, 3) for s in times], "max_s": round(max(times), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=["batch", "click", "all"])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = find_free_base_port(len(get_site("demo", 20000).ports()))
        sim = start_simulator("demo", base, work, baud=BAUD)
        site, engine = prepare("demo", base, work)
        try:
            ctx = BillingContext(engine, b"\0" * 32, clock=utcnow)
            profiles = ProfileRegistry()
            with FieldIO(profiles) as fio:
                service = CollectorService(engine, fio, clock=utcnow)
                service.run_cycle()          # meter_state: command sequences and relay bits to start from
                if args.which in ("batch", "all"):
                    results["batch"] = bench_batch(ctx, engine, fio, profiles, service)
                if args.which in ("click", "all"):
                    results["click"] = bench_click(ctx, engine, fio, service)
        finally:
            sim.terminate()
            sim.wait(10)
            dispose(engine)
    print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
