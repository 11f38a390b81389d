"""Topology: buildings, rooms, transformer areas, gateways, buses, meters; reads for polling."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from storage.schema import area_meter, building, bus, bus_state, gateway, meter, meter_state, room, transformer_area

TOPOLOGY_FIELDS = ("building", "floor", "room", "area", "gateway", "host", "framing", "bus", "port",
                   "unit", "profile", "meter_address")


@dataclass
class KnownTopology:
    """What the database already holds, keyed the way import validation needs it."""
    gateways: dict[str, tuple[str, str]] = field(default_factory=dict)   # name -> (host, framing)
    buses: dict[tuple[str, int], int] = field(default_factory=dict)      # (gateway, bus_no) -> port
    endpoints: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)  # (host, port) -> (gateway, bus_no)
    units: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (gateway, bus_no, unit) -> meter address
    meters: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # address -> (gateway, bus_no, unit)


def known_topology(conn: sa.Connection) -> KnownTopology:
    k = KnownTopology()
    for name, host, framing in conn.execute(sa.select(gateway.c.name, gateway.c.host, gateway.c.framing)):
        k.gateways[name] = (host, framing)
    q = sa.select(gateway.c.name, gateway.c.host, bus.c.bus_no, bus.c.port).join_from(bus, gateway)
    for gname, host, bus_no, port in conn.execute(q):
        k.buses[(gname, bus_no)] = port
        k.endpoints[(host, port)] = (gname, bus_no)
    q = sa.select(meter.c.address, gateway.c.name, bus.c.bus_no, meter.c.unit).join_from(
        meter, bus).join(gateway, bus.c.gateway_id == gateway.c.id)
    for address, gname, bus_no, unit in conn.execute(q):
        k.meters[address] = (gname, bus_no, unit)
        k.units[(gname, bus_no, unit)] = address
    return k


def insert_topology(conn: sa.Connection, rows: list[dict], now: dt.datetime) -> dict[str, int]:
    """Create what the (already validated) rows name; rows for meters that exist are skipped."""
    created = {"buildings": 0, "rooms": 0, "areas": 0, "gateways": 0, "buses": 0, "meters": 0}
    ids: dict[str, dict] = {
        "building": {n: i for i, n in conn.execute(sa.select(building.c.id, building.c.name))},
        "area": {n: i for i, n in conn.execute(sa.select(transformer_area.c.id, transformer_area.c.name))},
        "gateway": {n: i for i, n in conn.execute(sa.select(gateway.c.id, gateway.c.name))},
        "room": {(b, n): i for i, b, n in conn.execute(sa.select(room.c.id, room.c.building_id, room.c.name))},
        "bus": {(g, n): i for i, g, n in conn.execute(sa.select(bus.c.id, bus.c.gateway_id, bus.c.bus_no))},
    }
    existing_meters = set(conn.execute(sa.select(meter.c.address)).scalars())
    new_meters = []
    area_values: dict[int, dict] = {}
    area_roles: list[tuple[int, str, str, float | None]] = []
    fed_by: dict[str, int] = {}       # meter number -> the area feeding it
    for r in rows:
        if r["meter_address"] in existing_meters:
            continue
        b_id = ids["building"].get(r["building"])
        if b_id is None:
            b_id = conn.execute(building.insert().values(name=r["building"]).returning(building.c.id)).scalar_one()
            ids["building"][r["building"]] = b_id
            created["buildings"] += 1
        room_id = None
        if r.get("room"):
            room_id = ids["room"].get((b_id, r["room"]))
            if room_id is None:
                room_id = conn.execute(room.insert().values(
                    building_id=b_id, floor=r.get("floor"), name=r["room"]).returning(room.c.id)).scalar_one()
                ids["room"][(b_id, r["room"])] = room_id
                created["rooms"] += 1
        area_id = None
        if r.get("area"):
            area_id = ids["area"].get(r["area"])
            if area_id is None:
                area_id = conn.execute(transformer_area.insert().values(
                    name=r["area"], building_id=b_id).returning(transformer_area.c.id)).scalar_one()
                ids["area"][r["area"]] = area_id
                created["areas"] += 1
            nameplate = {k: r[k] for k in AREA_NAMEPLATE if r.get(k) is not None}
            if nameplate:
                area_values.setdefault(area_id, {}).update(nameplate)
            if r.get("area_role"):
                area_roles.append((area_id, r["area_role"], r["meter_address"], r.get("ct_ratio")))
        g_id = ids["gateway"].get(r["gateway"])
        if g_id is None:
            settings = {k: r[k] for k in ("timeout_s", "retries") if r.get(k) is not None}
            g_id = conn.execute(gateway.insert().values(
                name=r["gateway"], host=r["host"], framing=r["framing"], **settings).returning(gateway.c.id)).scalar_one()
            ids["gateway"][r["gateway"]] = g_id
            created["gateways"] += 1
        bus_id = ids["bus"].get((g_id, r["bus"]))
        if bus_id is None:
            bus_id = conn.execute(bus.insert().values(
                gateway_id=g_id, bus_no=r["bus"], port=r["port"],
                baud=r.get("baud") or 9600).returning(bus.c.id)).scalar_one()
            ids["bus"][(g_id, r["bus"])] = bus_id
            created["buses"] += 1
        new_meters.append(dict(address=r["meter_address"], bus_id=bus_id, unit=r["unit"], profile=r["profile"],
                               room_id=room_id, status=r.get("status") or "not_opened", created_at=now))
        if area_id is not None:
            fed_by[r["meter_address"]] = area_id
        existing_meters.add(r["meter_address"])
    if new_meters:
        conn.execute(meter.insert(), new_meters)
        created["meters"] = len(new_meters)
    if fed_by:
        ids_of = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        conn.execute(area_meter.insert(), [{"meter_id": ids_of[a], "area_id": i} for a, i in fed_by.items()])
    _set_area_roles(conn, area_values, area_roles)
    return created


AREA_NAMEPLATE = ("rating_kva", "nominal_voltage", "connection_group")


def _set_area_roles(conn: sa.Connection, values: dict[int, dict], roles: list[tuple]) -> None:
    """The areas' nameplates, master meters (with their CT ratio, 1 unless given) and terminals as the rows name
    them; a new master or terminal replaces the area's former one."""
    if roles:
        by_address = dict(conn.execute(sa.select(meter.c.address, meter.c.id).where(
            meter.c.address.in_({a for _, _, a, _ in roles}))).all())
        for area_id, role, address, ct_ratio in roles:
            if role == "master":
                values.setdefault(area_id, {}).update(master_meter_id=by_address[address], ct_ratio=ct_ratio or 1.0)
            else:
                values.setdefault(area_id, {})["terminal_meter_id"] = by_address[address]
    for area_id, v in values.items():
        conn.execute(transformer_area.update().where(transformer_area.c.id == area_id).values(**v))


