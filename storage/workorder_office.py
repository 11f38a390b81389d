"""The SQL of the work-order office (workorders.office, workorders.demo): customers' follow-up calls, the review
queue, and bulk writes of whole frames of orders, events and their parts (the demo's 90 days, the benchmark)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from storage.engine import is_duckdb
from storage.schema import operator, work_order, work_order_followup

FOLLOWUP_COLUMNS = ("id", "order_id", "called_at", "called_by", "outcome", "satisfaction", "note", "recorded_by",
                    "recorded_at")


def insert_followup(conn: sa.Connection, **values) -> int:
    return conn.execute(work_order_followup.insert().values(**values).returning(work_order_followup.c.id)).scalar_one()


def followups_of(conn: sa.Connection, order_id: int) -> list[dict]:
    """An order's follow-up calls, latest first."""
    f = work_order_followup.c
    return [dict(r) for r in conn.execute(sa.select(work_order_followup).where(f.order_id == order_id)
                                          .order_by(f.called_at.desc(), f.id.desc())).mappings()]


def review_queue(conn: sa.Connection, limit: int = 500) -> list[dict]:
    """Orders waiting for the office: completed ones to approve or reject (oldest completion first), then approved
    ones with no follow-up call yet (to call the customer, then archive)."""
    o, f = work_order.c, work_order_followup.c
    called = sa.select(f.order_id).distinct().subquery("called")
    q = (sa.select(o.id, o.number, o.type, o.priority, o.state, o.customer_name, o.completed_at, o.due_at,
                   o.closed_at, operator.c.username.label("worker"),
                   (called.c.order_id.is_not(None)).label("called"))
         .select_from(work_order.outerjoin(operator, operator.c.id == o.assigned_to)
                      .outerjoin(called, called.c.order_id == o.id))
         .where(o.state.in_(("completed", "approved")))
         .order_by(sa.case((o.state == "completed", 0), else_=1), o.completed_at, o.id)
         .limit(limit))
    return [dict(r) for r in conn.execute(q).mappings()]


def next_ids(conn: sa.Connection, table: sa.Table, n: int) -> list[int]:
    """`n` ids from `table`'s own sequence, so rows written in bulk never collide with rows added one by one."""
    if n <= 0:
        return []
    source = "range(:n)" if is_duckdb(conn.engine) else "generate_series(1, :n)"
    return list(conn.execute(sa.text(f"SELECT nextval('{table.name}_id_seq') FROM {source}"), {"n": n}).scalars())


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Every row of `frame` (columns named as `table`'s) into `table`, in the caller's transaction: DuckDB scans
    the frame in place; PostgreSQL takes one multi-row INSERT (psycopg's insertmanyvalues). Without an id column,
    a table with an id takes the next ones of its own sequence (so later rows added one by one never collide)."""
    if frame.empty:
        return 0
    columns = [c for c in frame.columns if c in table.c]
    numbered = "id" in table.c and "id" not in columns and isinstance(table.c.id.default, sa.Sequence)
    if numbered and not is_duckdb(conn.engine):
        frame = frame.assign(id=next_ids(conn, table, len(frame)))
        columns.append("id")
        numbered = False
    if is_duckdb(conn.engine):
        raw = conn.connection.driver_connection
        name = f"_wl_{table.name}_frame"
        raw.register(name, frame[columns])
        try:
            quoted = ", ".join(f'"{c}"' for c in columns)
            into, select = (f"id, {quoted}", f"nextval('{table.c.id.default.name}'), {quoted}") if numbered \
                else (quoted, quoted)
            raw.execute(f"INSERT INTO {table.name} ({into}) SELECT {select} FROM {name}")
        finally:
            raw.unregister(name)
    else:
        rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
        conn.execute(table.insert(), rows)
    return len(frame)


def seeded_before(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar_one() > 0


def latest_order_time(conn: sa.Connection) -> dt.datetime | None:
    return conn.execute(sa.select(sa.func.max(work_order.c.created_at))).scalar_one()


def demo_customers(conn: sa.Connection) -> pd.DataFrame:
    """Open accounts with a meter: account_id, meter_id, room_id, building_id, area_id, customer_name,
    customer_phone, room (the demo's orders are theirs)."""
    from storage.schema import account, account_meter, area_meter, meter, room
    a, am, m, r = account.c, account_meter.c, meter.c, room.c
    q = (sa.select(a.id.label("account_id"), m.id.label("meter_id"), r.id.label("room_id"),
                   r.building_id, area_meter.c.area_id, a.holder_name.label("customer_name"),
                   a.phone.label("customer_phone"), r.name.label("room"))
         .select_from(account.join(account_meter, (am.account_id == a.id) & am.removed_at.is_(None))
                      .join(meter, m.id == am.meter_id).join(room, r.id == a.room_id)
                      .outerjoin(area_meter, area_meter.c.meter_id == m.id))
         .where(a.status == "open").order_by(a.id, m.id))
    return pd.DataFrame(conn.execute(q).mappings().all(),
                        columns=["account_id", "meter_id", "room_id", "building_id", "area_id", "customer_name",
                                 "customer_phone", "room"])


def card_items(conn: sa.Connection) -> pd.DataFrame:
    """Every operating card's items (type, seq, kind, texts, class, unit, quantity, unit price, needs_value)."""
    from storage.schema import card_item
    c = card_item.c
    q = sa.select(c.type, c.seq, c.kind, c.text_en, c.text_zh, c.item_class, c.unit, c.quantity, c.unit_price,
                  c.needs_value).order_by(c.type, c.seq)
    return pd.DataFrame(conn.execute(q).mappings().all(),
                        columns=["type", "seq", "kind", "text_en", "text_zh", "item_class", "unit", "quantity",
                                 "unit_price", "needs_value"])
