"""SQL of the lost-contact reports (失联表 / 失联通讯管理机): meters whose communication state is lost, and gateways with
a lost bus, with the meters each lost bus takes with it. Reads only; the collector writes the states."""
from __future__ import annotations

import sqlalchemy as sa

from storage.matching import equals_text
from storage.schema import building, bus, bus_state, gateway, meter, meter_state, room


def lost_meters(conn: sa.Connection, building_name: str | None = None) -> list[dict]:
    """Meters lost now (meter_state.comm_state lost), longest lost first: number, place, gateway and bus,
    lost_since, last_seen, last_error, and whether its bus is lost too (the gateway took it with it)."""
    q = (sa.select(meter.c.address.label("meter"), building.c.name.label("building"), room.c.floor,
                   room.c.name.label("room"), gateway.c.name.label("gateway"), bus.c.bus_no,
                   meter_state.c.lost_since, meter_state.c.last_seen, meter_state.c.last_error,
                   (sa.func.coalesce(bus_state.c.comm_state, "online") == "lost").label("bus_lost"))
         .select_from(meter_state.join(meter, meter.c.id == meter_state.c.meter_id)
                      .join(bus, bus.c.id == meter.c.bus_id).join(gateway, gateway.c.id == bus.c.gateway_id)
                      .outerjoin(bus_state, bus_state.c.bus_id == bus.c.id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(meter_state.c.comm_state == "lost", meter.c.status != "removed")
         .order_by(meter_state.c.lost_since, meter.c.address))
    if building_name:
        q = q.where(equals_text(building.c.name, building_name))
    return [dict(r) for r in conn.execute(q).mappings()]


def lost_gateways(conn: sa.Connection) -> list[dict]:
    """Gateways with at least one lost bus, longest lost first: name, host, lost buses of all, lost since (the
    earliest lost bus), the last error, and the meters on the lost buses (count and numbers)."""
    lost = (sa.select(bus.c.gateway_id, sa.func.count().label("lost_buses"),
                      sa.func.min(bus_state.c.lost_since).label("lost_since"),
                      sa.func.max(bus_state.c.last_error).label("last_error"))
            .join_from(bus, bus_state, bus_state.c.bus_id == bus.c.id)
            .where(bus_state.c.comm_state == "lost").group_by(bus.c.gateway_id).subquery())
    buses = (sa.select(bus.c.gateway_id, sa.func.count().label("buses")).group_by(bus.c.gateway_id).subquery())
    q = (sa.select(gateway.c.id, gateway.c.name.label("gateway"), gateway.c.host, lost.c.lost_buses, buses.c.buses,
                   lost.c.lost_since, lost.c.last_error)
         .select_from(gateway.join(lost, lost.c.gateway_id == gateway.c.id)
                      .join(buses, buses.c.gateway_id == gateway.c.id))
         .order_by(lost.c.lost_since, gateway.c.name))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    if not rows:
        return rows
    taken = (sa.select(bus.c.gateway_id, meter.c.address)
             .select_from(meter.join(bus, bus.c.id == meter.c.bus_id)
                          .join(bus_state, bus_state.c.bus_id == bus.c.id))
             .where(bus_state.c.comm_state == "lost", meter.c.status != "removed",
                    bus.c.gateway_id.in_([r["id"] for r in rows]))
             .order_by(meter.c.address))
    meters: dict[int, list[str]] = {}
    for gid, address in conn.execute(taken).all():
        meters.setdefault(gid, []).append(address)
    for r in rows:
        r["meters"] = meters.get(r.pop("id"), [])
    return rows
