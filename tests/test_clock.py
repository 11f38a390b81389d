"""The site's clock (core/clock.py): stored UTC shown in the site's zone, and the zone named."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from core.clock import iso_utc, show_stored_text, show_time, site_time, utc_time, zone_label
from core.config import site_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
STORED = dt.datetime(2026, 3, 1, 8, 0)       # naive UTC, as the database keeps it


def test_a_time_stored_at_eight_utc_reads_sixteen_in_shanghai():
    assert show_time(STORED, SHANGHAI) == "2026-03-01 16:00:00"
    assert show_time(STORED, SHANGHAI, "minutes") == "2026-03-01 16:00"
    assert show_time(STORED, SHANGHAI, "short") == "03-01 16:00"


def test_a_missing_time_reads_as_a_dash():
    assert show_time(None, SHANGHAI) == "—"


def test_a_time_near_midnight_utc_moves_to_the_sites_next_day():
    assert site_time(dt.datetime(2026, 3, 1, 20, 30), SHANGHAI) == dt.datetime(2026, 3, 2, 4, 30)


def test_a_zone_with_daylight_saving_shows_the_offset_of_the_day():
    berlin = ZoneInfo("Europe/Berlin")
    assert show_time(dt.datetime(2026, 1, 15, 8, 0), berlin) == "2026-01-15 09:00:00"
    assert show_time(dt.datetime(2026, 7, 15, 8, 0), berlin) == "2026-07-15 10:00:00"


def test_a_pandas_column_converts_with_its_missing_values_left_empty():
    col = pd.Series([pd.Timestamp(STORED), pd.NaT])
    out = site_time(col, SHANGHAI)
    assert out.iloc[0] == pd.Timestamp("2026-03-01 16:00") and pd.isna(out.iloc[1])
    assert site_time(pd.NaT, SHANGHAI) is None
    assert site_time(pd.Timestamp(STORED), SHANGHAI) == dt.datetime(2026, 3, 1, 16, 0)


def test_a_time_typed_into_a_form_is_the_sites_and_queries_as_utc():
    assert utc_time(dt.datetime(2026, 3, 1, 16, 0), SHANGHAI) == STORED


def test_the_zone_is_named_by_its_name_and_offset():
    assert zone_label(SHANGHAI) == "Asia/Shanghai (UTC+08:00)"
    assert zone_label(site_zone("+08:00")) == "UTC+08:00"
    assert zone_label(site_zone("-05:30")) == "UTC-05:30"
    assert zone_label(dt.UTC) == "UTC"
    assert zone_label(ZoneInfo("America/New_York"), at=dt.datetime(2026, 1, 15)) == "America/New_York (UTC-05:00)"


def test_a_stored_time_kept_as_text_is_shown_in_site_time_and_other_text_is_not_a_time():
    assert show_stored_text("2026-03-01 08:00:00", SHANGHAI) == "2026-03-01 16:00:00"
    assert show_stored_text("2026-03-01 08:00:00.123456", SHANGHAI) == "2026-03-01 16:00:00"
    assert show_stored_text("50.00", SHANGHAI) is None
    assert show_stored_text("2026-13-45 99:00:00", SHANGHAI) is None


def test_machines_get_iso_utc_with_a_z():
    assert iso_utc(STORED) == "2026-03-01T08:00:00Z"
    assert iso_utc(None) is None
