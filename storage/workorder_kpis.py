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
    ).where(e.to_state.in_(("accepted", "on_site", "rejected")),   # the only moves counted; an event that leaves the
            sa.or_(e.from_state.is_(None), e.from_state != e.to_state)  # state as it was (a material line added on
            ).group_by(e.order_id)                                      # site) is no move
    if since is not None:
        q = q.where(e.order_id.in_(sa.select(work_order.c.id).where(work_order.c.created_at >= since)))
    return q.subquery("ev")


def _ratings(since: dt.datetime | None) -> sa.Subquery:
    """Per order (created at or after `since`): the latest follow-up call's rating, else the rating the customer
    gave at completion."""
    f = work_order_followup.c
    latest = sa.select(f.order_id, f.satisfaction,
                       sa.func.row_number().over(partition_by=f.order_id,
                                                 order_by=(f.called_at.desc(), f.id.desc())).label("n")
                       ).where(f.satisfaction.is_not(None))
    if since is not None:
        latest = latest.where(f.order_id.in_(sa.select(work_order.c.id).where(work_order.c.created_at >= since)))
    latest = latest.subquery("fu")
    called = sa.select(latest.c.order_id, latest.c.satisfaction).where(latest.c.n == 1).subquery("called")
    c = work_order_confirmation.c
    given = sa.select(c.order_id, c.rating).where((c.stage == "completion") & c.rating.is_not(None)).subquery("given")
    return called, given


def order_facts(conn: sa.Connection, since: dt.datetime | None = None) -> pd.DataFrame:
    """One row per order created at or after `since` (all when None): id, type, state, building, worker (operator
    id), account_id, meter_id, created_at, due_at, held_since, accepted_at (first), completed_at (latest; NULL unless
    the order stands completed, approved or archived), held_s, rejections, visits, satisfaction."""
    return read_frame(conn, _facts_query(since))


def _facts_query(since: dt.datetime | None) -> sa.Select:
    o = work_order.c
    ev = _events(since)
    called, given = _ratings(since)
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
    return q


