"""Report queries that join alarms and meters for the reconciliation page."""
from __future__ import annotations

import json

import sqlalchemy as sa

from storage.schema import alarm_event, building, meter, room


def open_alarms_with_meters(conn: sa.Connection, kinds: tuple[str, ...]) -> list[dict]:
    """Open alarms of these kinds about meters, with the meter's number, building and room; oldest first.
    message_params is the decoded JSON (storage.alarms.message_text puts the message into words)."""
    q = (sa.select(alarm_event.c.id, alarm_event.c.kind, alarm_event.c.level, alarm_event.c.opened_at,
                   alarm_event.c.message_code, alarm_event.c.message_params, alarm_event.c.acknowledged_by,
                   alarm_event.c.acknowledged_at, meter.c.address.label("meter_address"),
                   building.c.name.label("building"), room.c.name.label("room"))
         .select_from(alarm_event.join(meter, sa.and_(alarm_event.c.subject_kind == "meter",
                                                      alarm_event.c.subject_id == meter.c.id))
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(alarm_event.c.open_key.is_not(None), alarm_event.c.kind.in_(kinds))
         .order_by(alarm_event.c.opened_at, alarm_event.c.id))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["message_params"] = json.loads(r["message_params"]) if r["message_params"] else {}
    return rows


def meter_places(conn: sa.Connection, addresses: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Meter number -> (building, room)."""
    if not addresses:
        return {}
    q = (sa.select(meter.c.address, building.c.name, room.c.name)
         .select_from(meter.outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(meter.c.address.in_(addresses)))
    return {a: (b, r) for a, b, r in conn.execute(q)}
