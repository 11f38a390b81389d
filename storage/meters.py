"""The meter list (/meters): every meter in service with where it is, how it is wired and its live state;
its export, recorded in the operation log in the same transaction."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from storage.audit import record
from storage.frames import read_frame
from storage.overview import map_states
from storage.schema import building, bus, gateway, meter, meter_state, room

EXPORT_ACTION = "meter.export"
TABLE_COLUMNS = ("meter_id", "address", "building", "floor", "room", "gateway", "bus_no", "unit", "profile",
                 "state", "balance_fen", "energy_total", "relay_closed", "last_seen")


def meter_table(conn: sa.Connection) -> pd.DataFrame:
    """One row per meter in service, ordered by building, floor, room, address. Money as integer
    fen (`balance_fen`), `energy_total` the latest reading's total energy register (kWh), times naive
    UTC; `state` is storage.overview.map_state's."""
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, building.c.name.label("building"), room.c.floor,
                   room.c.name.label("room"), gateway.c.name.label("gateway"), bus.c.bus_no, meter.c.unit,
                   meter.c.profile, meter.c.status, meter_state.c.comm_state, meter_state.c.prepaid_enabled,
                   meter_state.c.arrears, meter_state.c.relay_closed, meter_state.c.alarm1, meter_state.c.alarm2,
                   sa.cast(sa.func.round(meter_state.c.balance * 100), sa.BigInteger).label("balance_fen"),
                   meter_state.c.energy_total, meter_state.c.last_seen)
         .select_from(meter.join(bus, bus.c.id == meter.c.bus_id).join(gateway, gateway.c.id == bus.c.gateway_id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id)
                      .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id))
         .where(meter.c.status != "removed")
         .order_by(building.c.name, room.c.floor, room.c.name, meter.c.address))
    df = read_frame(conn, q)
    df["state"] = map_states(df)
    return df[list(TABLE_COLUMNS)]


def export_meters(conn: sa.Connection, meter_ids: list[int], *, operator: str, ts: dt.datetime,
                  source: str | None, shown: dict | None = None) -> pd.DataFrame:
    """The rows of `meter_ids` in that order (the grid's filtered, sorted rows; ids no longer in
    service are left out), read from the database, and one operation-log row saying who took how
    many rows under which filter. Call inside a transaction (engine.begin())."""
    table = meter_table(conn).set_index("meter_id", drop=False)
    wanted = [i for i in dict.fromkeys(int(i) for i in meter_ids) if i in table.index]
    rows = table.loc[wanted].reset_index(drop=True)
    record(conn, operator=operator, action=EXPORT_ACTION, target="meters", ts=ts, source=source,
           after={"rows": len(rows), **(shown or {})})
    return rows