def time_range(conn: sa.Connection, since: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The earliest and latest creation or completion time of the orders created at or after `since` (the months
    the grouped facts must name)."""
    o = work_order.c
    row = conn.execute(sa.select(sa.func.min(o.created_at), sa.func.max(o.created_at), sa.func.min(o.completed_at),
                                 sa.func.max(o.completed_at)).where(o.created_at >= since)).one()
    times = [t for t in row if t is not None]
    return (min(times), max(times)) if times else (None, None)


def _month(t: sa.ColumnElement, bounds: list[tuple[int, dt.datetime]]) -> sa.ColumnElement:
    """The site's month code of a stored time: `bounds` are (code, the month's first moment in UTC), ascending, the
    first at or before every time asked about (time_range)."""
    whens = [(t.is_(None), sa.null())]
    whens += [(t < nxt, sa.literal(code)) for (code, _), (_, nxt) in zip(bounds, bounds[1:])]
    return sa.case(*whens, else_=sa.literal(bounds[-1][0]))


def _seconds(delta: sa.ColumnElement) -> sa.ColumnElement:
    return sa.extract("epoch", delta)


def fact_groups(conn: sa.Connection, since: dt.datetime, end: dt.datetime, now: dt.datetime,
                bounds: list[tuple[int, dt.datetime]], reopen_days: int, satisfied: int,
                open_states: tuple[str, ...]) -> list[dict]:
    """The per-order facts (order_facts, orders created at or after `since`) summed in the database by type, the
    site's month of creation and of completion, and whether the order was created before `end` (in the period): a
    few hundred rows whatever the number of orders. workorders.kpis turns them into the KPIs and statistics tables
    and holds the definitions (prepare_facts, compute_kpis, orders_by_type: the same figures from a frame, the
    reference the tests compare this with). Columns: type, created_month, completed_month, in_period, orders,
    cancelled, live, completed (live and completed), open (open, not on hold), on_hold, with_due (live with a
    deadline), overdue, done_hours_s / done_hours_n (seconds from creation to completion less the time on hold, of
    the completed, any state), rated, satisfied, visits, accepted, response_s, first_time, reopened; as dicts of
    plain numbers (sums arrive as int, float or Decimal depending on the engine)."""
    f0 = _facts_query(since).subquery("f0")
    o2 = work_order.c
    customer = lambda c: sa.case((c.account_id.is_not(None), c.account_id * 2), else_=c.meter_id * 2 + 1)  # noqa: E731
    later = sa.select(sa.literal(1)).select_from(work_order).where(
        o2.created_at >= since, customer(o2) == customer(f0.c), o2.type == f0.c.type,
        o2.created_at > f0.c.completed_at,
        o2.created_at <= f0.c.completed_at + dt.timedelta(days=reopen_days))
    reopened = sa.and_(f0.c.completed_at.is_not(None), sa.or_(f0.c.account_id.is_not(None),
                                                               f0.c.meter_id.is_not(None)), later.exists())
    # the reopen test once per order (two flags read it)
    f = sa.select(*f0.c, sa.case((reopened, 1), else_=0).label("back")).subquery("f")
    back = f.c.back == 1
    now_p = sa.bindparam("now_", now, type_=sa.DateTime)
    live = f.c.state != "cancelled"
    done = live & f.c.completed_at.is_not(None)
    # an order on hold now: its clock is paused, so its deadline moves on by the time held so far
    due = sa.case((f.c.state == "on_hold", f.c.due_at + (sa.func.greatest(now_p, f.c.held_since) - f.c.held_since)),
                  else_=f.c.due_at)
    late = live & f.c.due_at.is_not(None) & (sa.func.coalesce(f.c.completed_at, now_p) > due)
    flag = lambda cond: sa.case((cond, 1), else_=0)  # noqa: E731
    work_s = _seconds(f.c.completed_at - f.c.created_at) - sa.func.coalesce(f.c.held_s, 0)
    # per order first (the month codes, the flags), then summed: PostgreSQL groups by plain columns only when an
    # expression carries bound values
    per = sa.select(
        f.c.type, _month(f.c.created_at, bounds).label("created_month"),
        _month(f.c.completed_at, bounds).label("completed_month"),
        flag(f.c.created_at < end).label("in_period"),
        flag(~live).label("cancelled"), flag(live).label("live"), flag(done).label("completed"),
        flag(f.c.state.in_([s for s in open_states if s != "on_hold"])).label("open"),
        flag(f.c.state == "on_hold").label("on_hold"),
        flag(live & f.c.due_at.is_not(None)).label("with_due"), flag(late).label("overdue"),
        work_s.label("work_s"),
        flag(live & f.c.satisfaction.is_not(None)).label("rated"),
        flag(live & (f.c.satisfaction >= satisfied)).label("satisfied"),
        sa.case((live, f.c.visits), else_=0).label("visits"),
        flag(live & f.c.accepted_at.is_not(None)).label("accepted"),
        sa.case((live, _seconds(f.c.accepted_at - f.c.created_at))).label("response_s"),
        flag(done & (f.c.rejections == 0) & ~back).label("first_time"),
        flag(done & back).label("reopened"),
    ).subquery("per")
    p = per.c
    dims = (p.type, p.created_month, p.completed_month, p.in_period)
    sums = ("cancelled", "live", "completed", "open", "on_hold", "with_due", "overdue", "rated", "satisfied",
            "visits", "accepted", "first_time", "reopened")
    q = sa.select(*dims, sa.func.count().label("orders"), *(sa.func.sum(p[c]).label(c) for c in sums),
                  sa.func.sum(p.work_s).label("done_hours_s"), sa.func.count(p.work_s).label("done_hours_n"),
                  sa.func.sum(p.response_s).label("response_s")).group_by(*dims)
    return [dict(r) for r in conn.execute(q).mappings()]


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