def poll_targets(conn: sa.Connection) -> list[dict]:
    """Every meter that is polled, with its endpoint, ordered by endpoint then unit."""
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address.label("meter_address"), meter.c.unit,
                   meter.c.profile, gateway.c.name.label("gateway"), gateway.c.host, gateway.c.framing,
                   gateway.c.timeout_s, gateway.c.retries, bus.c.bus_no, bus.c.port, bus.c.id.label("bus_id"))
         .join_from(meter, bus).join(gateway, bus.c.gateway_id == gateway.c.id)
         .where(meter.c.status != "removed")
         .order_by(gateway.c.name, bus.c.bus_no, meter.c.unit))
    return [dict(r) for r in conn.execute(q).mappings()]


def bus_comm_states(conn: sa.Connection) -> list[dict]:
    """Every bus with its gateway, endpoint and last recorded comm_state (None: never polled)."""
    q = (sa.select(bus.c.id.label("bus_id"), bus.c.gateway_id, gateway.c.host, bus.c.port, bus_state.c.comm_state)
         .join_from(bus, gateway, bus.c.gateway_id == gateway.c.id)
         .outerjoin(bus_state, bus_state.c.bus_id == bus.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def meter_count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(meter).where(meter.c.status != "removed")).scalar_one()


def comm_summary(conn: sa.Connection) -> dict[str, int]:
    """Meters online / lost / never polled, and bus endpoints lost."""
    rows = conn.execute(sa.select(meter_state.c.comm_state, sa.func.count()).group_by(meter_state.c.comm_state)).all()
    counts = {state: n for state, n in rows}
    buses_lost = conn.execute(sa.select(sa.func.count()).select_from(bus_state)
                              .where(bus_state.c.comm_state == "lost")).scalar_one()
    return {"online": counts.get("online", 0), "lost": counts.get("lost", 0), "buses_lost": buses_lost}
