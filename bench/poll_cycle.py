"""Poll-cycle benchmarks: the simulator in its own process (as on a real site, the field is not
in the collector's process), the collector polling it over loopback and writing a DuckDB file.

  demo   the 488-meter demo site                                   target <= 3 s a cycle
  scale  10,080 meters (21 gateways x 16 buses x 30), peak memory   target <= 30 s a cycle
  baud   the demo site with 9600 baud frame times emulated: cycle time over the physical
         bus time (max over buses of the request + reply frame times) target <= 1.15

A cycle's time is the poll plus the database write (readings, meter_state, bus state), i.e.
what the scheduler's job takes. Usage:
  .venv/bin/python bench/poll_cycle.py [demo|scale|baud|all] [--cycles 5]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.cycle import CollectorService  # noqa: E402
from collectors.modbus import due_blocks  # noqa: E402
from collectors.poller import FieldIO  # noqa: E402
from collectors.profiles import ProfileRegistry  # noqa: E402
from collectors.topology_import import import_topology  # noqa: E402
from simulator.site import find_free_base_port, get_site  # noqa: E402
from simulator.timing import read_transaction_seconds  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import gateway  # noqa: E402


def start_simulator(site_name: str, base_port: int, workdir: Path, baud: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "app.py"), "simulate", "--site", site_name, "--base-port", str(base_port),
           "--state-file", str(workdir / "field.json"), "--key-hex", "0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A6978"]
    if baud:
        cmd += ["--baud", str(baud)]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, "WATTLINE_CONFIG": ""})
    ports = get_site(site_name, base_port).ports()
    deadline = time.time() + 120
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise SystemExit(f"simulator did not open port {port}")
                time.sleep(0.2)
    return proc


def prepare(site_name: str, base_port: int, workdir: Path):
    site = get_site(site_name, base_port)
    engine = open_engine(f"duckdb:///{workdir / 'bench.duckdb'}")
    migrate(engine)
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(engine, rows, set(ProfileRegistry().names()), dt.datetime(2026, 11, 21), source="bench")
    return site, engine


def physical_bus_seconds(service: CollectorService, profiles: ProfileRegistry, cycle_no: int, baud: int) -> float:
    """Max over buses of the wire time of the requests this cycle makes and their replies."""
    per_bus: dict = {}
    for t in service.targets():
        blocks = due_blocks(profiles.get(t.profile), cycle_no, t.meter_id)
        per_bus[t.endpoint] = per_bus.get(t.endpoint, 0.0) + sum(read_transaction_seconds(b.count, baud) for b in blocks)
    return max(per_bus.values())


def run(site_name: str, cycles: int, baud: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        base_port = find_free_base_port(len(get_site(site_name, 20000).ports()))
        site, engine = prepare(site_name, base_port, workdir)
        if baud:
            with engine.begin() as conn:  # a 30-meter bus at 9600 baud needs its time per request
                conn.execute(gateway.update().values(timeout_s=2.0))
        sim = start_simulator(site_name, base_port, workdir, baud)
        profiles = ProfileRegistry()
        try:
            with FieldIO(profiles) as fio:
                service = CollectorService(engine, fio)
                service.run_cycle()  # connect all endpoints once, as a running site has them
                times, polls, writes, ratios = [], [], [], []
                for _ in range(cycles):
                    cycle_no = fio.poller.cycle_no
                    t0 = time.perf_counter()
                    s = service.run_cycle()
                    times.append(time.perf_counter() - t0)
                    polls.append(s.duration_s)
                    writes.append(s.write_s)
                    if s.ok != s.meters:
                        print(f"  warning: {s.meters - s.ok} meters failed in a cycle", file=sys.stderr)
                    if baud:
                        ratios.append(times[-1] / physical_bus_seconds(service, profiles, cycle_no, baud))
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=60)
            dispose(engine)
        return {"site": site_name, "meters": len(site.meters()), "buses": len(site.ports()), "cycles": cycles,
                "median_s": statistics.median(times), "max_s": max(times), "poll_median_s": statistics.median(polls),
                "write_median_s": statistics.median(writes),
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["demo", "scale", "baud", "all"])
    ap.add_argument("--cycles", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    todo = ["demo", "baud", "scale"] if args.which == "all" else [args.which]
    for which in todo:
        if which == "baud":
            r = run("demo", max(2, args.cycles // 2), baud=9600)
            print(f"baud 9600, demo site: cycle median {r['median_s']:.2f} s, max {r['max_s']:.2f} s; "
                  f"cycle / physical bus time: median {r['ratio_median']:.3f}, max {r['ratio_max']:.3f} "
                  f"(target <= 1.15)")
        else:
            r = run(which, args.cycles)
            target = 3 if which == "demo" else 30
            print(f"{which}: {r['meters']} meters on {r['buses']} buses, {r['cycles']} cycles: median "
                  f"{r['median_s']:.2f} s (poll {r['poll_median_s']:.2f} s + write {r['write_median_s']:.2f} s), "
                  f"max {r['max_s']:.2f} s, target <= {target} s; collector peak RSS {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
