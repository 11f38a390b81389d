"""Fast state poll against the full reading on a slow bus: one bus of 30 prepaid meters at 2400 baud with frame
times emulated by the simulator (in this process, on loopback). For each kind of cycle: the measured cycle time,
the physical bus time the simulator counts (request + reply frames at the bus's baud) and requests per meter.

The full reading here is the every-cycle one (the realtime block; the configuration block is read one cycle in
60 and is left out) and, separately, one that reads the configuration block too (all blocks).
Usage: .venv/bin/python bench/state_poll.py [--meters 30] [--baud 2400] [--cycles 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.poller import FieldIO, PollTarget  # noqa: E402
from collectors.profiles import ProfileRegistry  # noqa: E402
from simulator.field import run_field_in_thread  # noqa: E402
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec, find_free_base_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=30)
    ap.add_argument("--baud", type=int, default=2400)
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    port = find_free_base_port(1)
    meters = [MeterSpec(address=f"2026{i:08d}", unit=i, profile="acrel-ddsy1352", building="B", floor=1,
                        room=f"R{i}", balance_fen=10000, purchase_count=1, character=0.0)
              for i in range(1, args.meters + 1)]
    site = SiteSpec("bench", [GatewaySpec("GW", buses=[BusSpec(1, port, baud=args.baud, meters=meters)])])
    targets = [PollTarget(i, m.address, "GW", "127.0.0.1", port, "socket", 1, m.unit, m.profile, timeout_s=5.0)
               for i, m in enumerate(meters, start=1)]
    with run_field_in_thread(site, emulate_baud=True) as ft, FieldIO(ProfileRegistry()) as fio:
        bus = ft.field.bus("GW", 1)
        fio.poll_cycle(targets, state_only=True)   # connect once
        results = {}
        for label, kw in (("full (realtime block)", {}), ("full (all blocks)", {"all_blocks": True}),
                          ("state poll", {"state_only": True})):
            walls, wires, requests = [], [], []
            for _ in range(args.cycles):
                w0, n0 = bus.wire_s, bus.transactions
                t0 = time.perf_counter()
                fio.poll_cycle(targets, **kw)
                walls.append(time.perf_counter() - t0)
                wires.append(bus.wire_s - w0)
                requests.append((bus.transactions - n0) / len(targets))
            results[label] = (statistics.median(walls), statistics.median(wires), statistics.median(requests))
    print(f"{args.meters} meters on one bus at {args.baud} baud (frame times emulated), median of {args.cycles}:")
    for label, (wall, wire, req) in results.items():
        print(f"  {label:22s} cycle {wall:6.2f} s   bus time {wire:6.2f} s   requests/meter {req:.0f}")
    full = results["full (realtime block)"][1]
    print(f"  state poll / full reading bus time: {results['state poll'][1] / full:.2f}")


if __name__ == "__main__":
    main()
