"""The SQL of work orders (issue 12, the core): types and cards, orders, their steps, materials, fees and events,
workers and their districts, the search, and what the automatic orders and the deadline job look for."""
from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as upsert  # DuckDB takes PostgreSQL's ON CONFLICT too

from storage.matching import contains_text, equals_text
from storage.schema import (account, account_meter, alarm_event, area_meter, building, card_item, command, evidence,
                            meter,
                            notification, operator, operator_role, room, transformer_area, work_order, work_order_cause,
                            work_order_event, work_order_fee,
                            work_order_limit, work_order_material, work_order_step, work_order_type, worker,
                            worker_district)

_ORDER_SEQ = sa.Sequence("work_order_id_seq")


# --- types, cards, limits ---------------------------------------------------------------------------
def insert_missing_types(conn: sa.Connection, rows: list[dict]) -> list[str]:
    """Insert the types not there yet (a site's changes to a seeded one are kept); their keys."""
    have = set(conn.execute(sa.select(work_order_type.c.key)).scalars())
    new = [r for r in rows if r["key"] not in have]
    if new:
        conn.execute(work_order_type.insert(), new)
    return [r["key"] for r in new]


def save_type(conn: sa.Connection, key: str, row: dict, sort: int) -> None:
    """Insert the type (at `sort`) or update its names and flags."""
    stmt = upsert(work_order_type).values(key=key, sort=sort, **row)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={k: getattr(stmt.excluded, k) for k in row}))


def insert_card_items(conn: sa.Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(card_item.insert(), rows)


def replace_card(conn: sa.Connection, type_key: str, rows: list[dict]) -> None:
    """A type's card items replaced by `rows` (orders copied theirs at creation: they keep them)."""
    conn.execute(card_item.delete().where(card_item.c.type == type_key))
    insert_card_items(conn, rows)


def order_types(conn: sa.Connection, active_only: bool = True) -> list[dict]:
    q = sa.select(work_order_type).order_by(work_order_type.c.sort, work_order_type.c.key)
    if active_only:
        q = q.where(work_order_type.c.active)
    return [dict(r) for r in conn.execute(q).mappings()]


def order_type(conn: sa.Connection, key: str) -> dict | None:
    row = conn.execute(sa.select(work_order_type).where(equals_text(work_order_type.c.key, key))).mappings().first()
    return dict(row) if row else None


def card_items(conn: sa.Connection, type_key: str) -> list[dict]:
    q = sa.select(card_item).where(card_item.c.type == type_key).order_by(card_item.c.seq)
    return [dict(r) for r in conn.execute(q).mappings()]


def limit_hours(conn: sa.Connection, type_key: str, priority: str):
    """The type's own time limit for the priority (Decimal hours), or None."""
    return conn.execute(sa.select(work_order_limit.c.hours).where(
        work_order_limit.c.type == type_key, work_order_limit.c.priority == priority)).scalar()


def set_limit_hours(conn: sa.Connection, type_key: str, priority: str, hours) -> None:
    stmt = upsert(work_order_limit).values(type=type_key, priority=priority, hours=hours)
    conn.execute(stmt.on_conflict_do_update(index_elements=["type", "priority"], set_={"hours": stmt.excluded.hours}))


# --- orders -----------------------------------------------------------------------------------------
def next_order_id(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(_ORDER_SEQ.next_value())).scalar_one())


def insert_order(conn: sa.Connection, values: dict) -> int | None:
    """Insert an order; None (nothing written) when its external id or open cause is taken already, also by a
    concurrent transaction (ON CONFLICT DO NOTHING: PostgreSQL waits for the other and then skips)."""
    stmt = upsert(work_order).values(**values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(work_order.c.id)).scalar()


def order(conn: sa.Connection, order_id: int, *, for_update: bool = False) -> dict | None:
    q = sa.select(work_order).where(work_order.c.id == order_id)
    if for_update and conn.engine.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def order_by(conn: sa.Connection, *, number: str | None = None, external_id: str | None = None) -> dict | None:
    col, text = (work_order.c.number, number) if number is not None else (work_order.c.external_id, external_id)
    row = conn.execute(sa.select(work_order).where(equals_text(col, text or ""))).mappings().first()
    return dict(row) if row else None


