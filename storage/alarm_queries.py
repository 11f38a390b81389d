"""Alarm events as the alarm pages list them: open ones for the control room, any for the history, with the
subject's names (meter number, room, building, gateway, bus, transformer area, work order) joined in. Reads only;
storage.alarms writes."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from storage import audit
from storage.schema import alarm_event, building, bus, gateway, meter, room, transformer_area, work_order

MAX_ROWS = 5000   # one screen or one export; a wider query is cut here and says so


@dataclass(frozen=True)
class AlarmQuery:
    """What a page asks for. Times naive UTC (the page converts the site's days); None: no condition."""
    open_only: bool = False
    kinds: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    building_id: int | None = None
    room_id: int | None = None
    meter_address: str | None = None
    state: str | None = None          # storage.alarms.STATES
    since: dt.datetime | None = None  # opened at or after
    until: dt.datetime | None = None  # opened before
    limit: int = MAX_ROWS


COLUMNS = ("id", "kind", "level", "subject_kind", "subject_id", "meter", "room", "building", "building_id",
           "gateway", "bus_no", "area", "work_order", "opened_at", "closed_at", "acknowledged_by", "acknowledged_at", "ack_note",
           "message_code", "message_params")


def _select():
    m_room = room.alias("m_room")
    m_building = building.alias("m_building")
    m_bus = bus.alias("m_bus")
    b_bus = bus.alias("b_bus")
    a_building = building.alias("a_building")   # a transformer area's building
    is_meter = sa.and_(alarm_event.c.subject_kind == "meter", meter.c.id == alarm_event.c.subject_id)
    gw_id = sa.case((alarm_event.c.subject_kind == "gateway", alarm_event.c.subject_id),
                    (alarm_event.c.subject_kind == "bus", b_bus.c.gateway_id), else_=m_bus.c.gateway_id)
    building_id = sa.func.coalesce(m_building.c.id, a_building.c.id)
    q = (sa.select(alarm_event.c.id, alarm_event.c.kind, alarm_event.c.level, alarm_event.c.subject_kind,
                   alarm_event.c.subject_id, meter.c.address.label("meter"), m_room.c.name.label("room"),
                   sa.func.coalesce(m_building.c.name, a_building.c.name).label("building"),
                   building_id.label("building_id"), gateway.c.name.label("gateway"),
                   sa.case((alarm_event.c.subject_kind == "bus", b_bus.c.bus_no), else_=m_bus.c.bus_no).label("bus_no"),
                   transformer_area.c.name.label("area"), work_order.c.number.label("work_order"),
                   alarm_event.c.opened_at, alarm_event.c.closed_at, alarm_event.c.acknowledged_by,
                   alarm_event.c.acknowledged_at, alarm_event.c.ack_note, alarm_event.c.message_code,
                   alarm_event.c.message_params)
         .select_from(alarm_event
                      .outerjoin(meter, is_meter)
                      .outerjoin(m_room, m_room.c.id == meter.c.room_id)
                      .outerjoin(m_building, m_building.c.id == m_room.c.building_id)
                      .outerjoin(m_bus, m_bus.c.id == meter.c.bus_id)
                      .outerjoin(b_bus, sa.and_(alarm_event.c.subject_kind == "bus",
                                                b_bus.c.id == alarm_event.c.subject_id))
                      .outerjoin(gateway, gateway.c.id == gw_id)
                      .outerjoin(transformer_area, sa.and_(alarm_event.c.subject_kind == "area",
                                                           transformer_area.c.id == alarm_event.c.subject_id))
                      .outerjoin(a_building, a_building.c.id == transformer_area.c.building_id)
                      .outerjoin(work_order, sa.and_(alarm_event.c.subject_kind == "work_order",
                                                     work_order.c.id == alarm_event.c.subject_id))))
    return q, m_room, building_id


def list_alarms(conn: sa.Connection, query: AlarmQuery) -> tuple[pd.DataFrame, bool]:
    """(events newest first, whether more matched than query.limit)."""
    q, m_room, building_id = _select()
    ev = alarm_event.c
    if query.open_only or query.state == "open":
        q = q.where(ev.open_key.is_not(None))
    elif query.state == "closed":
        q = q.where(ev.closed_at.is_not(None))
    if query.state == "unacknowledged":
        q = q.where(ev.acknowledged_at.is_(None))
    elif query.state == "acknowledged":
        q = q.where(ev.acknowledged_at.is_not(None))
    if query.kinds:
        q = q.where(ev.kind.in_(list(query.kinds)))
    if query.levels:
        q = q.where(ev.level.in_([int(x) for x in query.levels]))
    if query.building_id is not None:
        q = q.where(building_id == int(query.building_id))   # a meter's or a transformer area's
    if query.room_id is not None:
        q = q.where(m_room.c.id == int(query.room_id))
    if query.meter_address:
        q = q.where(meter.c.address == query.meter_address)
    if query.since is not None:
        q = q.where(ev.opened_at >= query.since)
    if query.until is not None:
        q = q.where(ev.opened_at < query.until)
    q = q.order_by(ev.opened_at.desc(), ev.id.desc()).limit(int(query.limit) + 1)
    rows = conn.execute(q).mappings().all()
    more = len(rows) > query.limit
    frame = pd.DataFrame([dict(r) for r in rows[:query.limit]], columns=list(COLUMNS))
    return frame, more


def export_alarms(conn: sa.Connection, query: AlarmQuery, operator: str, now: dt.datetime, *,
                  shown: dict | None = None, source: str | None = None) -> pd.DataFrame:
    """The events a history export writes, read in the caller's transaction, and the export in the operation log."""
    frame, _more = list_alarms(conn, query)
    audit.record(conn, operator=operator, action="alarm.export", target="alarm_event", ts=now,
                 after={"rows": len(frame), "shown": shown or {}}, source=source)
    return frame


def buildings(conn: sa.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(sa.select(building.c.id, building.c.name).order_by(building.c.name))
            .mappings()]


def rooms_of(conn: sa.Connection, building_id: int) -> list[dict]:
    return [dict(r) for r in conn.execute(sa.select(room.c.id, room.c.name).where(
        room.c.building_id == int(building_id)).order_by(room.c.name)).mappings()]


def opened_per_hour(conn: sa.Connection, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """How many alarm events opened in each UTC hour of [since, until) (the managers' dashboard counts them per
    local day: an hour bucket keeps the day boundary of every whole-hour zone): columns hour (naive UTC), kind, count."""
    hour = sa.func.date_trunc("hour", alarm_event.c.opened_at).label("hour")
    q = (sa.select(hour, alarm_event.c.kind, sa.func.count().label("count"))
         .where(alarm_event.c.opened_at >= since, alarm_event.c.opened_at < until)
         .group_by(hour, alarm_event.c.kind))
    return pd.DataFrame(conn.execute(q).mappings().all(), columns=["hour", "kind", "count"])
