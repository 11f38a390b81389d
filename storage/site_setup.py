"""Site setup's reads and writes: building groups, buildings, rooms, gateways and their buses, meters (the pages'
edits one at a time; the bulk import writes through storage.topology.insert_topology)."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from storage.schema import account, account_meter, building, building_group, bus, gateway, meter, room

OPEN_ACCOUNT_STATES = ("open", "closing")


# --- reads ------------------------------------------------------------------------------------------------------
def groups(conn: sa.Connection) -> list[dict]:
    q = sa.select(building_group.c.id, building_group.c.name).order_by(building_group.c.name)
    return [dict(r) for r in conn.execute(q).mappings()]


def buildings(conn: sa.Connection) -> list[dict]:
    """Every building with its group's name and its rooms and meters in service counted."""
    rooms_n = (sa.select(sa.func.count()).select_from(room).where(room.c.building_id == building.c.id)
               .scalar_subquery())
    meters_n = (sa.select(sa.func.count()).select_from(meter).join(room, meter.c.room_id == room.c.id)
                .where(room.c.building_id == building.c.id, meter.c.status != "removed").scalar_subquery())
    q = (sa.select(building.c.id, building.c.name, building.c.group_id, building_group.c.name.label("group"),
                   rooms_n.label("rooms"), meters_n.label("meters"))
         .outerjoin(building_group, building_group.c.id == building.c.group_id).order_by(building.c.name))
    return [dict(r) for r in conn.execute(q).mappings()]


