"""The site's clock for people: stored times (naive UTC) shown in the site's time zone, and the zone named.

Every timestamp is stored as naive UTC (storage/schema.py). People read times in the site's zone
(configuration [site] timezone), one format everywhere, and every page and export names that zone once
(zone_label). Machines (the JSON API, /healthz) get ISO 8601 UTC with a "Z" (iso_utc).

    show_time(row["ts"], zone)            -> "2026-03-01 16:00:00"  (stored 08:00 UTC, zone +08:00)
    show_time(row["ts"], zone, "minutes") -> "2026-03-01 16:00"
    zone_label(zone)                      -> "Asia/Shanghai (UTC+08:00)"
"""
from __future__ import annotations

import datetime as dt
import re

# How a time reads on a page, in a grid or a message; exports write real date-times (core.workbook.DATETIME).
FORMATS = {"seconds": "%Y-%m-%d %H:%M:%S", "minutes": "%Y-%m-%d %H:%M", "short": "%m-%d %H:%M",
           "stamp": "%Y%m%d-%H%M"}   # stamp: in an export's file name
EMPTY = "—"

# A datetime as str() writes it (the operation log's before/after JSON holds stored times that way).
_STORED_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")


def utcnow() -> dt.datetime:
    """Now as naive UTC, as every timestamp is stored."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def site_time(utc, zone: dt.tzinfo):
    """A stored time (naive UTC: datetime, pandas Timestamp or Series) as the site's naive wall-clock time;
    None and NaT stay empty (None for a scalar)."""
    if utc is None:
        return None
    if type(utc).__module__.startswith("pandas"):
        return _pandas_site_time(utc, zone)
    if isinstance(utc, float) and utc != utc:
        return None
    return utc.replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)


def _pandas_site_time(value, zone: dt.tzinfo):
    import pandas as pd
    if isinstance(value, pd.Series):
        return pd.to_datetime(value).dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    if value is pd.NaT:
        return None
    return pd.Timestamp(value).tz_localize("UTC").tz_convert(zone).tz_localize(None).to_pydatetime()


def utc_time(local: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The site's wall-clock time (what a person typed into a form) as naive UTC, for a query."""
    return local.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)


def show_local(local: dt.datetime | None, precision: str = "seconds") -> str:
    """A time already in site time (billing.context.BillingContext.local) as text; None as a dash."""
    if local is None:
        return EMPTY
    return local.strftime(FORMATS[precision])


def show_time(utc: dt.datetime | None, zone: dt.tzinfo, precision: str = "seconds") -> str:
    """A stored time (naive UTC) as text in the site's zone: the one way pages show a time."""
    return show_local(site_time(utc, zone), precision)


def show_stored_text(text: str, zone: dt.tzinfo, precision: str = "seconds") -> str | None:
    """A stored time written as text ("2026-03-01 08:00:00", as the operation log's JSON keeps one) in the
    site's zone; None when `text` is not such a time."""
    if not isinstance(text, str) or not _STORED_TEXT.fullmatch(text.strip()):
        return None
    try:
        return show_time(dt.datetime.fromisoformat(text.strip()), zone, precision)
    except (ValueError, OverflowError):  # not a time, or one the zone cannot move (year 1, year 9999)
        return None


def offset_text(zone: dt.tzinfo, at: dt.datetime | None = None) -> str:
    """The zone's offset from UTC at `at` (naive UTC, default now): "UTC+08:00", "UTC-05:30", "UTC"."""
    when = (at or utcnow()).replace(tzinfo=dt.UTC).astimezone(zone)
    offset = when.utcoffset() or dt.timedelta(0)
    if not offset:
        return "UTC"
    sign = "+" if offset > dt.timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_label(zone: dt.tzinfo, at: dt.datetime | None = None) -> str:
    """The zone as people are told it: "Asia/Shanghai (UTC+08:00)", or only the offset ("UTC+08:00") for a
    zone configured as an offset."""
    offset = offset_text(zone, at)
    name = getattr(zone, "key", None) or zone.tzname((at or utcnow()).replace(tzinfo=dt.UTC).astimezone(zone))
    if not name or name == offset or re.fullmatch(r"UTC([+-]\d{2}:\d{2})?", name):
        return offset
    return f"{name} ({offset})"


def iso_utc(utc: dt.datetime | None) -> str | None:
    """A stored time for machines: ISO 8601 UTC with "Z" ("2026-03-01T08:00:00Z")."""
    return None if utc is None else utc.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
