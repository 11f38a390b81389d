"""Energy that can be trusted: intervals from the registers (resets, swaps, spikes, silences), the rollups kept
after each cycle and rebuilt, their TOU split and the site's days, on both engines."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from app import main
from billing import tariffs
from collectors.schedule import Jobs
from core.config import AnalyticsConfig
from core.events import CYCLE_CHANGED, EventBus
from collectors.changes import CycleChanges
from energy.derive import SWAP, DeriveRules, intervals
from energy.rollups import ROLLUP_JOB, EnergyRollups, attach_rollups
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.engine import dispose, open_engine
from storage.migrations import migrate
from storage.schema import energy_15min, energy_day, energy_hour, meter
from storage.timeseries import append_readings
from tests.billing_support import Clock, load_site, make_ctx

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 11, 21, 8, 0)
DAY0 = dt.datetime(2026, 11, 18, 16, 0)     # 2026-11-19 00:00 in Shanghai


def _site(n: int = 3) -> SiteSpec:
    specs = [MeterSpec(address=f"1000000000{i + 1:02d}", unit=i + 1, profile="acrel-ddsy1352", building="Dorm A",
                       floor=1, room=f"A-10{i + 1}") for i in range(n)]
    return SiteSpec("t", [GatewaySpec("GW-A", buses=[BusSpec(1, 15000, meters=specs)])])


@pytest.fixture
def site(any_engine):
    load_site(any_engine, _site(), NOW)
    with any_engine.connect() as conn:
        ids = list(conn.execute(sa.select(meter.c.id).order_by(meter.c.address)).scalars())
    return any_engine, ids


def _steady(meter_id: int, start: dt.datetime, steps: int, kwh_per_step: float, *, minutes: int = 30,
            first: float = 100.0, power_kw: float = 1.0) -> pd.DataFrame:
    """Readings every `minutes` from `start`, the register rising by kwh_per_step each time."""
    ts = pd.date_range(start, periods=steps, freq=f"{minutes}min")
    return pd.DataFrame({"ts": ts, "meter_id": meter_id, "energy_total": first + kwh_per_step * np.arange(steps),
                         "power_total": power_kw})


def _append(engine, *frames) -> None:
    with engine.begin() as conn:
        append_readings(conn, pd.concat(frames, ignore_index=True))


def _rows(engine, table, order=("meter_id", "ts")) -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(sa.select(table)).mappings().all())
    if df.empty:
        return df
    for c in ("ts", "day"):
        if c in df:
            df[c] = pd.to_datetime(df[c])
    return df.sort_values(list(order)).reset_index(drop=True)


def _rollups(engine, tz=SHANGHAI) -> EnergyRollups:
    return EnergyRollups(engine, tz, clock=lambda: NOW)


def test_counter_reset_and_spike_count_nothing_and_mark_the_gap(site):
    engine, (m1, m2, _m3) = site
    reset = _steady(m1, DAY0, 48, 0.5)
    reset.loc[20:, "energy_total"] = 0.2 + 0.5 * np.arange(28)        # the register starts again near zero
    spike = _steady(m2, DAY0, 48, 0.5)
    spike.loc[30:, "energy_total"] += 9000.0                           # a garbled read: +9,000 kWh in 30 minutes
    _append(engine, reset, spike)
    _rollups(engine).upkeep()
    days = _rows(engine, energy_day, ("meter_id", "day")).set_index("meter_id")
    # 47 intervals of 0.5 kWh, one of them not counted
    assert days.loc[m1, "energy_kwh"] == pytest.approx(46 * 0.5)
    assert days.loc[m2, "energy_kwh"] == pytest.approx(46 * 0.5)
    assert bool(days.loc[m1, "gap"]) and bool(days.loc[m2, "gap"])
    quarters = _rows(engine, energy_15min)
    assert (quarters["energy_kwh"] >= 0).all()
    assert quarters["energy_kwh"].max() == pytest.approx(0.25)        # no spike anywhere
    gap_quarters = quarters[quarters["gap"]]
    assert set(gap_quarters["meter_id"]) == {m1, m2}
    assert (gap_quarters["energy_kwh"] == 0).all()
    assert len(gap_quarters) == 4                                      # the two 30-minute intervals, 2 quarters each


def test_a_meter_swapped_in_place_is_a_gap_even_when_the_new_register_is_higher():
    start = pd.Timestamp(DAY0)
    frame = pd.DataFrame({"meter_id": 7, "ts": [start + pd.Timedelta(minutes=30 * i) for i in range(4)],
                          "energy_total": [100.0, 100.5, 900.0, 900.5], "power_total": 1.0})
    swapped_at = (start + pd.Timedelta(minutes=45)).to_pydatetime()
    iv = intervals(frame, DeriveRules(ceiling_kw=10_000), {7: [swapped_at]})
    assert list(iv["gap"]) == ["", SWAP, ""]               # 799.5 kWh in 30 minutes would pass as plausible
    assert list(iv["energy_kwh"]) == [0.5, 0.0, 0.5]


def test_a_lost_day_is_attributed_when_the_meter_returns_spread_and_estimated(site):
    engine, (m1, m2, _m3) = site
    rollups = _rollups(engine)
    _append(engine, _steady(m1, DAY0, 24, 0.5), _steady(m2, DAY0, 24, 0.5))
    rollups.upkeep()
    # m1 falls silent at 11:30 local on the 19th; m2 goes on; m1 is back a day later, 24 kWh further on
    _append(engine, _steady(m2, DAY0 + dt.timedelta(hours=12), 48, 0.5, first=112.0))
    rollups.upkeep()
    back = DAY0 + dt.timedelta(hours=11, minutes=30) + dt.timedelta(days=1)
    _append(engine, pd.DataFrame({"ts": [back], "meter_id": [m1], "energy_total": [111.5 + 24.0],
                                  "power_total": [1.0]}))
    rollups.upkeep()
    quarters = _rows(engine, energy_15min)
    silent = quarters[(quarters["meter_id"] == m1) & (quarters["ts"] >= DAY0 + dt.timedelta(hours=11, minutes=30))]
    assert len(silent) == 96
    assert silent["estimated"].all() and not silent["gap"].any()
    assert silent["energy_kwh"].to_numpy() == pytest.approx(np.full(96, 0.25))
    days = _rows(engine, energy_day, ("meter_id", "day"))
    m1_days = days[days["meter_id"] == m1].set_index("day")
    assert m1_days["energy_kwh"].sum() == pytest.approx(11.5 + 24.0)
    assert list(m1_days["estimated"]) == [True, True]                   # both days hold part of the silence
    assert not days[days["meter_id"] == m2]["estimated"].any()


def _random_readings(ids, rng) -> pd.DataFrame:
    """Two days of readings every 10-40 minutes per meter with a reset, a silence and a spike among them."""
    frames = []
    for k, mid in enumerate(ids):
        gaps = rng.integers(10, 40, 140)
        gaps[60] = 600 if k == 0 else gaps[60]                         # a ten-hour silence
        ts = pd.Timestamp(DAY0) + pd.to_timedelta(np.cumsum(gaps), unit="min")
        ts = ts[ts < pd.Timestamp(DAY0 + dt.timedelta(days=2))]
        energy = 50.0 + np.cumsum(rng.uniform(0, 0.6, len(ts))).round(2)
        if k == 1:
            energy[70:] -= energy[70] - 0.1                               # a reset
        if k == 2:
            energy[90] += 5000.0                                           # one garbled reading
        frames.append(pd.DataFrame({"ts": ts, "meter_id": mid, "energy_total": energy,
                                    "power_total": rng.uniform(0.2, 1.5, len(ts))}))
    return pd.concat(frames, ignore_index=True)


def test_incremental_upkeep_gives_the_same_rollups_as_a_full_rebuild(site):
    engine, ids = site
    data = _random_readings(ids, np.random.default_rng(11))
    rollups = _rollups(engine)
    cuts = pd.date_range(DAY0, DAY0 + dt.timedelta(days=2), freq="97min").append(
        pd.DatetimeIndex([DAY0 + dt.timedelta(days=2)]))
    for lo, hi in zip(cuts[:-1], cuts[1:]):                               # cycle by cycle
        _append(engine, data[(data["ts"] >= lo) & (data["ts"] < hi)])
        rollups.upkeep()
    assert rollups.upkeep().readings == 0                                 # idempotent: nothing new, nothing added
    kept = {t.name: _rows(engine, t, ("meter_id", "day" if t is energy_day else "ts"))
            for t in (energy_15min, energy_hour, energy_day)}
    rollups.rebuild()
    for t in (energy_15min, energy_hour, energy_day):
        rebuilt = _rows(engine, t, ("meter_id", "day" if t is energy_day else "ts"))
        incremental = kept[t.name]
        assert len(rebuilt) == len(incremental) > 0
        for c in ("energy_kwh", "energy_sharp", "energy_peak", "energy_flat", "energy_valley"):
            assert incremental[c].to_numpy() == pytest.approx(rebuilt[c].to_numpy(), abs=1e-9), (t.name, c)
        for c in ("estimated", "gap"):
            assert list(incremental[c]) == list(rebuilt[c]), (t.name, c)
    days = kept["energy_day"]
    assert days["gap"].sum() >= 2 and days["estimated"].any()


def test_a_range_rebuild_leaves_other_days_alone_and_gives_the_same_figures(site):
    engine, ids = site
    _append(engine, _random_readings(ids, np.random.default_rng(5)))
    rollups = _rollups(engine)
    rollups.upkeep()
    before = _rows(engine, energy_hour)
    result = rollups.rebuild(dt.date(2026, 11, 20), dt.date(2026, 11, 20))
    assert result["from"] == result["to"] == "2026-11-20"
    after = _rows(engine, energy_hour)
    assert len(after) == len(before)
    assert after["energy_kwh"].to_numpy() == pytest.approx(before["energy_kwh"].to_numpy(), abs=1e-9)


def test_quarter_hours_are_kept_fine_days_while_hours_and_days_stay(site):
    engine, (m1, _m2, _m3) = site
    clock = [DAY0 + dt.timedelta(days=2)]
    rollups = EnergyRollups(engine, SHANGHAI, fine_days=1, clock=lambda: clock[0])
    _append(engine, _steady(m1, DAY0, 48 * 2, 0.5))
    rollups.upkeep()
    assert _rows(engine, energy_15min)["ts"].min() >= DAY0 + dt.timedelta(days=1)      # the first day's were not kept
    clock[0] += dt.timedelta(hours=12)                                               # the next day, a new cycle
    _append(engine, _steady(m1, DAY0 + dt.timedelta(days=2), 1, 0.5, first=148.0))
    rollups.upkeep()
    quarters = _rows(engine, energy_15min)
    assert quarters["ts"].min() == DAY0 + dt.timedelta(hours=36)                       # pruned by the upkeep
    assert quarters["ts"].max() == DAY0 + dt.timedelta(hours=47, minutes=45)
    assert _rows(engine, energy_hour)["energy_kwh"].sum() == pytest.approx(96 * 0.5)
    assert _rows(engine, energy_day, ("meter_id", "day"))["energy_kwh"].sum() == pytest.approx(96 * 0.5)


def test_time_of_use_split_sums_to_the_total_from_registers_or_from_the_tariff_segments(site):
    engine, (m1, m2, _m3) = site
    ctx = make_ctx(engine, Clock(DAY0 - dt.timedelta(days=1)))      # assigned before the readings
    # valley 00:00-08:00, peak 08:00-19:00, sharp 19:00-21:00, peak 21:00-23:00, valley 23:00-24:00 (local)
    tid = tariffs.create_tariff(ctx, "TOU", "tou", "admin",
                                prices={"sharp": "1.00", "peak": "0.80", "flat": "0.60", "valley": "0.35"},
                                segments=[(0, 3), (480, 1), (1140, 0), (1260, 1), (1380, 3)],
                                valid_from=DAY0 - dt.timedelta(days=2))
    tariffs.assign_tariff(ctx, ["100000000002"], tid, "admin", push=False)
    own = _steady(m1, DAY0, 48, 1.0)
    for i, c in enumerate(("energy_sharp", "energy_peak", "energy_flat", "energy_valley")):
        own[c] = 25.0 + np.arange(48) * (0.1, 0.2, 0.3, 0.4)[i]           # the meter's own split
    _append(engine, own, _steady(m2, DAY0, 48, 1.0))
    _rollups(engine).upkeep()
    days = _rows(engine, energy_day, ("meter_id", "day")).set_index("meter_id")
    for mid in (m1, m2):
        d = days.loc[mid]
        assert d["energy_sharp"] + d["energy_peak"] + d["energy_flat"] + d["energy_valley"] == pytest.approx(
            d["energy_kwh"])
    assert days.loc[m1, ["energy_sharp", "energy_peak", "energy_flat", "energy_valley"]].to_list() == pytest.approx(
        [4.7, 9.4, 14.1, 18.8])                                            # 47 intervals of the registers' own split
    # 2 kWh an hour: 16 + 2 valley hours (one of them the 23:00 hour ends with the day's last reading), 13 peak, 2 sharp
    assert days.loc[m2, ["energy_sharp", "energy_peak", "energy_flat", "energy_valley"]].to_list() == pytest.approx(
        [4.0, 26.0, 0.0, 17.0])


@pytest.mark.parametrize("first_day, hours", [(dt.date(2026, 10, 25), 25), (dt.date(2026, 3, 29), 23)])
def test_days_follow_the_site_zone_across_daylight_saving(any_engine, first_day, hours):
    load_site(any_engine, _site(1), NOW)
    with any_engine.connect() as conn:
        mid = conn.execute(sa.select(meter.c.id)).scalar_one()
    # from Berlin's midnight a day before the changeover (UTC+2 in October, UTC+1 in March) to the midnight after
    # the day after it, 1 kWh an hour
    offset = 2 if first_day.month == 10 else 1
    start = dt.datetime.combine(first_day - dt.timedelta(days=1), dt.time()) - dt.timedelta(hours=offset)
    _append(any_engine, _steady(mid, start, (24 + hours + 24) * 4 + 1, 0.25, minutes=15))
    _rollups(any_engine, BERLIN).upkeep()
    days = _rows(any_engine, energy_day, ("meter_id", "day")).set_index("day")
    assert days.loc[pd.Timestamp(first_day), "energy_kwh"] == pytest.approx(hours)
    assert days.loc[pd.Timestamp(first_day - dt.timedelta(days=1)), "energy_kwh"] == pytest.approx(24)
    assert days.loc[pd.Timestamp(first_day + dt.timedelta(days=1)), "energy_kwh"] == pytest.approx(24)
    hourly = _rows(any_engine, energy_hour)
    local = hourly["ts"].dt.tz_localize("UTC").dt.tz_convert(BERLIN)
    assert (local.dt.date == first_day).sum() == hours
    assert (local.dt.minute == 0).all()


def _wait_for(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_the_rollup_job_catches_up_at_start_runs_after_each_poll_cycle_and_reports_its_health(site):
    engine, (m1, _m2, _m3) = site
    _append(engine, _steady(m1, DAY0, 10, 0.5))
    jobs, events = Jobs(), EventBus()
    attach_rollups(engine, SHANGHAI, AnalyticsConfig(rollup_interval_s=3600), jobs, events)

    def job():
        return next(s for s in jobs.status() if s.name == ROLLUP_JOB)

    def energy():
        return _rows(engine, energy_day, ("meter_id", "day"))["energy_kwh"].sum()

    jobs.start()
    try:
        assert _wait_for(lambda: job().runs == 1 and not job().running)
        assert energy() == pytest.approx(4.5)
        _append(engine, _steady(m1, DAY0 + dt.timedelta(hours=5), 4, 0.5, first=105.0))
        events.publish(CYCLE_CHANGED, CycleChanges(at=NOW))                # an hour before its next run
        assert _wait_for(lambda: job().runs == 2 and not job().running)
    finally:
        jobs.stop()
    assert job().last_ok and job().last_error is None
    assert energy() == pytest.approx(6.5)


def test_rollup_command_rebuilds_and_is_refused_while_the_server_holds_the_file(tmp_path, monkeypatch, capsys):
    url = f"duckdb:///{tmp_path / 'site.duckdb'}"
    engine = open_engine(url)
    migrate(engine)
    load_site(engine, _site(1), NOW)
    with engine.connect() as conn:
        mid = conn.execute(sa.select(meter.c.id)).scalar_one()
    _append(engine, _steady(mid, DAY0, 48, 0.5))
    env = {**os.environ, "WATTLINE_DATABASE_URL": url, "WATTLINE_CONFIG": ""}
    held = subprocess.run([sys.executable, "app.py", "rollup", "--rebuild"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert held.returncode == 2 and "one writing process per file" in held.stderr   # this process holds it
    dispose(engine)
    monkeypatch.setenv("WATTLINE_DATABASE_URL", url)
    monkeypatch.setenv("WATTLINE_CONFIG", "")
    assert main(["rollup", "--rebuild"]) == 0
    assert '"readings": 48' in capsys.readouterr().out
    assert main(["rollup", "--rebuild", "--from", "2026-11-21", "--to", "2026-11-20"]) == 2
    assert "after" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rollup", "--rebuild", "--from", "２０２６-11-01"])           # full-width digits
    assert "is not a day" in capsys.readouterr().err
    engine = open_engine(url)
    try:
        assert _rows(engine, energy_day, ("meter_id", "day"))["energy_kwh"].sum() == pytest.approx(23.5)
    finally:
        dispose(engine)


@pytest.mark.parametrize("line, words", [
    ("z_limit = \"3,5\"", "analytics.z_limit = '3,5' must be a number from 0.5 to 100"),
    ("fine_days = 1.5", "analytics.fine_days = 1.5 must be a whole number from 1 to 3660"),
    ("ceiling_kw = 1e300", "must be a number from 0.1 to 1e+06"),
    ("spike_margin = true", "must be a number from 1 to 100"),
    ("heater = 1", "unknown key analytics.heater"),
])
def test_analytics_settings_out_of_range_are_refused_with_their_name(tmp_path, line, words):
    from core.config import ConfigError, load_config
    path = tmp_path / "site.toml"
    path.write_text(f"[analytics]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert words in str(err.value)


def test_analytics_settings_reach_the_rules(tmp_path):
    from core.config import load_config
    path = tmp_path / "site.toml"
    path.write_text("[analytics]\nceiling_kw = 250\nestimate_after_minutes = 30\nfine_days = 7\n", encoding="utf-8")
    cfg = load_config(path, env={})
    assert DeriveRules.from_config(cfg.analytics) == DeriveRules(ceiling_kw=250.0, estimate_after_s=1800.0)
    assert cfg.analytics.fine_days == 7 and cfg.analytics.z_limit == 3.5