def take_cause(conn: sa.Connection, cause_key: str, order_id: int) -> bool:
    """Hold `cause_key` for an open order; False (nothing written) when an open order has it already, also one a
    concurrent transaction is writing (PostgreSQL waits for it; DuckDB fails the later commit, which retries)."""
    stmt = upsert(work_order_cause).values(cause_key=cause_key, order_id=order_id).on_conflict_do_nothing()
    return conn.execute(stmt.returning(work_order_cause.c.order_id)).scalar() is not None


def release_causes(conn: sa.Connection, order_id: int) -> None:
    conn.execute(work_order_cause.delete().where(work_order_cause.c.order_id == order_id))


def update_order(conn: sa.Connection, order_id: int, **values) -> None:
    conn.execute(work_order.update().where(work_order.c.id == order_id).values(**values))


def insert_event(conn: sa.Connection, **values) -> int:
    return conn.execute(work_order_event.insert().values(**values).returning(work_order_event.c.id)).scalar_one()


def events(conn: sa.Connection, order_id: int) -> list[dict]:
    q = (sa.select(work_order_event, operator.c.display_name.label("worker_name"))
         .select_from(work_order_event.outerjoin(operator, operator.c.id == work_order_event.c.worker_id))
         .where(work_order_event.c.order_id == order_id).order_by(work_order_event.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def copy_card(conn: sa.Connection, order_id: int, items: list[dict]) -> None:
    """The card's steps and hazards into the order's steps; its tools, materials and services into its materials."""
    steps = [dict(order_id=order_id, seq=i["seq"], kind=i["kind"], text_en=i["text_en"], text_zh=i["text_zh"],
                  needs_value=i["needs_value"]) for i in items if i["kind"] in ("step", "hazard")]
    mats = [dict(order_id=order_id, seq=i["seq"], kind=i["kind"], text_en=i["text_en"], text_zh=i["text_zh"],
                 item_class=i["item_class"], unit=i["unit"], quantity=i["quantity"] or 0,
                 unit_price=i["unit_price"] or 0) for i in items if i["kind"] in ("tool", "material", "service")]
    if steps:
        conn.execute(work_order_step.insert(), steps)
    if mats:
        conn.execute(work_order_material.insert(), mats)


# An order's lines: its steps (copied from the card's steps and hazards) and its materials (tools, materials, services).
LINES = {"step": work_order_step, "material": work_order_material}


def lines(conn: sa.Connection, kind: str, order_id: int) -> list[dict]:
    table = LINES[kind]
    q = sa.select(table).where(table.c.order_id == order_id).order_by(table.c.seq)
    return [dict(r) for r in conn.execute(q).mappings()]


def line(conn: sa.Connection, kind: str, line_id: int) -> dict | None:
    table = LINES[kind]
    row = conn.execute(sa.select(table).where(table.c.id == line_id)).mappings().first()
    return dict(row) if row else None


def update_line(conn: sa.Connection, kind: str, line_id: int, **values) -> None:
    table = LINES[kind]
    conn.execute(table.update().where(table.c.id == line_id).values(**values))


def add_material(conn: sa.Connection, order_id: int, **values) -> int:
    seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(work_order_material.c.seq), 0))
                       .where(work_order_material.c.order_id == order_id)).scalar_one()
    return conn.execute(work_order_material.insert().values(order_id=order_id, seq=seq + 1, **values)
                        .returning(work_order_material.c.id)).scalar_one()


def delete_material(conn: sa.Connection, line_id: int) -> None:
    conn.execute(work_order_material.delete().where(work_order_material.c.id == line_id))


def card_item_row(conn: sa.Connection, item_id: int) -> dict | None:
    row = conn.execute(sa.select(card_item).where(card_item.c.id == item_id)).mappings().first()
    return dict(row) if row else None


def insert_fee(conn: sa.Connection, **values) -> int:
    return conn.execute(work_order_fee.insert().values(**values).returning(work_order_fee.c.id)).scalar_one()


