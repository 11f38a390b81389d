"""Energy analytics benchmark (issue 11): energy_report by floor and day over the rollups, the bare SQL beside it,
the querying process's peak memory, and the rollup upkeep after one poll cycle of every meter, on DuckDB files
under /tmp (kept between runs: `build` once, then `query` and `upkeep` as often as wanted).

  .venv/bin/python bench/energy.py build --site demo --days 365      # 480 meters, 8.4 M half-hourly readings
  .venv/bin/python bench/energy.py build --site scale --days 90 --no-rebuild   # 10,080 meters, 43.5 M readings
  .venv/bin/python bench/energy.py sql-rollups --site scale          # their rollups by SQL (see sql_rollups)
  .venv/bin/python bench/energy.py query --site demo --repeat 5      # in a fresh process: its peak RSS is the query's
  .venv/bin/python bench/energy.py upkeep --site scale --cycles 3    # appends one cycle of readings per run

Readings are synthetic (numpy, one register and power per meter: a daily shape times a level per meter, noise),
written day by day through storage.timeseries.append_readings; the rollups are built by the command's own rebuild.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
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

from collectors.profiles import ProfileRegistry  # noqa: E402
from collectors.topology_import import import_topology  # noqa: E402
from core.config import AnalyticsConfig  # noqa: E402
from energy.analysis import energy_report  # noqa: E402
from energy.rollups import EnergyRollups  # noqa: E402
from simulator.site import demo_site, scale_site  # noqa: E402
from storage import energy as store  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import meter  # noqa: E402
from storage.timeseries import append_readings  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
STEP = dt.timedelta(minutes=30)
SITES = {"demo": demo_site, "scale": scale_site}
# the 10,080-meter site keeps 7 days of 15-minute rows (a [analytics] fine_days setting): 62 days of them would be
# 60 M rows for nothing this benchmark reads
FINE_DAYS = {"demo": 62, "scale": 7}


def db_path(site: str) -> Path:
    return Path(f"/tmp/wattline-bench/energy-{site}.duckdb")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rollups(engine, site: str) -> EnergyRollups:
    return EnergyRollups.from_config(engine, TZ, AnalyticsConfig(fine_days=FINE_DAYS[site]))


def build(site: str, days: int, rebuild: bool = True) -> None:
    path = db_path(site)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    spec = SITES[site]()
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in spec.topology_rows()]
    end = dt.datetime.now(dt.UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    import_topology(engine, rows, set(ProfileRegistry().names()), end - dt.timedelta(days=days + 1), source="bench")
    with engine.connect() as conn:
        ids = np.array(sorted(conn.execute(sa.select(meter.c.id).where(meter.c.room_id.is_not(None))).scalars()))
    rng = np.random.default_rng(11)
    level = rng.uniform(0.15, 0.8, len(ids))
    register = rng.uniform(100, 5000, len(ids))
    start = end - dt.timedelta(days=days)
    t0 = time.perf_counter()
    n = 0
    day = start
    while day < end:
        ts = pd.date_range(day, periods=48, freq="30min")
        local_hour = ts.tz_localize("UTC").tz_convert(TZ).hour.to_numpy()
        shape = np.where((local_hour >= 7) & (local_hour < 23), 1.0, 0.3)
        kw = level[None, :] * shape[:, None] * rng.uniform(0.7, 1.3, (48, len(ids)))   # (time, meter)
        energy = register[None, :] + np.cumsum(kw * 0.5, axis=0)
        register = energy[-1]
        frame = pd.DataFrame({"ts": np.repeat(ts.to_numpy(), len(ids)), "meter_id": np.tile(ids, 48),
                              "energy_total": energy.ravel().round(2), "power_total": kw.ravel().round(3)})
        with engine.begin() as conn:
            n += append_readings(conn, frame)
        day += dt.timedelta(days=1)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = _rollups(engine, site).rebuild() if rebuild else None
    rebuild_s = time.perf_counter() - t0
    dispose(engine)
    print(json.dumps({"site": site, "meters": len(ids), "days": days, "readings": n, "write_s": round(write_s, 1),
                      "rebuild_s": round(rebuild_s, 1), "rebuild": result, "peak_rss_mib": round(_rss_mib())}))


def sql_rollups(site: str) -> None:
    """A shortcut for the benchmark's own data only: the rollups of `build`'s readings computed in DuckDB SQL
    (half-hourly, aligned, no reset, no silence, no tariff: every interval lies in one Shanghai hour and day, all
    of it flat), for when the Python rebuild of 43 M readings would take longer than the machine gives. The
    figures measured on them (report, upkeep) do not depend on how the rows were made."""
    engine = open_engine(f"duckdb:///{db_path(site)}")
    fine_from = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=FINE_DAYS[site])
    t0 = time.perf_counter()
    iv = ("SELECT meter_id, lag(ts) OVER w AS t0, energy_total - lag(energy_total) OVER w AS d FROM readings "
          "WINDOW w AS (PARTITION BY meter_id ORDER BY ts)")
    with engine.begin() as conn:
        for t in ("energy_15min", "energy_hour", "energy_day", "energy_upkeep"):
            conn.execute(sa.text(f"DELETE FROM {t}"))
        conn.execute(sa.text(f"CREATE TEMP TABLE _iv AS SELECT * FROM ({iv}) WHERE t0 IS NOT NULL"))
        flat = "0.0, 0.0, {e}, 0.0, false, false"
        conn.execute(sa.text(
            "INSERT INTO energy_day SELECT meter_id, CAST(t0 + INTERVAL 8 HOUR AS DATE) AS day, sum(d), "
            f"{flat.format(e='sum(d)')} FROM _iv GROUP BY 1, 2 ORDER BY 2, 1"))
        conn.execute(sa.text(
            f"INSERT INTO energy_hour SELECT meter_id, date_trunc('hour', t0) AS ts, sum(d), {flat.format(e='sum(d)')}"
            " FROM _iv GROUP BY 1, 2 ORDER BY 2, 1"))
        conn.execute(sa.text(
            f"INSERT INTO energy_15min SELECT meter_id, q, d / 2, {flat.format(e='d / 2')} FROM ("
            "SELECT meter_id, t0 AS q, d FROM _iv UNION ALL SELECT meter_id, t0 + INTERVAL 15 MINUTE, d FROM _iv) "
            "WHERE q >= :fine ORDER BY q, meter_id"), {"fine": fine_from})
        conn.execute(sa.text(
            "INSERT INTO energy_upkeep SELECT meter_id, max(ts), arg_max(energy_total, ts), NULL, NULL, NULL, NULL, "
            "arg_max(power_total, ts) FROM readings GROUP BY meter_id"))
        conn.execute(sa.text("DROP TABLE _iv"))
    dispose(engine)
    print(json.dumps({"site": site, "sql_rollups_s": round(time.perf_counter() - t0, 1)}))


def query(site: str, repeat: int) -> None:
    engine = open_engine(f"duckdb:///{db_path(site)}")
    with engine.connect() as conn:
        first, last = conn.execute(sa.text("SELECT min(day), max(day) FROM energy_day")).one()
        days_rows = conn.execute(sa.text("SELECT count(*) FROM energy_day")).scalar()
        readings = conn.execute(sa.text("SELECT count(*) FROM readings")).scalar()
    rss_open = _rss_mib()
    report, bare, report_cpu, bare_cpu = [], [], [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        df = energy_report(engine, TZ, first, last, by="day", group="floor")
        report.append(time.perf_counter() - t0)
        report_cpu.append(time.process_time() - c0)
        # the same grouped SQL on the driver connection, nothing around it
        with engine.connect() as conn:
            t0, c0 = time.perf_counter(), time.process_time()
            conn.connection.driver_connection.execute(BARE_SQL, [first, last + dt.timedelta(days=1)]).fetchall()
            bare.append(time.perf_counter() - t0)
            bare_cpu.append(time.process_time() - c0)
    dispose(engine)
    print(json.dumps({"site": site, "readings": readings, "energy_day_rows": days_rows, "days": (last - first).days + 1,
                      "rows_out": len(df), "energy_report_ms": [round(x * 1000) for x in report],
                      "median_ms": round(statistics.median(report) * 1000),
                      "bare_sql_ms": [round(x * 1000) for x in bare], "bare_median_ms": round(
                          statistics.median(bare) * 1000),
                      "cpu_median_ms": round(statistics.median(report_cpu) * 1000),
                      "bare_cpu_median_ms": round(statistics.median(bare_cpu) * 1000),
                      "load_average": [round(x, 1) for x in os.getloadavg()], "rss_after_open_mib": round(rss_open),
                      "peak_rss_mib": round(_rss_mib())}))


BARE_SQL = """
SELECT e.day AS period, coalesce(b.name, ab.name) AS building, r.floor, sum(e.energy_kwh), sum(e.energy_sharp),
       sum(e.energy_peak), sum(e.energy_flat), sum(e.energy_valley), bool_or(e.estimated), bool_or(e.gap)
