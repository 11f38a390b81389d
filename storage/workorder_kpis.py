"""The SQL under the work-order KPIs and statistics tables (workorders.kpis): one aggregate read of per-order facts
(orders, their events, follow-up calls and the customers' ratings), tools and materials by class, and the online
slots of the workers' terminals; on DuckDB and PostgreSQL alike."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from storage.frames import read_frame
from storage.schema import (building, terminal_seen, work_order, work_order_confirmation, work_order_event, work_order_followup,
                            work_order_material, work_order_type)

DONE = ("completed", "approved", "archived")


def _events(since: dt.datetime | None) -> sa.Subquery:
    """Per order (created at or after `since`): the worker's first acceptance, arrivals on site (a return from hold
    is no new visit) and rejections at review. By state, not by action name: every move is an event with from and
    to states."""
    e = work_order_event.c
    q = sa.select(
        e.order_id,
        sa.func.min(sa.case((e.to_state == "accepted", e.ts))).label("accepted_at"),
        sa.func.sum(sa.case(((e.to_state == "on_site") & (e.from_state != "on_hold"), 1), else_=0)).label("visits"),
        sa.func.sum(sa.case((e.to_state == "rejected", 1), else_=0)).label("rejections"),
    ).group_by(e.order_id)
    if since is not None:
        q = q.where(e.order_id.in_(sa.select(work_order.c.id).where(work_order.c.created_at >= since)))
    return q.subquery("ev")


def _ratings() -> sa.Subquery:
    """Per order: the latest follow-up call's rating, else the rating the customer gave at completion."""
    f = work_order_followup.c
    latest = sa.select(f.order_id, f.satisfaction,
                       sa.func.row_number().over(partition_by=f.order_id,
                                                 order_by=(f.called_at.desc(), f.id.desc())).label("n")
                       ).where(f.satisfaction.is_not(None)).subquery("fu")
    called = sa.select(latest.c.order_id, latest.c.satisfaction).where(latest.c.n == 1).subquery("called")
    c = work_order_confirmation.c
    given = sa.select(c.order_id, c.rating).where((c.stage == "completion") & c.rating.is_not(None)).subquery("given")
    return called, given


def order_facts(conn: sa.Connection, since: dt.datetime | None = None) -> pd.DataFrame:
    """One row per order created at or after `since` (all when None): id, type, state, building, worker (operator
    id), account_id, meter_id, created_at, due_at, held_since, accepted_at (first), completed_at (latest; NULL unless
    the order stands completed, approved or archived), held_s, rejections, visits, satisfaction."""
    o = work_order.c
    ev = _events(since)
    called, given = _ratings()
    q = (sa.select(o.id, o.type, o.state, building.c.name.label("building"), o.assigned_to.label("worker"),
                   o.account_id, o.meter_id, o.created_at, o.due_at, o.held_since,
                   ev.c.accepted_at,
                   sa.case((o.state.in_(DONE), o.completed_at)).label("completed_at"),
                   o.held_seconds.label("held_s"),
                   sa.func.coalesce(ev.c.rejections, 0).label("rejections"),
                   sa.func.coalesce(ev.c.visits, 0).label("visits"),
                   sa.func.coalesce(called.c.satisfaction, given.c.rating).label("satisfaction"))
         .select_from(work_order.outerjoin(ev, ev.c.order_id == o.id)
                      .outerjoin(called, called.c.order_id == o.id)
                      .outerjoin(given, given.c.order_id == o.id)
                      .outerjoin(building, building.c.id == o.building_id)))
    if since is not None:
        q = q.where(o.created_at >= since)
    return read_frame(conn, q)


def items_by_class(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Tools (工器具领用), materials (材料分类) and paid services on the orders created in [start, end) that were not
    cancelled, by kind, class and item: kind, item_class, text_en, text_zh, unit, orders, quantity, amount."""
    m, o = work_order_material.c, work_order.c
    q = (sa.select(m.kind, m.item_class, m.text_en, m.text_zh, m.unit,
                   sa.func.count(sa.distinct(m.order_id)).label("orders"),
                   sa.func.sum(m.quantity).label("quantity"),
                   sa.func.sum(m.quantity * m.unit_price).label("amount"))
         .select_from(work_order_material.join(work_order, o.id == m.order_id))
         .where(o.created_at >= start, o.created_at < end, o.state != "cancelled")
         .group_by(m.kind, m.item_class, m.text_en, m.text_zh, m.unit)
         .order_by(m.kind, m.item_class, m.text_en))
    return pd.DataFrame(conn.execute(q).mappings().all(),
                        columns=["kind", "item_class", "text_en", "text_zh", "unit", "orders", "quantity", "amount"])


def order_types(conn: sa.Connection) -> list[dict]:
    """Every order type (key, name_en, name_zh), in the site's order."""
    t = work_order_type.c
    return [dict(r) for r in conn.execute(sa.select(t.key, t.name_en, t.name_zh).order_by(t.sort, t.key)).mappings()]


def seen_frame(conn: sa.Connection, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """The quarter hours (slot, naive UTC) each worker's phone was seen in [since, until), each once: operator, slot
    (storage.field.seen_slots as a frame, for a period of months)."""
    s = terminal_seen.c
    return read_frame(conn, sa.select(s.operator, s.slot).distinct().where(s.slot >= since, s.slot < until))