def fees(conn: sa.Connection, order_id: int) -> list[dict]:
    q = sa.select(work_order_fee).where(work_order_fee.c.order_id == order_id).order_by(work_order_fee.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


# --- customers and places ----------------------------------------------------------------------------
def account_place(conn: sa.Connection, account_id: int) -> dict | None:
    """An account with its room, building, area and first live meter (the order's customer and district)."""
    m = (sa.select(account_meter.c.meter_id).where(account_meter.c.account_id == account.c.id,
                                                     account_meter.c.removed_at.is_(None))
         .order_by(account_meter.c.id).limit(1).scalar_subquery())
    q = (sa.select(account.c.id.label("account_id"), account.c.holder_name, account.c.phone, account.c.status,
                   account.c.room_id, m.label("meter_id"))
         .where(account.c.id == account_id))
    return _with_place(conn, q)


def meter_place(conn: sa.Connection, address: str) -> dict | None:
    """A meter (by its 12-digit number) with its account, room, building and area."""
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.room_id, account_meter.c.account_id, account.c.holder_name,
                   account.c.phone, account.c.status)
         .select_from(meter.outerjoin(account_meter, sa.and_(account_meter.c.meter_id == meter.c.id,
                                                             account_meter.c.removed_at.is_(None)))
                      .outerjoin(account, account.c.id == account_meter.c.account_id))
         .where(equals_text(meter.c.address, address)))
    return _with_place(conn, q)


def meter_place_by_id(conn: sa.Connection, meter_id: int) -> dict | None:
    address = conn.execute(sa.select(meter.c.address).where(meter.c.id == meter_id)).scalar()
    return meter_place(conn, address) if address else None


def _with_place(conn: sa.Connection, q) -> dict | None:
    """The first row of `q` (a customer: meter_id, room_id ...) with its room, building and area."""
    row = conn.execute(q).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out.update(_place(conn, out["meter_id"], out["room_id"]))
    return out


def _place(conn: sa.Connection, meter_id: int | None, room_id: int | None) -> dict:
    area_id = None
    if meter_id is not None:
        row = conn.execute(sa.select(meter.c.room_id, area_meter.c.area_id, meter.c.address)
                           .select_from(meter.outerjoin(area_meter, area_meter.c.meter_id == meter.c.id))
                           .where(meter.c.id == meter_id)).first()
        if row is not None:
            room_id = room_id or row.room_id
            area_id = row.area_id
    b = None
    if room_id is not None:
        b = conn.execute(sa.select(room.c.building_id, room.c.name, building.c.name.label("building_name"))
                         .select_from(room.join(building, building.c.id == room.c.building_id))
                         .where(room.c.id == room_id)).first()
    if area_id is None and b is not None:
        area_id = conn.execute(sa.select(transformer_area.c.id).where(
            transformer_area.c.building_id == b.building_id).order_by(transformer_area.c.id).limit(1)).scalar()
    return {"room_id": room_id, "building_id": b.building_id if b else None, "area_id": area_id,
            "room_name": b.name if b else None, "building_name": b.building_name if b else None}


def all_districts(conn: sa.Connection, kind: str) -> dict[int, str]:
    table = building if kind == "building" else transformer_area
    return dict(conn.execute(sa.select(table.c.id, table.c.name).order_by(table.c.name, table.c.id)).all())


def district_names(conn: sa.Connection, kind: str, ids: Iterable[int]) -> dict[int, str]:
    table = building if kind == "building" else transformer_area
    ids = list(ids)
    if not ids:
        return {}
    return dict(conn.execute(sa.select(table.c.id, table.c.name).where(table.c.id.in_(ids))).all())


# --- workers -----------------------------------------------------------------------------------------
def operator_by_username(conn: sa.Connection, username: str) -> dict | None:
    row = conn.execute(sa.select(operator.c.id, operator.c.username, operator.c.display_name, operator.c.language,
                                 operator.c.active)
                       .where(equals_text(operator.c.username, username))).mappings().first()
    return dict(row) if row else None


