"""One meter's reading history and an instrument's register difference, on DuckDB and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pandas as pd
import pytest

from energy.history import (HISTORY_MAX_DAYS, HistoryError, instrument_difference, metered_devices,
                            reading_history)
from storage.schema import READING_STATUS_BITS
from storage.timeseries import append_readings
from tests.billing_support import address, load_site, meter_id, prepaid_site

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 20)                 # local day: 2026-11-19 16:00 .. 2026-11-20 16:00 UTC
DAY_START_UTC = dt.datetime(2026, 11, 19, 16, 0)
HALF_HOUR = dt.timedelta(minutes=30)


@pytest.fixture
def site(any_engine):
    load_site(any_engine, prepaid_site(15020), dt.datetime(2026, 11, 1))
    return any_engine


def write(engine, addr: str, rows: list[dict]) -> None:
    frame = pd.DataFrame([{"meter_id": meter_id(engine, addr), **r} for r in rows])
    frame["ts"] = pd.to_datetime(frame["ts"])
    with engine.begin() as conn:
        append_readings(conn, frame)


def half_hourly(n: int, start: dt.datetime = DAY_START_UTC, skip: range = range(0)) -> list[dict]:
    """n half-hourly readings from `start`, 0.5 kWh apart, without the indexes in `skip` (missed polls)."""
    return [{"ts": start + i * HALF_HOUR, "energy_total": 100 + 0.5 * i, "energy_flat": 100 + 0.5 * i,
             "balance": 50 - i, "purchase_count": 3, "relay_closed": True, "status": 0}
            for i in range(n) if i not in skip]


def test_reading_history_lists_every_reading_in_site_time_and_marks_the_missed_polls(site):
    rows = half_hourly(48, skip=range(10, 14))           # 10:00-11:30 local... four polls missed
    rows[5]["status"] = 1 << READING_STATUS_BITS["alarm1"] | 1 << READING_STATUS_BITS["arrears"]
    write(site, address(1), rows)
    history = reading_history(site, ZONE, address(1), DAY, DAY, poll_interval_s=1800)
    assert len(history.rows) == 44 and not history.truncated
    assert history.rows["ts"].iloc[0] == pd.Timestamp("2026-11-20 00:00")    # local midnight, not UTC
    gap = history.rows[history.rows["comm_gap"]]
    assert list(gap["ts"]) == [pd.Timestamp("2026-11-20 07:00")] and gap["gap_minutes"].iloc[0] == 150
    assert history.gaps == 1 and history.expected_minutes == 30
    assert history.rows["flags"].iloc[5] == ["alarm1", "arrears"] and history.rows["flags"].iloc[0] == []
    assert history.meter["room"] == "A-101" and history.meter["building"] == "Dorm A"


def test_reading_history_keeps_to_the_local_days_asked(site):
    write(site, address(1), half_hourly(96, start=DAY_START_UTC - dt.timedelta(days=1)))
    history = reading_history(site, ZONE, address(1), DAY, DAY, poll_interval_s=1800)
    assert len(history.rows) == 48
    assert history.rows["ts"].min().date() == DAY and history.rows["ts"].max().date() == DAY


def test_reading_history_stops_at_its_row_cap_and_says_so(site):
    write(site, address(1), half_hourly(48))
    history = reading_history(site, ZONE, address(1), DAY, DAY, poll_interval_s=1800, row_cap=20)
    assert history.truncated and len(history.rows) == 20


@pytest.mark.parametrize("meter_text, first, last, code", [
    ("999999999999", DAY, DAY, "unknown_meter"),
    ("", DAY, DAY, "no_meter"),
    ("=cmd|' /C calc'!A0\x00", DAY, DAY, "unknown_meter"),
    (address(1), DAY, DAY - dt.timedelta(days=1), "range_reversed"),
    (address(1), DAY - dt.timedelta(days=HISTORY_MAX_DAYS), DAY, "range_too_long"),
    (address(1), None, DAY, "no_range"),
])
def test_reading_history_refuses_what_it_cannot_answer_in_words(site, meter_text, first, last, code):
    with pytest.raises(HistoryError) as refused:
        reading_history(site, ZONE, meter_text, first, last, poll_interval_s=1800)
    assert refused.value.code == code
    assert refused.value.message("zh") and refused.value.message("en") != refused.value.key
    assert "\x00" not in refused.value.message("en")


def test_instrument_difference_reads_both_ends_inside_the_range(site):
    write(site, address(2), half_hourly(48))
    diff = instrument_difference(site, ZONE, address(2), DAY, DAY)
    assert diff.start.ts == dt.datetime(2026, 11, 20, 0, 0) and diff.end.ts == dt.datetime(2026, 11, 20, 23, 30)
    assert diff.start.registers["energy_total"] == 100 and diff.end.registers["energy_total"] == 123.5
    assert diff.counted["energy_total"] == 23.5 and diff.counted["energy_flat"] == 23.5
    assert diff.counted["energy_peak"] is None           # a register the meter does not read stays empty
    assert diff.resets == 0 and diff.energy_kwh == 23.5
    assert diff.ct_ratio == 1 and not diff.ct_ratio_known


def test_instrument_difference_across_a_reset_counts_the_new_register_from_zero_and_says_so(site):
    rows = half_hourly(20)                                # 100 .. 109.5
    swapped = [{"ts": DAY_START_UTC + (20 + i) * HALF_HOUR, "energy_total": 0.2 + 0.5 * i, "status": 0}
               for i in range(10)]                        # a new meter: 0.2 .. 4.7
    write(site, address(3), rows + swapped)
    diff = instrument_difference(site, ZONE, address(3), DAY, DAY)
    assert diff.end.registers["energy_total"] == pytest.approx(4.7)
    assert diff.end.registers["energy_total"] - diff.start.registers["energy_total"] < 0   # the naive difference
    assert diff.counted["energy_total"] == pytest.approx(9.5 + 0.2 + 4.5)                # never negative
    assert diff.resets == 1 and diff.first_reset == dt.datetime(2026, 11, 20, 10, 0)


def test_instrument_difference_of_a_range_without_readings_says_nothing_was_read(site):
    diff = instrument_difference(site, ZONE, address(4), DAY, DAY)
    assert diff.start is None and diff.end is None and diff.energy_kwh is None and diff.resets == 0


def test_metered_devices_lists_every_meter_with_its_room(site):
    devices = metered_devices(site)
    assert [d["address"] for d in devices] == [address(i) for i in range(1, 5)]
    assert devices[0]["room"] == "A-101"
