"""The energy analysis queries pages, reports, the command line and the API share: energy per period and place
(from the rollups only, the coarsest that serves the step) and the anomalies (high use, night base load, a
register that stopped while power flows)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.clock import site_time
from energy.derive import ENERGY, local_offsets
from energy.history import HistoryError, local_range
from storage import energy as store

BY = ("15min", "hour", "day", "month")
GROUPS = ("site", "building", "floor", "room", "meter")
KINDS = ("prepaid", "master", "terminal")
GROUP_COLUMNS = {"site": (), "building": ("building",), "floor": ("building", "floor"),
                 "room": ("building", "floor", "room"), "meter": ("building", "floor", "room", "meter")}
_GRAIN = {"15min": "15min", "hour": "hour", "day": "day", "month": "day"}
TERMINAL_KIND = "transformer-terminal"     # a device profile's kind (collectors/profiles/*.toml)
NIGHT_HOURS = (1, 5)                       # local 01:00-05:00: the night-time base load
ROBUST_Z = 0.6745                          # z = 0.6745 (x - median) / MAD (Iglewicz and Hoaglin)
STOPPED_MIN_KW = 0.05                      # power above this with a register that did not move: stopped
STOPPED_MIN_KWH = 0.05                     # ... and it should have counted at least this much
STOPPED_DAYS = 1                           # the stopped-register check reads raw readings of the range's last day
YEARS = (2000, 2200)                       # days outside these years name no data (and overflow time arithmetic)
MAX_DAYS = {"15min": 62, "hour": 400}      # finer steps over a longer range are more rows than any screen shows


@dataclass(frozen=True)
class Place:
    """Where: all None/empty = the whole site. `rooms`: names within `building` (or "Building/Room" when building
    is None); `meters`: 12-digit meter numbers."""
    building: str | None = None
    floor: int | None = None
    rooms: tuple[str, ...] = ()
    meters: tuple[str, ...] = ()


def _checked_range(first_day, last_day, by: str = "day") -> None:
    if not isinstance(first_day, dt.date) or not isinstance(last_day, dt.date) \
            or not all(YEARS[0] <= d.year <= YEARS[1] for d in (first_day, last_day)):
        raise HistoryError("no_range")
    if first_day > last_day:
        raise HistoryError("range_reversed", first=first_day.isoformat(), last=last_day.isoformat())
    most = MAX_DAYS.get(by)
    if most is not None and (last_day - first_day).days + 1 > most:
        raise HistoryError("range_too_long", days=most)


@lru_cache(maxsize=1)
def _terminal_profiles() -> frozenset[str]:
    from collectors.profiles import ProfileRegistry
    reg = ProfileRegistry()
    return frozenset(n for n in reg.names() if reg.get(n).kind == TERMINAL_KIND)


def meter_kind(meters: pd.DataFrame) -> pd.Series:
    """"prepaid" (a meter with a room: it has a balance), "terminal" (a transformer-terminal profile), else
    "master" (a room-less meter: a building's or an area's master meter)."""
    kind = np.where(meters["profile"].isin(_terminal_profiles()), "terminal", "master")
    return pd.Series(np.where(meters["has_room"].astype(bool), "prepaid", kind), index=meters.index)


def select_meters(meters: pd.DataFrame, place: Place, kinds=("prepaid",)) -> pd.DataFrame:
    """The meters of `place` and of these kinds."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or isinstance(kinds, str):
        raise ValueError(f"kinds must be a tuple of {', '.join(KINDS)}, not {kinds!r}")
    m = meters[meter_kind(meters).isin(kinds)]
    if place.building is not None:
        m = m[m["building"] == place.building]
    if place.floor is not None:
        m = m[m["floor"] == place.floor]
    if place.rooms:
        if place.building is not None:
            m = m[m["room"].isin(place.rooms)]
        else:
            m = m[(m["building"].fillna("") + "/" + m["room"].fillna("")).isin(place.rooms)]
    if place.meters:
        m = m[m["meter"].isin(place.meters)]
    return m


