"""Queries of the live area pages (/grid/areas, /grid/area): the latest state of the areas' terminals, how many
alarms are open per area (on the area, its terminal and its master meter; storage.grid_areas.area_open_alarms
lists one area's), and a terminal's telemetry over a window (readings and device history of the same polls side
by side). Reads only."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from storage.frames import read_frame
from storage.schema import DEVICE_FLOAT_KEYS, DEVICE_INT_KEYS, alarm_event, device_readings, meter_state, readings

# What a terminal's trends draw: from readings (per poll of every meter) and from device_readings (what only the
# devices carry); both written in one transaction with the same time by the collector.
TREND_READING_KEYS = ("voltage_a", "voltage_b", "voltage_c", "current_a", "current_b", "current_c",
                      "power_total", "pf_total")
TREND_DEVICE_KEYS = ("current_n", "reactive_total", "thd_u_a", "thd_u_b", "thd_u_c", "thd_i_a", "thd_i_b",
                     "thd_i_c", "oil_temp", "ambient_temp", "humidity", "tap_position")
assert set(TREND_DEVICE_KEYS) <= set(DEVICE_FLOAT_KEYS) | set(DEVICE_INT_KEYS)



def terminal_states(conn: sa.Connection, meter_ids: Sequence[int]) -> pd.DataFrame:
    """meter_state of these meters (every column), one row each that has a state."""
    ids = [int(m) for m in meter_ids]
    if not ids:
        return pd.DataFrame(columns=[c.name for c in meter_state.columns])
    q = sa.select(meter_state).where(meter_state.c.meter_id.in_(ids))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in meter_state.columns])


def open_alarm_counts(conn: sa.Connection, subjects: dict[int, Sequence[int]]) -> dict[int, int]:
    """Per area id, how many alarm events are open on the area itself or on the meters given for it
    (`subjects`: area id -> its terminal's and master meter's ids)."""
    meter_area = {int(m): int(a) for a, ms in subjects.items() for m in ms if m is not None}
    ev = alarm_event.c
    on_area = sa.and_(ev.subject_kind == "area", ev.subject_id.in_([int(a) for a in subjects] or [-1]))
    on_meter = sa.and_(ev.subject_kind == "meter", ev.subject_id.in_(list(meter_area) or [-1]))
    q = (sa.select(ev.subject_kind, ev.subject_id, sa.func.count().label("n"))
         .where(ev.open_key.is_not(None), sa.or_(on_area, on_meter))
         .group_by(ev.subject_kind, ev.subject_id))
    counts = {int(a): 0 for a in subjects}
    for kind, sid, n in conn.execute(q).all():
        area = int(sid) if kind == "area" else meter_area.get(int(sid))
        if area in counts:
            counts[area] += int(n)
    return counts


def terminal_series(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """A terminal's telemetry in [start, end) (naive UTC), oldest first: ts and TREND_READING_KEYS from readings
    beside TREND_DEVICE_KEYS from device_readings of the same poll (a time only one table has keeps the other's
    columns empty)."""
    r = readings.c
    q1 = (sa.select(r.ts, *(r[k] for k in TREND_READING_KEYS))
          .where(r.meter_id == int(meter_id), r.ts >= start, r.ts < end))
    d = device_readings.c
    q2 = (sa.select(d.ts, *(d[k] for k in TREND_DEVICE_KEYS))
          .where(d.meter_id == int(meter_id), d.ts >= start, d.ts < end))
    left, right = read_frame(conn, q1), read_frame(conn, q2)
    columns = ["ts", *TREND_READING_KEYS, *TREND_DEVICE_KEYS]
    if left.empty and right.empty:
        return pd.DataFrame(columns=columns)
    if right.empty:
        merged = left.reindex(columns=columns)
    elif left.empty:
        merged = right.reindex(columns=columns)
    else:
        merged = left.merge(right, on="ts", how="outer")
    merged["ts"] = pd.to_datetime(merged["ts"])
    return merged.sort_values("ts", kind="stable").reset_index(drop=True)[columns]

