"""Queries behind one meter's reading history and an instrument's register difference (energy.history)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from storage.schema import READING_FLOAT_KEYS, area_meter, building, meter, meter_state, readings, room, transformer_area

REGISTERS = ("energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
HISTORY_COLUMNS = ("ts", *READING_FLOAT_KEYS, "balance", "purchase_count", "relay_closed", "status")


def _placed():
    """meter joined to its room, building (through the room, else the transformer area's) and area."""
    return (meter.outerjoin(room, meter.c.room_id == room.c.id)
            .outerjoin(area_meter, area_meter.c.meter_id == meter.c.id)
            .outerjoin(transformer_area, area_meter.c.area_id == transformer_area.c.id)
            .outerjoin(building, building.c.id == sa.func.coalesce(room.c.building_id, transformer_area.c.building_id)))


_PLACE_COLUMNS = (meter.c.id, meter.c.address, meter.c.profile, meter.c.status, building.c.name.label("building"),
                  room.c.floor, room.c.name.label("room"), transformer_area.c.name.label("area"))


def meter_place(conn: sa.Connection, address: str) -> dict | None:
    """One meter by its number, with where it is (building, floor, room, transformer area); None if unknown."""
    row = conn.execute(sa.select(*_PLACE_COLUMNS).select_from(_placed())
                       .where(meter.c.address == address)).mappings().first()
    return dict(row) if row else None


def metered_devices(conn: sa.Connection, limit: int = 5000) -> list[dict]:
    """Every meter that is not removed (prepaid meters, master meters, terminals), with its place: the choices
    of the history and instrument pages, by number."""
    q = (sa.select(*_PLACE_COLUMNS).select_from(_placed()).where(meter.c.status != "removed")
         .order_by(meter.c.address).limit(limit))
    return [dict(r) for r in conn.execute(q).mappings()]


def history_rows(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime,
                 limit: int) -> pd.DataFrame:
    """The meter's readings in [start, end) (naive UTC), oldest first, at most `limit` rows."""
    q = (sa.select(*(readings.c[c] for c in HISTORY_COLUMNS))
         .where(readings.c.meter_id == meter_id, readings.c.ts >= start, readings.c.ts < end)
         .order_by(readings.c.ts).limit(limit))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=list(HISTORY_COLUMNS))


def register_ends(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The first and the last reading in [start, end) that carry the total energy register (0, 1 or 2 rows)."""
    ends = []
    for order in (readings.c.ts.asc(), readings.c.ts.desc()):
        q = (sa.select(readings.c.ts, *(readings.c[c] for c in REGISTERS))
             .where(readings.c.meter_id == meter_id, readings.c.ts >= start, readings.c.ts < end,
                    readings.c.energy_total.is_not(None))
             .order_by(order).limit(1))
        row = conn.execute(q).mappings().first()
        if row is not None:
            ends.append(dict(row))
    return ends if len(ends) < 2 or ends[0]["ts"] != ends[1]["ts"] else ends[:1]


def register_increase(conn: sa.Connection, meter_id: int, start: dt.datetime, end: dt.datetime) -> dict:
    """What each register counted in [start, end), reset-aware: the sum of the steps between consecutive
    readings, where a step down (a counter reset or a swapped meter) counts the new value from zero; and how
    many such steps down the total register took, with the first one's time."""
    lagged = sa.select(readings.c.ts, *(readings.c[c] for c in REGISTERS),
                       *(sa.func.lag(readings.c[c]).over(order_by=readings.c.ts).label(f"prev_{c}")
                         for c in REGISTERS)).where(
        readings.c.meter_id == meter_id, readings.c.ts >= start, readings.c.ts < end,
        readings.c.energy_total.is_not(None)).subquery()

    def step(c: str):
        cur, prev = lagged.c[c], lagged.c[f"prev_{c}"]
        return sa.func.sum(sa.case((prev.is_(None), 0.0), (cur >= prev, cur - prev), else_=cur)).label(c)

    went_down = lagged.c.energy_total < lagged.c.prev_energy_total
    q = sa.select(*(step(c) for c in REGISTERS),
                  sa.func.count().filter(went_down).label("resets"),
                  sa.func.min(sa.case((went_down, lagged.c.ts))).label("first_reset"))
    return dict(conn.execute(q).mappings().one())


def latest_state(conn: sa.Connection, meter_id: int) -> dict | None:
    """The meter's latest remote reading (meter_state): time, registers, power, voltage, current, comm state."""
    cols = ("ts", *REGISTERS, "voltage_a", "current_a", "power_total", "pf_total", "balance", "relay_closed",
            "comm_state")
    row = conn.execute(sa.select(*(meter_state.c[c] for c in cols))
                       .where(meter_state.c.meter_id == meter_id)).mappings().first()
    return dict(row) if row else None