FROM energy_day e JOIN meter m ON m.id = e.meter_id LEFT JOIN room r ON r.id = m.room_id
LEFT JOIN building b ON b.id = r.building_id LEFT JOIN area_meter am ON am.meter_id = m.id
LEFT JOIN transformer_area a ON a.id = am.area_id
LEFT JOIN building ab ON ab.id = a.building_id
WHERE e.day >= ? AND e.day < ? GROUP BY 1, 2, 3
"""


def upkeep(site: str, cycles: int) -> None:
    """Append one reading per meter (a poll cycle, 30 minutes after the last) and time the upkeep; the SQL share
    is the time spent inside storage.energy's functions."""
    engine = open_engine(f"duckdb:///{db_path(site)}")
    spent = {"sql": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["sql"] += time.perf_counter() - t0
        return wrapper
    for name in ("upkeep_watermark", "energy_readings", "upkeep_state", "save_upkeep_state", "add_to_rollup"):
        setattr(store, name, timed(getattr(store, name)))
    out = []
    rollups = _rollups(engine, site)   # energy.rollups calls storage.energy through the module: the timers apply
    for _ in range(cycles):
        with engine.connect() as conn:
            last = conn.execute(sa.text("SELECT max(ts) FROM readings")).scalar()
            state = pd.DataFrame(conn.execute(sa.text(
                "SELECT meter_id, energy_total, power_total FROM energy_upkeep")).all(),
                columns=["meter_id", "energy_total", "power_total"])
        frame = state.assign(ts=last + STEP, energy_total=state["energy_total"] + state["power_total"] * 0.5)
        with engine.begin() as conn:
            append_readings(conn, frame)
        spent["sql"] = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        result = rollups.upkeep()
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        out.append({"meters": result.meters, "upkeep_ms": round(total * 1000), "cpu_ms": round(cpu * 1000),
                    "sql_ms": round(spent["sql"] * 1000)})
    dispose(engine)
    print(json.dumps({"site": site, "cycles": out, "median_ms": round(statistics.median(c["upkeep_ms"] for c in out)),
                      "cpu_median_ms": round(statistics.median(c["cpu_ms"] for c in out)),
                      "load_average": [round(x, 1) for x in os.getloadavg()],
                      "peak_rss_mib": round(_rss_mib())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["build", "sql-rollups", "query", "upkeep"])
    parser.add_argument("--no-rebuild", action="store_true", help="build: readings only")
    parser.add_argument("--site", choices=sorted(SITES), default="demo")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    if args.what == "build":
        build(args.site, args.days, rebuild=not args.no_rebuild)
    elif args.what == "sql-rollups":
        sql_rollups(args.site)
    elif args.what == "query":
        query(args.site, args.repeat)
    else:
        upkeep(args.site, args.cycles)


if __name__ == "__main__":
    main()
