"""Energy analysis from the rollups: a floor is the sum of its rooms for any range and step, a site the sum of its
buildings, a month the sum of its days; master meters and terminals by kind; the anomalies find a heater and a
stopped register; on both engines."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from energy.analysis import Place, anomalies, energy_report
from energy.history import HistoryError
from energy.rollups import EnergyRollups
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.schema import meter
from storage.timeseries import append_readings
from tests.billing_support import load_site

TZ = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 1, 8, 0)
START = dt.datetime(2026, 10, 31, 16, 0)        # 2026-11-01 00:00 in Shanghai
DAYS = 40
FIRST, LAST = dt.date(2026, 11, 1), dt.date(2026, 12, 10)
HEATER = "B1-203"
STOPPED = "B2-104"


def _site() -> SiteSpec:
    """Two buildings of two floors with six rooms each; building 1 has a master meter and a terminal."""
    gateways = []
    serial = 0
    for b in (1, 2):
        meters = []
        for floor in (1, 2):
            for r in range(1, 7):
                serial += 1
                meters.append(MeterSpec(address=f"2026000{serial:05d}", unit=len(meters) + 1,
                                        profile="acrel-ddsy1352", building=f"Building {b}", floor=floor,
                                        room=f"B{b}-{floor}{r:02d}"))
        if b == 1:
            meters.append(MeterSpec(address="202600090001", unit=30, profile="eastron-sdm630", building="Building 1",
                                    area="Area B1"))
            meters.append(MeterSpec(address="202600090002", unit=31, profile="wattline-ttu", building="Building 1",
                                    area="Area B1"))
        gateways.append(GatewaySpec(f"GW-{b}", buses=[BusSpec(1, 15000 + b, meters=meters)]))
    return SiteSpec("t", gateways)


def _times(n_steps: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Half-hourly times from START, and the rooms' load shape: high from 07:00 to 23:00 local, a quarter else."""
    ts = pd.date_range(START, periods=n_steps, freq="30min")
    local_hour = ts.tz_localize("UTC").tz_convert(TZ).hour.to_numpy()
    shape = np.where((local_hour >= 7) & (local_hour < 23), 1.0, 0.25)
    return ts, shape


@pytest.fixture
def site(any_engine):
    load_site(any_engine, _site(), NOW)
    with any_engine.connect() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
    # each room its own level; the heater room draws 2 kW more day and night; the stopped meter's register freezes
    # for its last 30 hours while its power reads 1.2 kW; the master meter counts building 1's rooms + 4 % loss
    rng = np.random.default_rng(3)
    ts, shape = _times(DAYS * 48)
    frames, rooms_kw = [], np.zeros(len(ts))
    room_numbers = sorted(a for a in ids if not a.startswith("2026000900"))
    for k, address in enumerate(room_numbers):
        room = f"B{1 + k // 12}-{1 + (k % 12) // 6}{1 + k % 6:02d}"
        kw = shape * rng.uniform(0.3, 0.5) + rng.uniform(0, 0.05, len(ts))
        if room == HEATER:
            kw = kw + 2.0
        energy = 200.0 + np.r_[0.0, np.cumsum(kw[:-1] * 0.5)]
        if room == STOPPED:
            energy[-60:] = energy[-60]
        if room.startswith("B1"):
            rooms_kw += kw
        frames.append(pd.DataFrame({"ts": ts, "meter_id": ids[address], "energy_total": energy.round(2),
                                    "power_total": np.maximum(kw, 1.2) if room == STOPPED else kw}))
    master = 5000.0 + np.r_[0.0, np.cumsum(rooms_kw[:-1] * 0.5 * 1.04)]
    for address, total in (("202600090001", master), ("202600090002", master * 1.01)):
        frames.append(pd.DataFrame({"ts": ts, "meter_id": ids[address], "energy_total": total,
                                    "power_total": rooms_kw}))
    with any_engine.begin() as conn:
        append_readings(conn, pd.concat(frames, ignore_index=True))
    EnergyRollups(any_engine, TZ, clock=lambda: NOW).upkeep()
    return any_engine


