"""Report queries that join alarms and meters for the reconciliation page."""
from __future__ import annotations

import sqlalchemy as sa

from storage.schema import alarm_event, building, meter, room


def open_alarms_with_meters(conn: sa.Connection, kinds: tuple[str, ...]) -> list[dict]:
    """Open alarms of these kinds with the meter's number, building and room; oldest first."""
    q = (sa.select(alarm_event.c.id, alarm_event.c.kind, alarm_event.c.level, alarm_event.c.opened_at,
                   alarm_event.c.message, meter.c.address.label("meter_address"),
                   building.c.name.label("building"), room.c.name.label("room"))
         .select_from(alarm_event.join(meter, alarm_event.c.meter_id == meter.c.id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(alarm_event.c.closed_at.is_(None), alarm_event.c.kind.in_(kinds))
         .order_by(alarm_event.c.opened_at, alarm_event.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def meter_places(conn: sa.Connection, addresses: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Meter number -> (building, room)."""
    if not addresses:
        return {}
    q = (sa.select(meter.c.address, building.c.name, room.c.name)
         .select_from(meter.outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(meter.c.address.in_(addresses)))
    return {a: (b, r) for a, b, r in conn.execute(q)}