def workers(conn: sa.Connection, *, available_only: bool = False) -> list[dict]:
    """Every operator with the worker role (worker row or not), with availability, location and districts."""
    q = (sa.select(operator.c.id.label("operator_id"), operator.c.username, operator.c.display_name,
                   operator.c.language, operator.c.active, worker.c.phone,
                   sa.func.coalesce(worker.c.available, sa.true()).label("available"),
                   worker.c.lat, worker.c.lon, worker.c.located_at)
         .select_from(operator.join(operator_role, sa.and_(operator_role.c.operator_id == operator.c.id,
                                                           operator_role.c.role == "worker"))
                      .outerjoin(worker, worker.c.operator_id == operator.c.id))
         .where(operator.c.active).order_by(operator.c.username))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    if available_only:
        rows = [r for r in rows if r["available"]]
    dist: dict[int, list[tuple[str, int]]] = {}
    for r in conn.execute(sa.select(worker_district)).mappings():
        dist.setdefault(r["operator_id"], []).append((r["district_kind"], r["district_id"]))
    for r in rows:
        r["districts"] = sorted(dist.get(r["operator_id"], []))
    return rows


def worker_districts(conn: sa.Connection, operator_id: int) -> list[tuple[str, int]]:
    q = sa.select(worker_district.c.district_kind, worker_district.c.district_id).where(
        worker_district.c.operator_id == operator_id)
    return sorted((k, i) for k, i in conn.execute(q).all())


def upsert_worker(conn: sa.Connection, operator_id: int, **values) -> None:
    stmt = upsert(worker).values(operator_id=operator_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["operator_id"],
                                            set_={k: getattr(stmt.excluded, k) for k in values}) if values
                 else stmt.on_conflict_do_nothing())


def set_districts(conn: sa.Connection, operator_id: int, districts: Iterable[tuple[str, int]]) -> None:
    conn.execute(worker_district.delete().where(worker_district.c.operator_id == operator_id))
    rows = [dict(operator_id=operator_id, district_kind=k, district_id=i) for k, i in sorted(set(districts))]
    if rows:
        conn.execute(worker_district.insert(), rows)


def open_load(conn: sa.Connection) -> dict[int, int]:
    """Open orders per assigned worker (dispatch prefers the less loaded of equally near workers)."""
    q = (sa.select(work_order.c.assigned_to, sa.func.count()).where(
        work_order.c.assigned_to.is_not(None),
        work_order.c.state.in_(("dispatched", "accepted", "on_site", "rejected")))
         .group_by(work_order.c.assigned_to))
    return dict(conn.execute(q).all())


# --- search ------------------------------------------------------------------------------------------
ORDER_NUMBER = re.compile(r"WO[0-9]{8}-[0-9]{6,9}")
SEARCH_COLUMNS = ("id", "number", "type", "priority", "state", "source", "account_id", "meter_id", "customer_name",
                  "pole_number", "description", "due_at", "held_since", "assigned_to", "created_at", "completed_at",
                  "building_id", "area_id")


