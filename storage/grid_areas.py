"""Queries of a transformer area's own record (grid.areas, grid.telesignals): its nameplate, terminal, master meter
and the meters it feeds as the edit page shows and writes them, its cameras, its terminal's latest signals and the
open alarms that name the area or its devices."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from storage.schema import alarm_event, area_meter, building, camera, meter, meter_state, room, transformer_area

AREA_FIELDS = ("rating_kva", "nominal_voltage", "connection_group", "terminal_meter_id", "master_meter_id",
               "ct_ratio")


def area_names(conn: sa.Connection) -> list[tuple[int, str]]:
    """(id, name) of every area, by name."""
    return [(int(i), n) for i, n in conn.execute(
        sa.select(transformer_area.c.id, transformer_area.c.name).order_by(transformer_area.c.name))]


def area_record(conn: sa.Connection, area_id: int) -> dict | None:
    """The area's row (id, name, building_id and AREA_FIELDS), None when there is no such area."""
    row = conn.execute(sa.select(transformer_area).where(transformer_area.c.id == int(area_id))).mappings().first()
    return dict(row) if row else None


def update_area(conn: sa.Connection, area_id: int, values: dict) -> None:
    conn.execute(transformer_area.update().where(transformer_area.c.id == int(area_id))
                 .values(**{k: values[k] for k in AREA_FIELDS if k in values}))


def meters_of_area(conn: sa.Connection, area_id: int) -> list[int]:
    """Ids of the meters the area feeds (area_meter), not removed ones."""
    return sorted(int(m) for m in conn.execute(
        sa.select(meter.c.id).join(area_meter, area_meter.c.meter_id == meter.c.id)
        .where(area_meter.c.area_id == int(area_id), meter.c.status != "removed")).scalars())


def meter_choices(conn: sa.Connection) -> list[dict]:
    """Every meter not removed: id, address, profile, area_id, building (name), floor, room (name)."""
    q = (sa.select(meter.c.id, meter.c.address, meter.c.profile, area_meter.c.area_id,
                   building.c.name.label("building"), room.c.floor, room.c.name.label("room"))
         .select_from(meter.outerjoin(area_meter, area_meter.c.meter_id == meter.c.id)
                      .outerjoin(room, room.c.id == meter.c.room_id)
                      .outerjoin(building, building.c.id == room.c.building_id))
         .where(meter.c.status != "removed").order_by(meter.c.address))
    return [dict(r) for r in conn.execute(q).mappings()]


def roles_elsewhere(conn: sa.Connection, area_id: int) -> dict[int, tuple[str, str]]:
    """meter id -> (role, area name) of the meters other areas have as terminal or master meter."""
    q = sa.select(transformer_area.c.name, transformer_area.c.terminal_meter_id, transformer_area.c.master_meter_id) \
        .where(transformer_area.c.id != int(area_id))
    out: dict[int, tuple[str, str]] = {}
    for name, terminal, master in conn.execute(q):
        if terminal is not None:
            out[int(terminal)] = ("terminal", name)
        if master is not None:
            out[int(master)] = ("master", name)
    return out


def set_area_meters(conn: sa.Connection, area_id: int, meter_ids: Iterable[int]) -> dict[str, list[int]]:
    """Make exactly these meters the area's: the ones added (taken from the area that fed them, if any) and the
    ones taken out (fed by no area until another takes them)."""
    wanted = {int(m) for m in meter_ids}
    have = set(meters_of_area(conn, area_id))
    added, removed = sorted(wanted - have), sorted(have - wanted)
    for i in range(0, len(added), 1000):
        chunk = added[i:i + 1000]
        conn.execute(area_meter.delete().where(area_meter.c.meter_id.in_(chunk)))
        conn.execute(area_meter.insert(), [{"meter_id": m, "area_id": int(area_id)} for m in chunk])
    for i in range(0, len(removed), 1000):
        conn.execute(area_meter.delete().where(area_meter.c.meter_id.in_(removed[i:i + 1000]),
                                               area_meter.c.area_id == int(area_id)))
    return {"added": added, "removed": removed}


# ---------------------------------------------------------------------------------------------
# cameras
CAMERA_COLUMNS = ("id", "area_id", "name", "url", "kind", "created_at", "created_by")


