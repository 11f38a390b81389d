"""Line-loss benchmark (issue 13): line loss for every transformer area and day of a year, 21 areas x 480 customer
meters (plus a master meter each, CT ratio 40) with one midnight register per meter and day, on a DuckDB file under
/tmp (kept between runs: `build` once, then `run` as often as wanted). Target: at most 1 s.

  .venv/bin/python bench/line_loss.py build             # 10,101 meters, 3.7 M readings, then the year frozen
  .venv/bin/python bench/line_loss.py run --repeat 5    # grid.line_loss.line_loss for the year, by day and by month,
                                                        # from the frozen registers and from the readings (live)

The registers are synthetic (numpy: a daily use per meter and day, summed; the master meter counts the area's use
plus 3-12 % loss, divided by its CT ratio), written from DataFrames through storage.timeseries.append_readings (one
bulk write per chunk of meters, never executemany). Some registers are left out (not computable days), some are
read 7 minutes after midnight (within the tolerance) and some are replaced by two readings around midnight
(interpolated), so every path of the computation is taken.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from collectors.topology_import import import_topology  # noqa: E402
from grid.line_loss import freeze_days, line_loss, local_midnight  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import area_meter, meter, transformer_area  # noqa: E402
from storage.timeseries import append_readings  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
AREAS, METERS = 21, 480
FIRST = dt.date(2025, 12, 1)
DAYS = 365
CT_RATIO = 40.0
PROFILES = {"acrel-ddsy1352", "eastron-sdm630"}
DB = Path("/tmp/wattline-bench/line-loss.duckdb")


def topology_rows() -> list[dict]:
    rows = []
    for a in range(1, AREAS + 1):
        area = {"building": f"Block {a:02d}", "area": f"Area S{a:02d}", "gateway": f"GW-S{a:02d}",
                "host": f"10.0.{a}.1", "framing": "socket"}
        rows.append({**area, "bus": "17", "port": "502", "unit": "1", "profile": "eastron-sdm630",
                     "meter_address": f"31{a:04d}000001", "area_role": "master", "ct_ratio": str(CT_RATIO)})
        for i in range(METERS):
            bus, unit = i // 30 + 1, i % 30 + 1
            rows.append({**area, "bus": str(bus), "port": str(5000 + bus), "unit": str(unit),
                         "profile": "acrel-ddsy1352", "floor": str(bus), "room": f"S{a:02d}-{bus:02d}{unit:02d}",
                         "meter_address": f"30{a:04d}{bus:03d}{unit:03d}"})
    return rows


def build() -> None:
    DB.parent.mkdir(parents=True, exist_ok=True)
    if DB.exists():
        DB.unlink()
    engine = open_engine(f"duckdb:///{DB}")
    migrate(engine)
    t0 = time.perf_counter()
    import_topology(engine, topology_rows(), PROFILES, dt.datetime(2025, 11, 1))
    with engine.connect() as conn:
        meters = pd.DataFrame(conn.execute(
            sa.select(meter.c.id, area_meter.c.area_id, meter.c.profile)
            .join(area_meter, area_meter.c.meter_id == meter.c.id)
            .join(transformer_area, transformer_area.c.id == area_meter.c.area_id).order_by(meter.c.id))
            .mappings().all())
    print(f"topology: {len(meters)} meters in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(13)
    midnights = np.array([local_midnight(FIRST + dt.timedelta(days=d), TZ) for d in range(DAYS + 1)],
                         dtype="datetime64[us]")
    customers = meters[meters["profile"] == "acrel-ddsy1352"]
    masters = meters[meters["profile"] == "eastron-sdm630"].set_index("area_id")
    use = rng.gamma(2.0, 3.0, size=(len(customers), DAYS))                    # kWh a day per customer meter
    registers = np.concatenate([np.full((len(customers), 1), 100.0), 100.0 + np.cumsum(use, axis=1)], axis=1)
    area_use = pd.DataFrame(use).groupby(customers["area_id"].to_numpy()).sum()
    loss = rng.uniform(0.03, 0.12, size=area_use.shape)
    master_use = area_use.to_numpy() * (1 + loss) / CT_RATIO
    master_regs = np.concatenate([np.full((len(master_use), 1), 5000.0),
                                  5000.0 + np.cumsum(master_use, axis=1)], axis=1)
    ids = np.concatenate([customers["id"].to_numpy(), masters.loc[area_use.index, "id"].to_numpy()])
    values = np.concatenate([registers, master_regs])
    t0, written = time.perf_counter(), 0
    chunk = 1000
    for start in range(0, len(ids), chunk):
        part_ids, part = ids[start:start + chunk], values[start:start + chunk]
        n, days = part.shape
        ts = np.tile(midnights, n)
        frame = pd.DataFrame({"ts": ts, "meter_id": np.repeat(part_ids, days), "energy_total": part.ravel()})
        draw = rng.random(len(frame))
        late = draw < 0.01                                       # read 7 minutes after midnight: still exact
        frame.loc[late, "ts"] = frame.loc[late, "ts"] + pd.Timedelta(minutes=7)
        around = (draw >= 0.01) & (draw < 0.015)                 # read at 23:40 and 00:25: interpolated
        before = frame.loc[around].copy()
        before["ts"] -= pd.Timedelta(minutes=20)
        before["energy_total"] -= 0.05
        frame.loc[around, "ts"] = frame.loc[around, "ts"] + pd.Timedelta(minutes=25)
        frame.loc[around, "energy_total"] += 0.06
        keep = draw >= 0.00002                                   # a few registers never read: not computable
        frame = pd.concat([frame[keep], before], ignore_index=True).sort_values(["meter_id", "ts"])
        with engine.begin() as conn:
            written += append_readings(conn, frame)
    print(f"readings: {written:,} rows in {time.perf_counter() - t0:.1f} s -> {DB}")
    w0, c0 = time.perf_counter(), time.process_time()
    frozen = freeze_days(engine, TZ, FIRST, FIRST + dt.timedelta(days=DAYS), dt.datetime(2027, 1, 1))
    print(f"frozen: {frozen:,} midnight registers in {time.perf_counter() - w0:.1f} s wall, "
          f"{time.process_time() - c0:.1f} s CPU (the line_loss job's work for a year at once)")
    dispose(engine)


def run(repeat: int) -> None:
    engine = open_engine(f"duckdb:///{DB}")
    last = FIRST + dt.timedelta(days=DAYS - 1)
    out = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    for by, use_frozen in (("day", True), ("month", True), ("day", False), ("month", False)):
        walls, cpus = [], []
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            rows = line_loss(engine, TZ, FIRST, last, by=by, use_frozen=use_frozen)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        counts = rows["class"].value_counts().to_dict()
        out[f"{by}{'' if use_frozen else ' (live, from the readings)'}"] = {"rows": len(rows), "classes": counts, "interpolated_rows": int(rows["interpolated"].sum()),
                   "wall_s": {"min": round(min(walls), 3), "median": round(statistics.median(walls), 3)},
                   "cpu_s": {"min": round(min(cpus), 3), "median": round(statistics.median(cpus), 3)}}
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    dispose(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build")
    r = sub.add_parser("run")
    r.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.command == "build":
        build()
    else:
        if not DB.exists():
            sys.exit(f"{DB} does not exist: run `build` first")
        run(args.repeat)


if __name__ == "__main__":
    main()
