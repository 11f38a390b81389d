"""Dormitory load shape: daily pattern by local hour, weekday/weekend, and the college calendar over the year.

Shared by the live meters (scalar lookups per refresh) and the history backfill (numpy arrays),
so live data and history look alike. Values are fractions of a room's peak demand.
"""

from __future__ import annotations

import time

import numpy as np

SITE_UTC_OFFSET_S = 8 * 3600  # China Standard Time, no daylight saving
ROOM_PEAK_KW = 1.1            # a dormitory room of 4-6 students with air conditioning at its evening peak

_HOURS = np.arange(25, dtype=np.float64)
# Students: asleep after midnight, a breakfast bump, classes, lunch, an evening peak 19-23h, lights out ~23:30.
_WEEKDAY = np.array([0.35, 0.18, 0.12, 0.10, 0.10, 0.10, 0.15, 0.45, 0.30, 0.18, 0.18, 0.22,
                     0.45, 0.40, 0.25, 0.22, 0.25, 0.40, 0.60, 0.85, 0.95, 1.00, 0.95, 0.70, 0.35])
# Weekends: late mornings, rooms occupied through the day.
_WEEKEND = np.array([0.45, 0.30, 0.18, 0.12, 0.10, 0.10, 0.10, 0.15, 0.25, 0.40, 0.50, 0.55,
                     0.60, 0.55, 0.50, 0.50, 0.50, 0.55, 0.65, 0.85, 0.95, 1.00, 0.95, 0.75, 0.45])

_MINUTES = np.arange(1440) / 60.0
DAY_SHAPE_WEEKDAY = np.interp(_MINUTES, _HOURS, _WEEKDAY)
DAY_SHAPE_WEEKEND = np.interp(_MINUTES, _HOURS, _WEEKEND)
_SHAPE_LISTS = (DAY_SHAPE_WEEKDAY.tolist(), DAY_SHAPE_WEEKEND.tolist())

# College calendar by day of year: winter vacation late January-February, summer vacation
# mid-July-August (rooms nearly empty), air conditioning in June and September, heating in December.
_SEASON_DAYS = np.array([0, 15, 31, 45, 59, 75, 105, 135, 165, 190, 200, 215, 230, 245, 255, 270, 300, 330, 350, 366])
_SEASON_LEVEL = np.array([1.00, 0.90, 0.40, 0.30, 0.55, 0.90, 0.85, 0.95, 1.15, 1.10, 0.50, 0.30, 0.30, 0.45,
                          1.05, 1.10, 0.90, 0.95, 1.05, 1.00])
SEASON_BY_DAY = np.interp(np.arange(367), _SEASON_DAYS, _SEASON_LEVEL)
_SEASON_LIST = SEASON_BY_DAY.tolist()


def local_struct(unix_seconds: float, utc_offset_s: int = SITE_UTC_OFFSET_S) -> time.struct_time:
    return time.gmtime(unix_seconds + utc_offset_s)


def demand_fraction(unix_seconds: float, utc_offset_s: int = SITE_UTC_OFFSET_S) -> float:
    """Fraction of peak demand at this instant (daily shape x season)."""
    t = time.gmtime(unix_seconds + utc_offset_s)
    weekend = t.tm_wday >= 5
    return _SHAPE_LISTS[weekend][t.tm_hour * 60 + t.tm_min] * _SEASON_LIST[t.tm_yday]


def demand_fraction_array(unix_seconds: np.ndarray, utc_offset_s: int = SITE_UTC_OFFSET_S) -> np.ndarray:
    """Vectorised demand_fraction for an array of Unix seconds."""
    local = np.asarray(unix_seconds, dtype=np.int64) + utc_offset_s
    days = local // 86400
    minute = (local % 86400) // 60
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (weekday 3, Monday = 0)
    shape = np.where(weekday >= 5, DAY_SHAPE_WEEKEND[minute], DAY_SHAPE_WEEKDAY[minute])
    day_of_year = local_day_of_year(local)
    return shape * SEASON_BY_DAY[day_of_year]


def local_day_of_year(local_seconds: np.ndarray) -> np.ndarray:
    """1-based day of year of local Unix seconds (already shifted by the UTC offset)."""
    days = (np.asarray(local_seconds, dtype=np.int64) // 86400).astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    return (days - years).astype(np.int64) + 1


def local_minute_of_day(unix_seconds: np.ndarray, utc_offset_s: int = SITE_UTC_OFFSET_S) -> np.ndarray:
    return ((np.asarray(unix_seconds, dtype=np.int64) + utc_offset_s) % 86400) // 60


def local_month_key(unix_seconds: np.ndarray, utc_offset_s: int = SITE_UTC_OFFSET_S) -> np.ndarray:
    """Months since 1970-01 in local time, for monthly tier resets."""
    days = ((np.asarray(unix_seconds, dtype=np.int64) + utc_offset_s) // 86400).astype("datetime64[D]")
    return days.astype("datetime64[M]").astype(np.int64)