def search_orders(conn: sa.Connection, *, text: str | None = None, created_from: dt.datetime | None = None,
                  created_to: dt.datetime | None = None, states: Iterable[str] | None = None,
                  types: Iterable[str] | None = None, assigned_to: int | None = None,
                  districts: Iterable[tuple[str, int]] | None = None, limit: int = 500) -> list[dict]:
    """Orders by number, customer name, account number, meter number or pole number (one text, literal
    substring; an account number matches whole), created within [from, to), newest first."""
    wo = work_order
    q = (sa.select(*[wo.c[c] for c in SEARCH_COLUMNS], meter.c.address.label("meter_address"),
                   operator.c.display_name.label("worker_name"), building.c.name.label("building_name"))
         .select_from(wo.outerjoin(meter, meter.c.id == wo.c.meter_id)
                      .outerjoin(operator, operator.c.id == wo.c.assigned_to)
                      .outerjoin(building, building.c.id == wo.c.building_id)))
    if text and ORDER_NUMBER.fullmatch(text.upper()):
        q = q.where(wo.c.number == text.upper())        # a whole order number: the unique key, not a scan
    elif text:
        hits = [contains_text(wo.c.number, text, any_case=True), contains_text(wo.c.customer_name, text, any_case=True),
                contains_text(meter.c.address, text), contains_text(wo.c.pole_number, text, any_case=True)]
        if text.isascii() and text.isdigit() and len(text) <= 9:
            hits.append(wo.c.account_id == int(text))
        q = q.where(sa.or_(*hits))
    if created_from is not None:
        q = q.where(wo.c.created_at >= created_from)
    if created_to is not None:
        q = q.where(wo.c.created_at < created_to)
    if states:
        q = q.where(wo.c.state.in_(list(states)))
    if types:
        q = q.where(wo.c.type.in_(list(types)))
    if assigned_to is not None:
        q = q.where(wo.c.assigned_to == assigned_to)
    if districts is not None:
        q = q.where(_in_districts(list(districts)))
    q = q.order_by(wo.c.created_at.desc(), wo.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def _in_districts(districts: list[tuple[str, int]]):
    b = [i for k, i in districts if k == "building"]
    a = [i for k, i in districts if k == "area"]
    return sa.or_(work_order.c.building_id.in_(b) if b else sa.false(),
                  work_order.c.area_id.in_(a) if a else sa.false())


def worker_orders(conn: sa.Connection, operator_id: int, states: Iterable[str]) -> list[dict]:
    """A worker's orders in `states`, soonest due first."""
    q = (sa.select(work_order, meter.c.address.label("meter_address"), building.c.name.label("building_name"),
                   room.c.name.label("room_name"))
         .select_from(work_order.outerjoin(meter, meter.c.id == work_order.c.meter_id)
                      .outerjoin(building, building.c.id == work_order.c.building_id)
                      .outerjoin(room, room.c.id == work_order.c.room_id))
         .where(work_order.c.assigned_to == operator_id, work_order.c.state.in_(list(states)))
         .order_by(work_order.c.due_at, work_order.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


# --- what the automatic orders and the deadline job look for -----------------------------------------
def open_meter_alarms_since(conn: sa.Connection, kind: str, opened_before: dt.datetime) -> list[dict]:
    """Open alarm events of `kind` on meters opened at or before `opened_before`."""
    q = (sa.select(alarm_event).where(alarm_event.c.kind == kind, alarm_event.c.subject_kind == "meter",
                                      alarm_event.c.open_key.is_not(None), alarm_event.c.opened_at <= opened_before)
         .order_by(alarm_event.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def orders_due_by(conn: sa.Connection, moment: dt.datetime, states: Iterable[str],
                  due_after: dt.datetime | None = None) -> list[dict]:
    """Orders in `states` due at or before `moment` (and after `due_after`), with their worker's phone and
    language."""
    q = (sa.select(work_order.c.id, work_order.c.number, work_order.c.type, work_order.c.due_at,
                   work_order.c.assigned_to, worker.c.phone.label("worker_phone"),
                   operator.c.language.label("worker_language"))
         .select_from(work_order.outerjoin(worker, worker.c.operator_id == work_order.c.assigned_to)
                      .outerjoin(operator, operator.c.id == work_order.c.assigned_to))
         .where(work_order.c.state.in_(list(states)), work_order.c.due_at <= moment)
         .order_by(work_order.c.due_at))
    if due_after is not None:
        q = q.where(work_order.c.due_at > due_after)
    return [dict(r) for r in conn.execute(q).mappings()]


def existing_episodes(conn: sa.Connection, episodes: list[str]) -> set[str]:
    """Which of these notification episodes were queued already."""
    found: set[str] = set()
    for i in range(0, len(episodes), 1000):
        chunk = episodes[i:i + 1000]
        found |= set(conn.execute(sa.select(notification.c.episode).where(notification.c.episode.in_(chunk))).scalars())
    return found


def photo_count(conn: sa.Connection, order_id: int) -> int:
    """Photos kept as the order's evidence (types with photo_required need one to complete)."""
    return conn.execute(sa.select(sa.func.count()).select_from(evidence).where(
        evidence.c.order_id == order_id, evidence.c.kind == "photo")).scalar_one()


def alarms_with_orders(conn: sa.Connection, alarm_ids: Iterable[int]) -> set[int]:
    ids = list(alarm_ids)
    if not ids:
        return set()
    return set(conn.execute(sa.select(work_order.c.alarm_id).where(work_order.c.alarm_id.in_(ids))).scalars())


def taken_causes(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.select(work_order_cause.c.cause_key)).scalars())
