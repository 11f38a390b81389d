"""Power quality with known answers: the voltage qualification rate of a hand-made series (time above and below
the band, silences not monitored), voltage unbalance from magnitudes (balanced 0 %, a case built from symmetrical
components), current unbalance, statistics; and on a real DuckDB file an area's daily rates and statistics, an
alarm opened through the alarm service when a day's statistic breaks its limit and closed when it is back."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from collectors.topology_import import import_topology
from grid import power_quality as pq
from storage import alarms
from storage.schema import alarm_event, meter
from storage.timeseries import append_device_history, append_readings

TZ = dt.timezone(dt.timedelta(hours=8))
PROFILES = {"acrel-ddsy1352", "eastron-sdm630", "wattline-ttu"}
MASTER, TERMINAL, C1 = "202611300001", "202611300002", "202611300011"


def test_the_qualification_rate_counts_the_time_above_and_below_the_band():
    ts = pd.Series(pd.date_range("2026-11-01 00:00", periods=6, freq="10min"))
    volts = pd.DataFrame({"voltage_a": [220.0, 240.0, 220.0, 195.0, 220.0, 220.0]})
    secs = pq.sample_seconds(ts, pd.Timestamp("2026-11-01 01:00"), max_gap_s=3600)
    q = pq.qualification(volts, secs, pq.voltage_band(220.0, 1))       # 198 .. 235.4 V
    assert (q.monitored_s, q.above_s, q.below_s) == (3600, 600, 600)
    assert q.rate == pytest.approx(1 - 1200 / 3600)


def test_a_silence_longer_than_the_gap_limit_is_not_monitored_time():
    ts = pd.Series(pd.to_datetime(["2026-11-01 00:00", "2026-11-01 00:10", "2026-11-01 00:50"]))
    secs = pq.sample_seconds(ts, pd.Timestamp("2026-11-01 01:00"), max_gap_s=900)
    assert list(secs) == [600, 900, 600]


def test_a_three_phase_sample_is_out_of_band_when_any_phase_is():
    volts = pd.DataFrame({"voltage_a": [220.0, 220.0, 220.0], "voltage_b": [220.0, 236.0, 220.0],
                          "voltage_c": [220.0, 220.0, 204.0]})
    q = pq.qualification(volts, np.array([60.0, 60.0, 60.0]), pq.voltage_band(220.0, 3))   # 204.6 .. 235.4 V
    assert (q.above_s, q.below_s, q.monitored_s) == (60, 60, 180)


def test_nothing_monitored_has_no_rate():
    assert pq.Qualification(0, 0, 0).rate is None


def test_balanced_magnitudes_have_no_voltage_unbalance():
    assert pq.voltage_unbalance([230.0], [230.0], [230.0])[0] == pytest.approx(0.0, abs=1e-9)


def test_voltage_unbalance_from_magnitudes_matches_the_symmetrical_components():
    # positive sequence 380 V, negative sequence 38 V (10 %), in phase: Va = V1 + V2 = 418 V,
    # Vb = a^2 V1 + a V2 and Vc = a V1 + a^2 V2 both 380 x sqrt(0.91) V (their sum closes the triangle)
    side = 380.0 * math.sqrt(0.91)
    assert pq.voltage_unbalance([418.0], [side], [side])[0] == pytest.approx(0.10, abs=1e-9)


def test_a_missing_phase_has_no_unbalance():
    assert np.isnan(pq.voltage_unbalance([230.0], [np.nan], [230.0])[0])
    assert np.isnan(pq.current_unbalance([0.0], [0.0], [0.0])[0])


def test_current_unbalance_is_the_spread_over_the_largest_phase():
    assert pq.current_unbalance([100.0, 50.0], [90.0, 50.0], [85.0, 50.0]).tolist() == pytest.approx([0.15, 0.0])


def test_statistics_give_the_mean_maximum_95th_percentile_and_time_over_the_limit():
    values = np.arange(1, 101) / 100.0       # 0.01 .. 1.00
    st = pq.statistics(values, np.full(100, 60.0), limit=0.9)
    assert (st["samples"], st["max"], st["over_limit_s"]) == (100, 1.0, 600.0)
    assert st["mean"] == pytest.approx(0.505) and st["p95"] == pytest.approx(0.9505)


# ---------------------------------------------------------------------------------------------
# an area on a real database
def _row(address: str, unit: int, profile: str, **extra) -> dict:
    row = {"building": "Block T", "area": "Area T", "gateway": "GW-T", "host": "127.0.0.1", "framing": "socket",
           "bus": "1", "port": "15991", "unit": str(unit), "profile": profile, "meter_address": address}
    return {**row, **{k: str(v) for k, v in extra.items()}}


@pytest.fixture
def area(any_engine):
    """Area T on each engine of the matrix: master meter, transformer terminal and one room meter, 220 V."""
    rows = [_row(MASTER, 1, "eastron-sdm630", area_role="master", ct_ratio=1, nominal_voltage=220),
            _row(TERMINAL, 2, "wattline-ttu", area_role="terminal"), _row(C1, 3, "acrel-ddsy1352")]
    import_topology(any_engine, rows, PROFILES, dt.datetime(2026, 10, 1))
    with any_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        area_id = conn.execute(sa.text("SELECT id FROM transformer_area")).scalar()
    return any_engine, ids, area_id


def _day(engine, ids, day: int, unbalanced: bool) -> None:
    """Every 15 minutes of local 2026-11-<day>: the terminal at 220 V (one phase at 240 V when unbalanced, also
    out of band), the master meter balanced, the room meter at 220 V; THD 3 % everywhere."""
    ts = pd.date_range(dt.datetime(2026, 11, day) - dt.timedelta(hours=8), periods=96, freq="15min")
    frames = []
    for address in (TERMINAL, MASTER):
        b = 240.0 if unbalanced and address == TERMINAL else 220.0
        frames.append(pd.DataFrame({"ts": ts, "meter_id": ids[address], "voltage_a": 220.0, "voltage_b": b,
                                    "voltage_c": 220.0, "current_a": 100.0, "current_b": 95.0, "current_c": 92.0,
                                    "pf_total": 0.95, "thd_u_a": 3.0, "thd_u_b": 3.0, "thd_u_c": 3.0,
                                    "thd_i_a": 8.0, "thd_i_b": 8.0, "thd_i_c": 8.0}))
    frames.append(pd.DataFrame({"ts": ts, "meter_id": ids[C1], "voltage_a": 220.0, "balance_fen": 1000}))
    frame = pd.concat(frames, ignore_index=True)
    with engine.begin() as conn:
        append_readings(conn, frame)
        append_device_history(conn, frame[frame["meter_id"] != ids[C1]])


def test_an_area_has_a_daily_rate_per_point_and_for_the_area(area):
    engine, ids, area_id = area
    _day(engine, ids, 1, unbalanced=True)
    q = pq.area_quality(engine, TZ, area_id, dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    rates = q.rates.set_index("point")
    assert rates.loc[TERMINAL, "rate"] == 0.0 and rates.loc[TERMINAL, "above_h"] == 24.0
    assert rates.loc[MASTER, "rate"] == 1.0 and rates.loc[C1, "rate"] == 1.0 and rates.loc[C1, "phases"] == 1
    assert rates.loc["*", "rate"] == pytest.approx(2 / 3) and rates.loc["*", "monitored_h"] == 72.0
    stats = q.stats.set_index(["point", "quantity"])
    # 220 / 240 / 220 V: L = (2 x 220^4 + 240^4) / (2 x 220^2 + 240^2)^2 = 0.335699, sqrt(3 - 6L) = 0.992877,
    # sqrt((1 - 0.992877) / (1 + 0.992877)) = 0.0598
    assert stats.loc[(TERMINAL, "voltage_unbalance"), "p95"] == pytest.approx(0.0598, abs=1e-4)
    assert stats.loc[(TERMINAL, "voltage_unbalance"), "method"] == "magnitudes"
    assert stats.loc[(MASTER, "current_unbalance"), "max"] == pytest.approx(0.08)
    assert stats.loc[(MASTER, "thd_u"), "p95"] == pytest.approx(0.03)


def test_a_day_over_the_unbalance_limit_opens_an_alarm_and_a_good_day_closes_it(area):
    engine, ids, area_id = area
    _day(engine, ids, 1, unbalanced=True)
    _day(engine, ids, 2, unbalanced=False)
    assert pq.evaluate_day(engine, TZ, dt.date(2026, 11, 1), dt.datetime(2026, 11, 2)) == {"opened": 1,
                                                                                           "closed": 0}
    with engine.connect() as conn:
        events = alarms.open_alarms(conn, kind=alarms.PQ_VOLTAGE_UNBALANCE)
    assert len(events) == 1 and events[0]["subject_id"] == ids[TERMINAL]
    assert alarms.message_text(events[0], "en") == \
        f"2026-11-01, point {TERMINAL}: the day's max is 5.98 %, over the limit 4 %."
    result = pq.evaluate_day(engine, TZ, dt.date(2026, 11, 2), dt.datetime(2026, 11, 3))
    assert result["opened"] == 0 and result["closed"] == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alarm_event)
                            .where(alarm_event.c.closed_at.is_(None))).scalar() == 0


def test_the_scheduled_job_judges_yesterday_of_the_site(area):
    from collectors.schedule import Jobs
    engine, ids, area_id = area
    _day(engine, ids, 1, unbalanced=True)
    jobs = Jobs()
    pq.attach_power_quality(engine, TZ, lambda: dt.datetime(2026, 11, 2, 1, 0), jobs)   # 09:00 on 11-02 locally
    assert jobs.run(pq.JOB)
    with engine.connect() as conn:
        events = alarms.open_alarms(conn, kind=alarms.PQ_VOLTAGE_UNBALANCE)
    assert [e["subject_id"] for e in events] == [ids[TERMINAL]]
    assert events[0]["message_params"]["day"] == "2026-11-01"


def test_the_power_quality_reports_answer_per_point_and_day_in_both_languages(area):
    from reports.registry import ReportEnv
    from reports.render import json_rows, run_report
    from tests.billing_support import Clock, make_ctx
    engine, ids, area_id = area
    _day(engine, ids, 1, unbalanced=True)
    env = ReportEnv(make_ctx(engine, Clock(dt.datetime(2026, 11, 3))), poll_interval_s=900)
    rates = run_report(env, "power-quality", {"from": "2026-11-01", "to": "2026-11-01"}, "zh")
    rows = {r["point"]: r for r in json_rows(rates, TZ, api=True)}
    assert rows[TERMINAL]["rate"] == 0.0 and rows[TERMINAL]["kind"] == "台区终端（三相）"
    assert rows["*"]["rate"] == pytest.approx(2 / 3) and rows[C1]["phases"] == 1
    stats = run_report(env, "power-quality-stats", {"from": "2026-11-01", "to": "2026-11-01", "by": "month"}, "en")
    got = {(r["point"], r["quantity"]): r for r in json_rows(stats, TZ, api=True)}
    assert got[(TERMINAL, "voltage_unbalance")]["method"] == "magnitudes"
    assert got[(MASTER, "thd_u")]["p95"] == pytest.approx(0.03) and got[(MASTER, "thd_u")]["period"] == "2026-11"