def cameras(conn: sa.Connection, area_id: int) -> list[dict]:
    q = sa.select(camera).where(camera.c.area_id == int(area_id)).order_by(camera.c.name, camera.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


def camera_by_id(conn: sa.Connection, camera_id: int) -> dict | None:
    row = conn.execute(sa.select(camera).where(camera.c.id == int(camera_id))).mappings().first()
    return dict(row) if row else None


def insert_camera(conn: sa.Connection, *, area_id: int, name: str, url: str, kind: str, now: dt.datetime,
                  operator: str) -> int:
    return conn.execute(camera.insert().values(area_id=int(area_id), name=name, url=url, kind=kind, created_at=now,
                                               created_by=operator).returning(camera.c.id)).scalar_one()


def delete_camera(conn: sa.Connection, camera_id: int) -> int:
    return conn.execute(camera.delete().where(camera.c.id == int(camera_id))).rowcount


def any_camera(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(camera.c.id).limit(1)).first() is not None


def camera_count(conn: sa.Connection, area_id: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(camera).where(camera.c.area_id == int(area_id))) \
        .scalar_one()


# ---------------------------------------------------------------------------------------------
# telesignals
SIGNAL_COLUMNS = ("door_open", "smoke", "water", *(f"breaker_{i}" for i in range(1, 9)), "oil_temp",
                  "ambient_temp", "humidity")


def terminal_states(conn: sa.Connection) -> list[dict]:
    """Per area with a terminal: area_id, area (name), terminal_meter_id, terminal (its number), its comm_state, ts, its
    signals and environment (SIGNAL_COLUMNS) and `changeover` (a column when the schema has one, else the latest
    reading's own key), None where never read."""
    extra_changeover = "changeover" not in meter_state.c
    cols = [meter_state.c[c] for c in SIGNAL_COLUMNS]
    if not extra_changeover:
        cols.append(meter_state.c["changeover"])
    q = (sa.select(transformer_area.c.id.label("area_id"), transformer_area.c.name.label("area"),
                   transformer_area.c.terminal_meter_id, meter.c.address.label("terminal"), meter_state.c.comm_state,
                   meter_state.c.ts, *cols, meter_state.c.extra)
         .select_from(transformer_area.join(meter, meter.c.id == transformer_area.c.terminal_meter_id)
                      .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id))
         .where(meter.c.status != "removed")
         .order_by(transformer_area.c.id))
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        extra = d.pop("extra", None)
        if extra_changeover:
            try:
                value = json.loads(extra).get("changeover") if extra else None
            except (ValueError, AttributeError):
                value = None
            d["changeover"] = None if value is None else bool(value)
        out.append(d)
    return out


def breakers_closed_since(conn: sa.Connection, meter_ids: Sequence[int], since: dt.datetime,
                          bits: dict[str, int]) -> dict[int, set[int]]:
    """Per terminal, the outlets (1..8) whose breaker was closed in any of its device readings since `since`: the
    outlets in service (a spare outlet is never closed). `bits`: storage.schema.DEVICE_SIGNAL_BITS."""
    from storage.schema import device_readings
    ids = [int(m) for m in meter_ids]
    if not ids:
        return {}
    q = (sa.select(device_readings.c.meter_id, sa.func.bit_or(device_readings.c.signals))
         .where(device_readings.c.meter_id.in_(ids), device_readings.c.ts >= since,
                device_readings.c.signals.is_not(None))
         .group_by(device_readings.c.meter_id))
    out: dict[int, set[int]] = {}
    for mid, mask in conn.execute(q):
        mask = int(mask or 0)
        out[int(mid)] = {i for i in range(1, 9) if f"breaker_{i}" in bits and mask >> bits[f"breaker_{i}"] & 1}
    return out


def open_area_events(conn: sa.Connection, kinds: Sequence[str]) -> dict[tuple[int, str], dict]:
    """(area id, kind) -> the open event (id, level, message_params as a dict) of these kinds of area subjects."""
    ev = alarm_event.c
    q = sa.select(ev.id, ev.subject_id, ev.kind, ev.level, ev.message_params).where(
        ev.open_key.is_not(None), ev.subject_kind == "area", ev.kind.in_(list(kinds)))
    return {(int(r.subject_id), r.kind): {"id": r.id, "level": r.level,
                                          "params": json.loads(r.message_params) if r.message_params else {}}
            for r in conn.execute(q)}


def area_open_alarms(conn: sa.Connection, area_id: int) -> list[dict]:
    """The open events of the area itself and of its terminal and master meter (their lost contact, power quality
    ...), oldest first, each with `device`: "area", "terminal" or "master"."""
    area = area_record(conn, area_id)
    if area is None:
        return []
    ev = alarm_event.c
    devices = {int(area[k]): role for k, role in (("terminal_meter_id", "terminal"), ("master_meter_id", "master"))
               if area.get(k) is not None}
    subject = sa.and_(ev.subject_kind == "area", ev.subject_id == int(area_id))
    if devices:
        subject = sa.or_(subject, sa.and_(ev.subject_kind == "meter", ev.subject_id.in_(list(devices))))
    rows = conn.execute(sa.select(alarm_event).where(ev.open_key.is_not(None), subject).order_by(ev.id)).mappings()
    out = []
    for r in rows:
        d = dict(r)
        d["device"] = "area" if d["subject_kind"] == "area" else devices.get(int(d["subject_id"]), "meter")
        out.append(d)
    return out