def _sum(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.groupby(keys, dropna=False)["energy_kwh"].sum()


def test_a_floor_is_the_sum_of_its_rooms_for_any_range_and_step(site):
    rng = np.random.default_rng(7)
    for _ in range(6):
        first = FIRST + dt.timedelta(days=int(rng.integers(0, DAYS - 1)))
        last = first + dt.timedelta(days=int(rng.integers(0, 12)))
        by = str(rng.choice(["hour", "day", "month", "15min"]))
        floors = energy_report(site, TZ, first, last, by=by, group="floor")
        rooms = energy_report(site, TZ, first, last, by=by, group="room")
        assert len(floors) > 0
        summed = _sum(rooms, ["period", "building", "floor"])
        mine = floors.set_index(["period", "building", "floor"])["energy_kwh"]
        assert mine.to_numpy() == pytest.approx(summed.loc[mine.index].to_numpy(), rel=1e-9), (first, last, by)
        assert len(summed) == len(mine)


def test_the_site_is_the_sum_of_its_buildings_and_a_month_the_sum_of_its_days(site):
    days = energy_report(site, TZ, FIRST, dt.date(2026, 11, 30), by="day", group="building")
    month = energy_report(site, TZ, FIRST, dt.date(2026, 11, 30), by="month", group="site")
    whole = energy_report(site, TZ, FIRST, dt.date(2026, 11, 30), by="day", group="site")
    assert list(month["period"]) == [pd.Timestamp("2026-11-01")]
    assert month["energy_kwh"].iloc[0] == pytest.approx(days["energy_kwh"].sum())
    assert whole.set_index("period")["energy_kwh"].to_numpy() == pytest.approx(
        _sum(days, ["period"]).to_numpy())
    assert len(whole) == 30 and whole["period"].iloc[0] == pd.Timestamp("2026-11-01")
    assert (whole[["energy_sharp", "energy_peak", "energy_flat", "energy_valley"]].sum(axis=1).to_numpy()
            == pytest.approx(whole["energy_kwh"].to_numpy()))
    assert not whole["gap"].any() and not whole["estimated"].any()


def test_hours_are_the_sites_local_hours(site):
    hours = energy_report(site, TZ, FIRST, FIRST, by="hour", group="site")
    assert list(hours["period"]) == list(pd.date_range("2026-11-01", periods=24, freq="h"))
    # the rooms' shape: low before 07:00, high from 07:00 (local)
    assert hours["energy_kwh"].iloc[7] > 2 * hours["energy_kwh"].iloc[3]


def test_places_pick_buildings_floors_rooms_and_meters(site):
    args = (site, TZ, FIRST, dt.date(2026, 11, 3))
    floor = energy_report(*args, group="room", place=Place(building="Building 2", floor=1))
    assert sorted(floor["room"].unique()) == [f"B2-10{r}" for r in range(1, 7)]
    two = energy_report(*args, group="room", place=Place(rooms=("Building 1/B1-101", "Building 2/B2-201")))
    assert sorted(two["room"].unique()) == ["B1-101", "B2-201"]
    same = energy_report(*args, group="room", place=Place(building="Building 1", rooms=("B1-101",)))
    assert list(same["room"].unique()) == ["B1-101"]
    one = energy_report(*args, group="meter", place=Place(meters=("202600000001",)))
    assert list(one["meter"].unique()) == ["202600000001"]
    assert energy_report(*args, place=Place(building="No such building")).empty


def test_master_meters_and_terminals_are_queried_by_kind(site):
    args = (site, TZ, FIRST, dt.date(2026, 11, 7))
    masters = energy_report(*args, group="meter", kinds=("master",))
    terminals = energy_report(*args, group="meter", kinds=("terminal",))
    rooms = energy_report(*args, group="building", place=Place(building="Building 1"))
    assert list(masters["meter"].unique()) == ["202600090001"]
    assert list(terminals["meter"].unique()) == ["202600090002"]
    assert masters["building"].unique().tolist() == ["Building 1"] and masters["room"].isna().all()
    # the master meter counts the rooms of its building plus 4 % line loss
    assert masters["energy_kwh"].sum() == pytest.approx(rooms["energy_kwh"].sum() * 1.04, rel=1e-3)
    everything = energy_report(*args, kinds=("prepaid", "master", "terminal"))
    assert everything["energy_kwh"].sum() == pytest.approx(
        energy_report(*args)["energy_kwh"].sum() + masters["energy_kwh"].sum() + terminals["energy_kwh"].sum())


def test_anomalies_find_the_heater_room_and_the_stopped_register(site):
    found = anomalies(site, TZ, dt.date(2026, 11, 20), LAST)
    assert found["high_use"]["room"].tolist() == [HEATER]
    row = found["high_use"].iloc[0]
    assert row["building"] == "Building 1" and row["floor"] == 2 and row["z"] > 3.5
    assert row["kwh_per_day"] > row["floor_median"] + 40
    assert found["night_base"]["room"].tolist() == [HEATER]
    assert found["night_base"].iloc[0]["night_kw"] > 2.0
    stopped = found["stopped_register"]
    assert stopped["room"].tolist() == [STOPPED]
    assert stopped.iloc[0]["power_kw"] >= 1.2 and stopped.iloc[0]["expected_kwh"] > 10


def test_anomalies_of_one_room_compare_it_with_its_whole_floor(site):
    found = anomalies(site, TZ, dt.date(2026, 11, 20), LAST,
                      place=Place(building="Building 1", rooms=(HEATER,)))
    assert found["high_use"]["room"].tolist() == [HEATER]
    quiet = anomalies(site, TZ, dt.date(2026, 11, 20), LAST, place=Place(building="Building 2"))
    assert quiet["high_use"].empty and quiet["night_base"].empty
    assert quiet["stopped_register"]["room"].tolist() == [STOPPED]
    strict = anomalies(site, TZ, dt.date(2026, 11, 20), LAST, z_limit=1000)
    assert strict["high_use"].empty


def test_a_reversed_or_missing_range_and_unknown_steps_are_refused(site):
    with pytest.raises(HistoryError) as err:
        energy_report(site, TZ, dt.date(2026, 11, 5), dt.date(2026, 11, 1))
    assert err.value.code == "range_reversed"
    with pytest.raises(HistoryError):
        anomalies(site, TZ, None, dt.date(2026, 11, 1))
    with pytest.raises(ValueError):
        energy_report(site, TZ, FIRST, FIRST, by="week")
    with pytest.raises(ValueError):
        energy_report(site, TZ, FIRST, FIRST, group="street")
    with pytest.raises(ValueError):
        energy_report(site, TZ, FIRST, FIRST, kinds="prepaid")
    with pytest.raises(HistoryError) as err:
        energy_report(site, TZ, dt.date(1, 1, 1), dt.date(1, 1, 2), by="hour")
    assert err.value.code == "no_range"
    with pytest.raises(HistoryError) as err:
        energy_report(site, TZ, dt.date(2026, 1, 1), dt.date(2026, 12, 31), by="15min")
    assert err.value.code == "range_too_long" and err.value.params == {"days": 62}
    assert energy_report(site, TZ, dt.date(2030, 1, 1), dt.date(2030, 1, 2), by="hour").empty