def rooms(conn: sa.Connection, building_id: int | None = None) -> list[dict]:
    q = (sa.select(room.c.id, room.c.name, room.c.floor, room.c.building_id, building.c.name.label("building"))
         .join_from(room, building).order_by(building.c.name, room.c.floor, room.c.name))
    if building_id is not None:
        q = q.where(room.c.building_id == building_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def gateways(conn: sa.Connection) -> list[dict]:
    """Every gateway with its buses (bus_no, port, baud) in bus order."""
    out = {r["id"]: {**r, "buses": []} for r in conn.execute(
        sa.select(gateway.c.id, gateway.c.name, gateway.c.host, gateway.c.framing, gateway.c.timeout_s,
                  gateway.c.retries).order_by(gateway.c.name)).mappings()}
    for r in conn.execute(sa.select(bus.c.id, bus.c.gateway_id, bus.c.bus_no, bus.c.port, bus.c.baud)
                          .order_by(bus.c.gateway_id, bus.c.bus_no)).mappings():
        out[r["gateway_id"]]["buses"].append({"id": r["id"], "bus_no": r["bus_no"], "port": r["port"],
                                              "baud": r["baud"]})
    return list(out.values())


def _meter_query():
    return (sa.select(meter.c.id, meter.c.address, meter.c.unit, meter.c.profile, meter.c.status, meter.c.room_id,
                      meter.c.bus_id, bus.c.bus_no, bus.c.port, gateway.c.id.label("gateway_id"),
                      gateway.c.name.label("gateway"), gateway.c.host, gateway.c.framing, gateway.c.timeout_s,
                      room.c.name.label("room"), room.c.floor, building.c.name.label("building"))
            .join_from(meter, bus).join(gateway, bus.c.gateway_id == gateway.c.id)
            .outerjoin(room, meter.c.room_id == room.c.id).outerjoin(building, room.c.building_id == building.c.id))


def meters(conn: sa.Connection, limit: int = 20000) -> list[dict]:
    q = _meter_query().order_by(gateway.c.name, bus.c.bus_no, meter.c.unit).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def meter_by_address(conn: sa.Connection, address: str) -> dict | None:
    row = conn.execute(_meter_query().where(meter.c.address == address)).mappings().first()
    return dict(row) if row else None


def group_by_id(conn: sa.Connection, group_id: int) -> dict | None:
    row = conn.execute(sa.select(building_group).where(building_group.c.id == group_id)).mappings().first()
    return dict(row) if row else None


def building_by_id(conn: sa.Connection, building_id: int) -> dict | None:
    row = conn.execute(sa.select(building).where(building.c.id == building_id)).mappings().first()
    return dict(row) if row else None


def room_by_id(conn: sa.Connection, room_id: int) -> dict | None:
    q = sa.select(room, building.c.name.label("building")).join_from(room, building).where(room.c.id == room_id)
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def gateway_by_id(conn: sa.Connection, gateway_id: int) -> dict | None:
    return next((g for g in gateways(conn) if g["id"] == gateway_id), None)


def name_taken(conn: sa.Connection, table: str, name: str, but: int | None = None,
               building_id: int | None = None) -> bool:
    """Is `name` a building group's, building's or gateway's (a room's: within `building_id`) other than `but`?"""
    t = {"building_group": building_group, "building": building, "gateway": gateway, "room": room}[table]
    q = sa.select(sa.func.count()).select_from(t).where(t.c.name == name)
    if but is not None:
        q = q.where(t.c.id != but)
    if table == "room":
        q = q.where(room.c.building_id == building_id)
    return bool(conn.execute(q).scalar_one())


def open_account_of(conn: sa.Connection, meter_id: int) -> int | None:
    """The open (or closing) account the meter is on, if any."""
    q = (sa.select(account.c.id).join_from(account_meter, account, account_meter.c.account_id == account.c.id)
         .where(account_meter.c.meter_id == meter_id, account_meter.c.removed_at.is_(None),
                account.c.status.in_(OPEN_ACCOUNT_STATES)).limit(1))
    return conn.execute(q).scalar()


# --- writes -----------------------------------------------------------------------------------------------------
def insert_group(conn: sa.Connection, name: str) -> int:
    return conn.execute(building_group.insert().values(name=name).returning(building_group.c.id)).scalar_one()


def insert_building(conn: sa.Connection, name: str, group_id: int | None) -> int:
    return conn.execute(building.insert().values(name=name, group_id=group_id).returning(building.c.id)).scalar_one()


def insert_room(conn: sa.Connection, building_id: int, floor: int | None, name: str) -> int:
    return conn.execute(room.insert().values(building_id=building_id, floor=floor, name=name)
                        .returning(room.c.id)).scalar_one()


def insert_gateway(conn: sa.Connection, *, name: str, host: str, framing: str, timeout_s: float,
                   retries: int) -> int:
    return conn.execute(gateway.insert().values(name=name, host=host, framing=framing, timeout_s=timeout_s,
                                                retries=retries).returning(gateway.c.id)).scalar_one()


def insert_bus(conn: sa.Connection, gateway_id: int, bus_no: int, port: int, baud: int) -> int:
    return conn.execute(bus.insert().values(gateway_id=gateway_id, bus_no=bus_no, port=port, baud=baud)
                        .returning(bus.c.id)).scalar_one()


def insert_meter(conn: sa.Connection, *, address: str, bus_id: int, unit: int, profile: str, room_id: int | None,
                 now: dt.datetime) -> int:
    return conn.execute(meter.insert().values(address=address, bus_id=bus_id, unit=unit, profile=profile,
                                              room_id=room_id, status="not_opened", created_at=now)
                        .returning(meter.c.id)).scalar_one()


class StillReferenced(Exception):
    """DuckDB cannot change a unique column (a name) of a row other rows point at: it deletes and inserts the row,
    and the deletion fails their foreign keys (PostgreSQL can)."""


_TABLES = {"building_group": building_group, "building": building, "room": room, "gateway": gateway, "bus": bus,
           "meter": meter}


def update(conn: sa.Connection, table: str, row_id: int, **values) -> None:
    """Change one row's columns; StillReferenced where DuckDB refuses (see there)."""
    t = _TABLES[table]
    if not values:
        return
    try:   # (no savepoint: DuckDB has none; the caller's transaction ends with the refusal)
        conn.execute(t.update().where(t.c.id == row_id).values(**values))
    except sa.exc.IntegrityError as exc:
        if "still referenced by a foreign key" in str(exc):
            raise StillReferenced(table) from None
        raise