def site_meters(engine: sa.Engine) -> pd.DataFrame:
    """Every meter with its place (storage.energy.meters_with_place): read once by a caller that makes several
    energy queries for one answer (a page) and handed to each as `meters`."""
    with engine.connect() as conn:
        return store.meters_with_place(conn)


def _ids(conn: sa.Connection, place: Place, kinds,
         meters: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[int] | None]:
    """The selected meters, and their ids for a query (None: every meter, no list needed). `meters`: the site's
    meters already read (site_meters), else they are read here."""
    if meters is None:
        meters = store.meters_with_place(conn)
    chosen = select_meters(meters, place, kinds)
    return chosen, None if len(chosen) == len(meters) else [int(i) for i in chosen["meter_id"]]


def energy_report(engine: sa.Engine, tz: dt.tzinfo, first_day: dt.date, last_day: dt.date, *, by: str = "day",
                  group: str = "site", place: Place = Place(), kinds=("prepaid",),
                  meters: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (period, group key): period (pd.Timestamp, the site's local start, naive), the group's columns
    (building, floor, room, meter), energy_kwh and its TOU split, estimated (some part spread over a comm gap),
    gap (some interval not counted: a reset, a swap, a spike). Local days, both ends inclusive. Reads the rollups
    only: the daily one for days and months, the hourly one for hours, the 15-minute one for quarters (kept
    [analytics] fine_days). `meters`: the site's meters (site_meters) when the caller has read them already."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, not {by!r}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
    _checked_range(first_day, last_day, by)
    grain = _GRAIN[by]
    cols = GROUP_COLUMNS[group]
    if grain == "day":
        lo, hi = first_day, last_day + dt.timedelta(days=1)
    else:
        lo, hi = local_range(tz, first_day, last_day)
    with engine.connect() as conn:
        chosen, ids = _ids(conn, place, kinds, meters)
        if chosen.empty:
            df = pd.DataFrame(columns=["period", *cols, *ENERGY, "estimated", "gap"])
        else:
            df = store.grouped_energy(conn, grain, lo, hi, ids, cols, month=by == "month")
    return _shaped(df, cols, grain, tz)


def _shaped(df: pd.DataFrame, cols: tuple[str, ...], grain: str, tz: dt.tzinfo) -> pd.DataFrame:
    period = pd.to_datetime(df["period"])
    if grain != "day" and len(df):
        period = pd.Series(site_time(period, tz), index=df.index)
    out = pd.DataFrame({"period": period.astype("datetime64[ns]")})
    for c in cols:
        out[c] = df[c].astype("Int64") if c == "floor" else df[c].astype(object)
    for c in ENERGY:
        out[c] = pd.to_numeric(df[c]).astype(float)
    out["estimated"] = df["estimated"].astype(bool)
    out["gap"] = df["gap"].astype(bool)
    return out.sort_values(["period", *cols], kind="stable", na_position="last").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Anomalies

def robust_z(values: pd.Series, groups: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(z, the group median): z = 0.6745 (x - median) / MAD within each group (NaN where the MAD is 0)."""
    keys = [groups[c] for c in groups.columns]
    med = values.groupby(keys, dropna=False).transform("median")
    mad = (values - med).abs().groupby(keys, dropna=False).transform("median")
    return ROBUST_Z * (values - med) / mad.where(mad > 0), med


def _night_hours(tz: dt.tzinfo, first_day: dt.date, last_day: dt.date) -> list[dt.datetime]:
    """UTC starts of the site's local hours NIGHT_HOURS[0] .. NIGHT_HOURS[1] - 1 of each day in the range."""
    start, end = local_range(tz, first_day, last_day)
    hours = np.arange(np.datetime64(start, "s"), np.datetime64(end, "s"), np.timedelta64(3600, "s")).astype(np.int64)
    local_hour = ((hours + local_offsets(hours, tz)) % 86400) // 3600
    night = hours[(local_hour >= NIGHT_HOURS[0]) & (local_hour < NIGHT_HOURS[1])]
    return [dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(s)) for s in night]


def _flagged(rooms: pd.DataFrame, value: str, z_limit: float) -> pd.DataFrame:
    z, med = robust_z(rooms[value], rooms[["building", "floor"]])
    out = rooms.assign(floor_median=med, z=z)
    return out[out["z"] > z_limit].sort_values("z", ascending=False).reset_index(drop=True)


def anomalies(engine: sa.Engine, tz: dt.tzinfo, first_day: dt.date, last_day: dt.date, *, z_limit: float = 3.5,
              place: Place = Place()) -> dict[str, pd.DataFrame]:
    """"high_use": rooms whose average daily use is far above their floor's rooms (robust z over z_limit);
    "night_base": rooms whose 01:00-05:00 average power is far above their floor's; "stopped_register": meters
    whose register did not move over the range's last day while their power was not zero. Each row names
    building, floor, room, meter and the figures."""
    _checked_range(first_day, last_day, "hour")     # the night base reads hourly rollups
    days = (last_day - first_day).days + 1
    place_cols = ["building", "floor", "room", "meter"]
    with engine.connect() as conn:
        every = store.meters_with_place(conn)
        chosen, ids = _ids(conn, place, ("prepaid",), every)
        if place.floor is None and place.rooms == () and place.meters == ():
            floor_ids = ids
        else:   # a room is compared with its whole floor, even when only some rooms were asked for
            floors = select_meters(every, Place(building=None), ("prepaid",)).merge(
                chosen[["building", "floor"]].drop_duplicates(), on=["building", "floor"])
            chosen, floor_ids = floors, [int(i) for i in floors["meter_id"]]
        wanted = set(chosen["meter_id"]) if ids is not None else None
        daily = store.meter_energy(conn, "day", first_day, last_day + dt.timedelta(days=1), floor_ids)
        night_keys = _night_hours(tz, first_day, last_day)
        night = store.meter_energy(conn, "hour", *local_range(tz, first_day, last_day), floor_ids, keys=night_keys)
        stopped_meters = select_meters(every, place, KINDS)
        start, end = local_range(tz, max(first_day, last_day - dt.timedelta(days=STOPPED_DAYS - 1)), last_day)
        stopped = store.stopped_registers(conn, start, end, STOPPED_MIN_KW)
    rooms = chosen[["meter_id", *place_cols]]
    high = rooms.merge(daily[["meter_id", "energy_kwh", "estimated", "gap"]], on="meter_id")
    high = high.assign(kwh_per_day=high["energy_kwh"].astype(float) / days)
    night_frame = rooms.merge(night[["meter_id", "energy_kwh", "periods"]], on="meter_id")
    night_frame = night_frame.assign(night_kw=night_frame["energy_kwh"].astype(float) / night_frame["periods"])
    out = {"high_use": _flagged(high, "kwh_per_day", z_limit), "night_base": _flagged(night_frame, "night_kw", z_limit)}
    if wanted is not None:
        out = {k: v[v["meter_id"].isin(wanted)].reset_index(drop=True) for k, v in out.items()}
    out["high_use"] = out["high_use"][[*place_cols, "kwh_per_day", "floor_median", "z", "estimated", "gap"]]
    out["night_base"] = out["night_base"][[*place_cols, "night_kw", "floor_median", "z"]]
    s = stopped_meters[["meter_id", *place_cols]].merge(stopped, on="meter_id")
    s = s[s["expected_kwh"] >= STOPPED_MIN_KWH]
    s = s.assign(first_ts=site_time(pd.to_datetime(s["first_ts"]), tz) if len(s) else s["first_ts"],
                 last_ts=site_time(pd.to_datetime(s["last_ts"]), tz) if len(s) else s["last_ts"])
    out["stopped_register"] = s[[*place_cols, "energy_total", "power_kw", "expected_kwh", "readings", "first_ts",
                                 "last_ts"]].sort_values("expected_kwh", ascending=False).reset_index(drop=True)
    return out
