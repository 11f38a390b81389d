"""Overview benchmarks: the live map's tick on the server, and the page in Chromium.

  tick     10,080 meters (scale site topology, a meter_state row each, one day of half-hourly
           readings): the function the tick callback calls (dashboard.overview_data.refresh) and the
           whole POST /_dash-update-component through Flask's test client (signed in), for a tick
           after one meter changed state (a one-tile patch), a tick with nothing new, and a full
           redraw (a filter change).                                          target <= 150 ms
  browser  the overview in Chromium, navigation start to every tile rendered, with the 488-meter
           demo site and the 10,080-meter site (server on loopback, signed in).  target <= 2 s
           Also, without a target: the meters grid's first rows, and its export of every row.

Usage: .venv/bin/python bench/overview.py [tick|browser|all] [--repeat 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from collectors.profiles import ProfileRegistry  # noqa: E402
from collectors.topology_import import import_topology  # noqa: E402
from core.config import Config, site_zone  # noqa: E402
from simulator.history import backfill  # noqa: E402
from simulator.site import demo_site, scale_site  # noqa: E402
from storage.engine import dispose, open_engine  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.schema import meter, meter_state  # noqa: E402
from storage.timeseries import append_readings, upsert_meter_state  # noqa: E402

NOW = dt.datetime(2026, 11, 21, 8, 0)
PASSWORD = "bench-password"
TICK = {"ov-interval.n_intervals": 1, "ov-filter-building.value": "*", "ov-filter-floor.value": "*",
        "ov-search.value": ""}


def seed(path: Path, site, history_days: int = 1):
    """A DuckDB file with the site's topology, one meter_state row per meter (about 10 % not opened,
    3 % lost, the rest spread over the alarm levels) and `history_days` of readings."""
    engine = open_engine(f"duckdb:///{path}")
    migrate(engine)
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(engine, rows, set(ProfileRegistry().names()), NOW, source="bench")
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
    rng = np.random.default_rng(7)
    n = len(ids)
    roll = rng.random(n)
    frame = pd.DataFrame({
        "meter_id": list(ids.values()), "ts": NOW, "last_seen": NOW, "updated_at": NOW, "miss_count": 0,
        "comm_state": np.where(rng.random(n) < 0.03, "lost", "online"), "alarm_level": 0,
        "prepaid_enabled": roll >= 0.10, "arrears": (roll >= 0.10) & (roll < 0.17), "relay_closed": ~((roll >= 0.10) & (roll < 0.17)),
        "alarm2": (roll >= 0.10) & (roll < 0.26), "alarm1": (roll >= 0.10) & (roll < 0.40),
        "balance_fen": rng.integers(0, 30000, n), "power_total": rng.random(n) * 2, "voltage_a": 220.0,
        "energy_total": rng.random(n) * 5000,
    })
    with engine.begin() as conn:
        upsert_meter_state(conn, frame)
        conn.execute(meter.update().where(meter.c.room_id.is_not(None)).values(status="opened"))
    if history_days:
        readings, _ = backfill(site, days=history_days, end=NOW)
        readings["meter_id"] = readings.pop("meter_address").map(ids)
        with engine.begin() as conn:
            append_readings(conn, readings[readings["meter_id"].notna()])
    return engine


def make_app(engine):
    """The Dash app as the runtime builds it: the overview's services, sign-in, one operator."""
    from operators.service import Accounts
    from dashboard.app import create_app
    from dashboard.auth import install_auth

    def clock():
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    services = types.SimpleNamespace(engine=engine, cfg=Config())
    app = create_app(lambda: {"status": "ok"}, services=services)
    accounts = Accounts(engine, clock)
    accounts.seed()
    if not accounts.has_operators():
        accounts.ensure_demo_operators(PASSWORD)
    install_auth(app, accounts, os.urandom(32))
    return app


def flip(engine, meter_id: int, k: int) -> None:
    """One meter goes into arrears or out of it, as a poll would write it (updated_at moves)."""
    with engine.begin() as conn:
        conn.execute(meter_state.update().where(meter_state.c.meter_id == meter_id)
                     .values(arrears=sa.not_(meter_state.c.arrears), updated_at=NOW + dt.timedelta(seconds=k)))


def flippable_meter(engine) -> int:
    """A room meter online, opened and prepaid: its arrears flag decides its tile."""
    with engine.connect() as conn:
        return conn.execute(sa.select(meter_state.c.meter_id).join(meter, meter.c.id == meter_state.c.meter_id)
                            .where(meter_state.c.comm_state == "online", meter_state.c.prepaid_enabled.is_(True),
                                   meter_state.c.relay_closed.is_(True), meter.c.room_id.is_not(None))
                            .order_by(meter_state.c.meter_id.desc()).limit(1)).scalar_one()


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms (n={len(samples)})"


