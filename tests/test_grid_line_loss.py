"""Line loss per transformer area on small hand-made registers with known answers (a real DuckDB file): the CT
ratio applied, the classes (qualified, high, negative, not computable naming the missing meter), an interpolated
midnight, months, the area model from a topology import, and the meters whose use moved least with the loss."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from collectors.topology_import import TopologyImportError, import_topology
from grid.line_loss import LineLossSettings, least_correlated_meters, line_loss
from storage import grid as store
from storage.schema import area_meter, meter
from storage.timeseries import append_readings

TZ = dt.timezone(dt.timedelta(hours=8))
PROFILES = {"acrel-ddsy1352", "eastron-sdm630", "wattline-ttu"}
MASTER, TERMINAL, C1, C2 = "202611300001", "202611300002", "202611300011", "202611300012"


def _row(address: str, unit: int, profile: str, area: str = "Area T", **extra) -> dict:
    row = {"building": "Block T", "area": area, "gateway": "GW-T", "host": "127.0.0.1", "framing": "socket",
           "bus": "1", "port": "15990", "unit": str(unit), "profile": profile, "meter_address": address}
    return {**row, **{k: str(v) for k, v in extra.items()}}


AREA_ROWS = [_row(MASTER, 1, "eastron-sdm630", area_role="master", ct_ratio=2, rating_kva=400, nominal_voltage=220,
                  connection_group="Dyn11"),
             _row(TERMINAL, 2, "wattline-ttu", area_role="terminal"),
             _row(C1, 3, "acrel-ddsy1352"), _row(C2, 4, "acrel-ddsy1352")]


@pytest.fixture
def area(any_engine):
    """Area T on each engine of the matrix: its master meter (CT ratio 2), terminal and two customer meters."""
    import_topology(any_engine, AREA_ROWS, PROFILES, dt.datetime(2026, 10, 1))
    with any_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
    return any_engine, ids


def midnight(day: int, minutes: float = 0) -> dt.datetime:
    """Local midnight starting 2026-11-<day> (+08:00) as naive UTC, plus minutes."""
    return dt.datetime(2026, 11, day) - dt.timedelta(hours=8) + dt.timedelta(minutes=minutes)


def write(engine, ids, rows: list[tuple[str, dt.datetime, float]]) -> None:
    frame = pd.DataFrame({"ts": [ts for _, ts, _ in rows], "meter_id": [ids[a] for a, _, _ in rows],
                          "energy_total": [v for _, _, v in rows]})
    with engine.begin() as conn:
        append_readings(conn, frame)


# Registers at the midnights of 2026-11-01 .. 11-04 (the master meter's counts x CT ratio 2 is the supply):
#   11-01: supply (160-100)x2 = 120, sales 50+50 = 100, loss 20 -> 1/6 high
#   11-02: supply (215-160)x2 = 110, sales 100, loss 10 -> 0.0909 qualified
#   11-03: supply (260-215)x2 = 90,  sales 100, loss -10 -> negative
REGISTERS = {MASTER: (100, 160, 215, 260), C1: (10, 60, 110, 160), C2: (20, 70, 120, 170)}


def _registers(skip: set[tuple[str, int]] = frozenset()) -> list[tuple[str, dt.datetime, float]]:
    return [(a, midnight(1 + i), v) for a, values in REGISTERS.items() for i, v in enumerate(values)
            if (a, 1 + i) not in skip]


def test_the_area_model_comes_from_the_topology_import(area):
    engine, ids = area
    with engine.connect() as conn:
        row = store.areas(conn).iloc[0]
    assert (row["name"], row["master_address"], row["terminal_address"], row["ct_ratio"], row["rating_kva"],
            row["nominal_voltage"], row["connection_group"]) == ("Area T", MASTER, TERMINAL, 2.0, 400.0, 220.0,
                                                                 "Dyn11")


@pytest.mark.parametrize("extra, code", [
    ({"ct_ratio": 5}, "ct_ratio_not_master"),
    ({"area_role": "master", "ct_ratio": "４０"}, "non_ascii_digits"),
    ({"area_role": "master", "ct_ratio": "50,5"}, "not_number"),
    ({"area_role": "master", "ct_ratio": "0"}, "out_of_range"),
    ({"area_role": "boss"}, "bad_area_role"),
    ({"area_role": "terminal"}, "area_role_twice"),
    ({"nominal_voltage": "230"}, "area_differs"),
    ({"connection_group": "=1+1" + "x" * 30}, "too_long"),
])
def test_bad_area_columns_are_refused_and_nothing_is_written(duck_engine, extra, code):
    rows = [*AREA_ROWS[:3], _row(C2, 4, "acrel-ddsy1352", **{"nominal_voltage": 220, **extra})]
    with pytest.raises(TopologyImportError) as err:
        import_topology(duck_engine, rows, PROFILES, dt.datetime(2026, 10, 1))
    assert [i.code for i in err.value.issues] == [code]
    with duck_engine.connect() as conn:
        assert store.areas(conn).empty


def test_topology_files_without_the_area_columns_still_import(duck_engine):
    rows = [{k: v for k, v in r.items() if k not in ("area_role", "ct_ratio", "rating_kva", "nominal_voltage",
                                                    "connection_group")} for r in AREA_ROWS]
    import_topology(duck_engine, rows, PROFILES, dt.datetime(2026, 10, 1))
    with duck_engine.connect() as conn:
        row = store.areas(conn).iloc[0]
    assert row["name"] == "Area T" and pd.isna(row["master_meter_id"]) and pd.isna(row["ct_ratio"])


def test_line_loss_applies_the_ct_ratio_and_classifies_each_day(area):
    engine, ids = area
    write(engine, ids, _registers())
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3)).to_dict("records")
    assert [(r["period"], r["supply_kwh"], r["sales_kwh"], r["loss_kwh"], r["loss_rate"], r["class"]) for r in rows] \
        == [("2026-11-01", 120.0, 100.0, 20.0, 0.1667, "high"),
            ("2026-11-02", 110.0, 100.0, 10.0, 0.0909, "qualified"),
            ("2026-11-03", 90.0, 100.0, -10.0, -0.1111, "negative")]
    assert not any(r["interpolated"] for r in rows) and all(r["missing_meters"] == "" for r in rows)


def test_the_high_limit_is_a_setting(area):
    engine, ids = area
    write(engine, ids, _registers())
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 1), settings=LineLossSettings(limit=0.2))
    assert list(rows["class"]) == ["qualified"]


def test_a_missing_customer_register_makes_both_days_around_it_not_computable_and_names_the_meter(area):
    engine, ids = area
    write(engine, ids, _registers(skip={(C2, 2)}))
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    assert list(rows["class"]) == ["not_computable", "not_computable", "negative"]
    assert list(rows["missing_meters"]) == [C2, C2, ""]
    assert rows["loss_rate"].isna().tolist() == [True, True, False]


def test_a_master_meter_without_readings_is_named_first(area):
    engine, ids = area
    write(engine, ids, [r for r in _registers() if r[0] != MASTER])
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    assert list(rows["class"]) == ["not_computable"] and list(rows["missing_meters"]) == [MASTER]


def test_a_midnight_without_a_reading_is_interpolated_and_marked(area):
    engine, ids = area
    # C1 read at 23:50 (59) and 00:20 (62) around the midnight of 11-02: 59 + 3 x 10/30 = 60 at midnight
    write(engine, ids, [*_registers(skip={(C1, 2)}), (C1, midnight(2, -10), 59.0), (C1, midnight(2, 20), 62.0)])
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    assert list(rows["sales_kwh"]) == [100.0, 100.0, 100.0]
    assert list(rows["interpolated"]) == [True, True, False]
    assert list(rows["class"]) == ["high", "qualified", "negative"]


def test_a_reading_within_the_tolerance_after_midnight_is_the_midnight_register(area):
    engine, ids = area
    write(engine, ids, [*_registers(skip={(C1, 2)}), (C1, midnight(2, 10), 60.0)])
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    assert list(rows["sales_kwh"]) == [100.0, 100.0] and not rows["interpolated"].any()


def test_readings_too_far_from_midnight_are_not_interpolated(area):
    engine, ids = area
    write(engine, ids, [*_registers(skip={(C1, 2)}), (C1, midnight(2, -600), 55.0), (C1, midnight(2, 600), 65.0)])
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 2),
                     settings=LineLossSettings(span_s=6 * 3600))
    assert list(rows["class"]) == ["not_computable", "not_computable"] and list(rows["missing_meters"]) == [C1, C1]


def test_a_month_is_computed_from_its_first_and_last_midnight(area):
    engine, ids = area
    write(engine, ids, _registers(skip={(C2, 2)}))      # a day missing inside the range does not matter
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3), by="month")
    assert rows.to_dict("records") == [{"period": "2026-11", "area": "Area T", "supply_kwh": 320.0,
                                        "sales_kwh": 300.0, "loss_kwh": 20.0, "loss_rate": 0.0625,
                                        "class": "qualified", "interpolated": False, "missing_meters": ""}]


def test_the_meter_whose_use_does_not_follow_the_loss_is_named_first(area):
    engine, ids = area
    # C1 uses 10, 20, 30, 40, 50 a day, C2 a steady 30; the master meter counts both plus a loss that follows C1
    days = range(1, 7)
    c1 = [0.0]
    for d in range(5):
        c1.append(c1[-1] + 10 * (d + 1))
    c2 = [30.0 * i for i in range(6)]
    master = [0.0]
    for d in range(5):
        master.append(master[-1] + ((c1[d + 1] - c1[d]) * 1.2 + 30) / 2)
    write(engine, ids, [(a, midnight(day), v) for a, series in ((C1, c1), (C2, c2), (MASTER, master))
                        for day, v in zip(days, series)])
    hint = least_correlated_meters(engine, TZ, int(store_area_id(engine)), dt.date(2026, 11, 1),
                                   dt.date(2026, 11, 5))
    assert list(hint["meter"]) == [C2, C1]
    assert pd.isna(hint["correlation"][0]) and hint["correlation"][1] == 1.0
    from reports.registry import ReportEnv
    from reports.render import json_rows, run_report
    from tests.billing_support import Clock, make_ctx
    env = ReportEnv(make_ctx(engine, Clock(dt.datetime(2026, 11, 10))))
    result = run_report(env, "line-loss-meters", {"from": "2026-11-01", "to": "2026-11-05"}, "zh")
    assert [(r["area"], r["meter"], r["correlation"], r["days"], r["kwh"]) for r in json_rows(result, TZ, api=True)] \
        == [("Area T", C2, None, 5, 150.0), ("Area T", C1, 1.0, 5, 150.0)]


def store_area_id(engine) -> int:
    with engine.connect() as conn:
        return int(store.areas(conn)["id"].iloc[0])


def test_the_instrument_difference_of_a_master_meter_applies_its_ct_ratio(area):
    from energy.history import instrument_difference
    engine, ids = area
    write(engine, ids, _registers())
    diff = instrument_difference(engine, TZ, MASTER, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    # the readings inside the three days: the registers at the midnights of 11-01 .. 11-03 (100 -> 215)
    assert (diff.ct_ratio, diff.ct_ratio_known, diff.counted["energy_total"], diff.energy_kwh) == (2.0, True, 115.0,
                                                                                                  230.0)
    assert not instrument_difference(engine, TZ, C1, dt.date(2026, 11, 1), dt.date(2026, 11, 3)).ct_ratio_known


def test_frozen_midnight_registers_give_the_same_line_loss_as_the_readings(area):
    from grid.line_loss import freeze_days
    engine, ids = area
    write(engine, ids, [*_registers(skip={(C2, 2), (C1, 3)}), (C1, midnight(3, -10), 109.0),
                        (C1, midnight(3, 20), 112.0)])
    live = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    assert freeze_days(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 4), dt.datetime(2026, 11, 5)) == 11
    with engine.begin() as conn:       # the readings gone: line loss reads the frozen registers
        conn.execute(sa.text("DELETE FROM readings"))
    frozen = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    pd.testing.assert_frame_equal(frozen, live)
    assert list(frozen["missing_meters"]) == [C2, C2, ""] and list(frozen["interpolated"]) == [False, True, True]


def test_a_range_partly_frozen_reads_the_rest_from_the_readings(area):
    from grid.line_loss import freeze_days
    engine, ids = area
    write(engine, ids, _registers())
    freeze_days(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.datetime(2026, 11, 5))
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    assert list(rows["class"]) == ["high", "qualified", "negative"]


def test_the_line_loss_job_freezes_only_midnights_with_their_readings_in(area):
    from collectors.schedule import Jobs
    from grid.line_loss import JOB, attach_line_loss
    from storage.grid import frozen_days
    engine, ids = area
    write(engine, ids, _registers())
    jobs = Jobs()
    # 2026-11-04 09:00 locally: the midnights of 11-01 .. 11-03 are 12 h past, 11-04's only 9 h
    attach_line_loss(engine, TZ, lambda: dt.datetime(2026, 11, 4, 1, 0), jobs)
    assert jobs.run(JOB)
    with engine.connect() as conn:
        assert frozen_days(conn, dt.date(2026, 10, 1), dt.date(2026, 11, 30)) == {
            dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)}


def test_a_meter_moved_into_the_area_after_the_freeze_is_counted_from_its_frozen_registers(area):
    from grid.line_loss import freeze_days
    engine, ids = area
    with engine.begin() as conn:      # C2 belonged to no area when the registers were frozen
        c2 = conn.execute(sa.select(meter.c.id).where(meter.c.address == C2)).scalar_one()
        c2_area = conn.execute(sa.select(area_meter.c.area_id).where(area_meter.c.meter_id == c2)).scalar_one()
        conn.execute(area_meter.delete().where(area_meter.c.meter_id == c2))
    write(engine, ids, _registers())
    freeze_days(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.datetime(2026, 11, 5))
    with engine.begin() as conn:
        conn.execute(area_meter.insert().values(meter_id=c2, area_id=c2_area))
    rows = line_loss(engine, TZ, dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    assert list(rows["sales_kwh"]) == [100.0] and list(rows["class"]) == ["high"]