def bench_tick(repeat: int) -> None:
    from dashboard.auth import GUARDED_CALLBACKS
    from dashboard.overview_data import TileFilter, refresh
    from tests.webclient import callback_body

    zone = site_zone(Config().timezone)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        engine = seed(Path(d) / "scale.duckdb", scale_site())
        print(f"seeded 10,080 meters and a day of readings in {time.perf_counter() - t0:.1f} s")
        target = flippable_meter(engine)

        # 1. the function the callback calls
        store = refresh(engine, TileFilter(), None, NOW, zone, force=True).store()
        full, patch, same = [], [], []
        for k in range(repeat):
            t = time.perf_counter()
            r = refresh(engine, TileFilter(), store, NOW, zone, force=True)
            full.append(time.perf_counter() - t)
            flip(engine, target, k + 1)
            t = time.perf_counter()
            r = refresh(engine, TileFilter(), store, NOW, zone)
            patch.append(time.perf_counter() - t)
            assert r.mode == "patch" and len(r.changed) == 1, (r.mode, r.changed)
            store = r.store(store)
            t = time.perf_counter()
            assert refresh(engine, TileFilter(), store, NOW, zone).mode == "same"
            same.append(time.perf_counter() - t)
        print(f"refresh(), one tile changed: {_ms(patch)}")
        print(f"refresh(), nothing changed:  {_ms(same)}")
        print(f"refresh(), full redraw:      {_ms(full)}")

        # 2. the whole round trip: POST /_dash-update-component through Flask's test client
        app = make_app(engine)
        client = app.server.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"csrf_token": token, "username": "admin", "password": PASSWORD,
                                           "next": "/"}).status_code == 302
        deps = client.get("/_dash-dependencies").get_json()
        spec = next(s for s in deps if s["output"] == GUARDED_CALLBACKS["overview.refresh"].output)
        pages = next(s for s in deps if s["output"].startswith(".._pages_content.children"))

        def post(body):
            t = time.perf_counter()
            resp = client.post("/_dash-update-component", json=body)
            elapsed = time.perf_counter() - t
            assert resp.status_code in (200, 204), resp.get_data(as_text=True)[:300]
            return elapsed, (resp.get_json() if resp.status_code == 200 else {}), len(resp.get_data())

        layout_times, sizes = [], []
        for _ in range(max(3, repeat // 4)):
            e, _, size = post(callback_body(pages, {"_pages_location.pathname": "/", "_pages_location.search": ""}))
            layout_times.append(e)
            sizes.append(size)
        e, body, _ = post(callback_body(spec, TICK))
        store = body["response"]["ov-tiles-store"]["data"]
        rt_patch, rt_same, rt_filter, patch_sizes = [], [], [], []
        for k in range(repeat):
            flip(engine, target, 1000 + k)
            e, body, size = post(callback_body(spec, {**TICK, "ov-tiles-store.data": store}))
            ops = body["response"]["ov-map"]["buildings"]["operations"]
            assert len(ops) == 1, ops
            store = body["response"]["ov-tiles-store"]["data"]
            rt_patch.append(e)
            patch_sizes.append(size)
            e, body, _ = post(callback_body(spec, {**TICK, "ov-tiles-store.data": store}))
            rt_same.append(e)
            e, body, _ = post(callback_body(spec, {**TICK, "ov-filter-building.value": "Block 07",
                                                   "ov-tiles-store.data": store},
                                            changed=["ov-filter-building.value"]))
            rt_filter.append(e)
        print(f"POST /_dash-update-component, one tile changed: {_ms(rt_patch)}; response {statistics.median(patch_sizes) / 1024:.1f} KiB")
        print(f"POST /_dash-update-component, nothing changed:  {_ms(rt_same)}")
        print(f"POST /_dash-update-component, building filter:  {_ms(rt_filter)}")
        print(f"POST /_dash-update-component, page layout (/):   {_ms(layout_times)}; "
              f"response {statistics.median(sizes) / 1024:.0f} KiB")
        dispose(engine)


def bench_browser(repeat: int) -> None:
    from playwright.sync_api import sync_playwright
    from waitress import create_server

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on this machine")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    # The time the tiles are in the DOM, seen from the page itself (ms since navigation start).
    observe = """
      new MutationObserver(function (_, obs) {
        if (document.querySelector('.ov-tile')) {
          window.__tilesAt = performance.now();
          window.__tiles = document.querySelectorAll('.ov-tile').length;
          obs.disconnect();
        }
      }).observe(document, {childList: true, subtree: true});
    """
    for name, site in (("demo, 488 meters", demo_site()), ("scale, 10,080 meters", scale_site())):
        with tempfile.TemporaryDirectory() as d:
            engine = seed(Path(d) / "site.duckdb", site, history_days=1)
            app = make_app(engine)
            server = create_server(app.server, host="127.0.0.1", port=0, threads=8)
            threading.Thread(target=server.run, daemon=True).start()
            base = f"http://127.0.0.1:{server.effective_port}"
            times, counts = [], set()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=args)
                context = browser.new_context(viewport={"width": 1366, "height": 768})
                page = context.new_page()
                page.goto(base + "/login")
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", PASSWORD)
                page.locator("form button[type=submit]").click()
                page.wait_for_load_state("networkidle")
                context.add_init_script(observe)
                for k in range(repeat + 1):
                    page = context.new_page()
                    page.goto(base + "/")
                    page.wait_for_function("window.__tilesAt !== undefined", timeout=60000)
                    if k:  # the first load fills the browser's cache, as any visit after the first has
                        times.append(page.evaluate("window.__tilesAt") / 1000)
                        counts.add(page.evaluate("window.__tiles"))
                    page.close()
                grid, export = [], []
                for k in range(repeat + 1):
                    page = context.new_page()
                    page.goto(base + "/meters")
                    page.wait_for_selector(".ag-row", timeout=60000)
                    at = page.evaluate("performance.now()") / 1000
                    t = time.perf_counter()
                    with page.expect_download(timeout=60000) as download:
                        page.click("#meters-export")
                    download.value.path()
                    if k:
                        grid.append(at)
                        export.append(time.perf_counter() - t)
                    page.close()
                browser.close()
            server.close()
            dispose(engine)
            print(f"browser, {name}: navigation start to tiles rendered {_ms(times)}; tiles {sorted(counts)}")
            print(f"browser, {name}: meters grid, navigation start to first rows {_ms(grid)}; "
                  f"export of every row, click to file {_ms(export)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["tick", "browser", "all"])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    if args.which in ("tick", "all"):
        bench_tick(args.repeat)
    if args.which in ("browser", "all"):
        bench_browser(max(3, args.repeat // 4))


if __name__ == "__main__":
    main()
