"""The remote-command outbox: queue, pick per meter in order, move through states; alarms raised by commands."""
from __future__ import annotations

import datetime as dt
import json
import threading
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from storage.engine import is_conflict, is_duckdb, is_unique_violation  # noqa: F401  (imported from here by billing)
from storage.schema import alarm_event, bus, command, gateway, meter, meter_state

MONEY_KINDS = ("recharge", "refund")
UNFINISHED = ("queued", "sent")

# ---------------------------------------------------------------------------------------------
# Per-meter serialisation. Everything that hands out or renumbers a meter's counters runs inside
# meter_transaction: a process-wide lock per meter (DuckDB has one writing process, so this is the
# whole story there) plus SELECT ... FOR UPDATE on the meter row on PostgreSQL, which also
# serialises several web or collector processes.
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _meter_lock(meter_id: int) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(meter_id)
        if lock is None:
            lock = _locks[meter_id] = threading.Lock()
        return lock


@contextmanager
def meter_transaction(engine: sa.Engine, meter_id: int) -> Iterator[sa.Connection]:
    """One transaction holding the meter's lock (in-process and, on PostgreSQL, the row lock)."""
    with _meter_lock(meter_id):
        with engine.begin() as conn:
            if not is_duckdb(engine):
                conn.execute(sa.select(meter.c.id).where(meter.c.id == meter_id).with_for_update())
            yield conn


# ---------------------------------------------------------------------------------------------
def insert_command(conn: sa.Connection, *, meter_id: int, kind: str, payload: dict, counter: int,
                   operator: str | None, now: dt.datetime, batch_id: str | None = None,
                   ledger_entry_id: int | None = None) -> int:
    return conn.execute(command.insert().values(
        meter_id=meter_id, kind=kind, payload=json.dumps(payload, sort_keys=True), counter=counter, state="queued",
        attempts=0, operator=operator, batch_id=batch_id, ledger_entry_id=ledger_entry_id, created_at=now,
    ).returning(command.c.id)).scalar_one()


def next_command_seq(conn: sa.Connection, meter_id: int) -> int:
    """Above both the meter's last reported command sequence and every sequence already handed out."""
    read = conn.execute(sa.select(meter_state.c.command_seq).where(meter_state.c.meter_id == meter_id)).scalar()
    used = conn.execute(sa.select(sa.func.max(command.c.counter)).where(
        command.c.meter_id == meter_id, command.c.kind.not_in(MONEY_KINDS))).scalar()
    return max(read or 0, used or 0) + 1


def command_row(conn: sa.Connection, command_id: int) -> dict | None:
    row = conn.execute(sa.select(command).where(command.c.id == command_id)).mappings().first()
    return dict(row) if row else None


def command_of_entry(conn: sa.Connection, entry_id: int) -> dict | None:
    row = conn.execute(sa.select(command).where(command.c.ledger_entry_id == entry_id)
                       .order_by(command.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def meters_with_work(conn: sa.Connection, meter_ids: list[int] | None = None) -> list[int]:
    q = sa.select(command.c.meter_id).where(command.c.state.in_(UNFINISHED)).distinct()
    if meter_ids is not None:
        q = q.where(command.c.meter_id.in_(meter_ids))
    return sorted(conn.execute(q).scalars())


def head_command(conn: sa.Connection, meter_id: int) -> dict | None:
    """The meter's oldest unfinished command: commands go to a meter strictly in the order they were queued."""
    row = conn.execute(sa.select(command).where(command.c.meter_id == meter_id, command.c.state.in_(UNFINISHED))
                       .order_by(command.c.id).limit(1)).mappings().first()
    return dict(row) if row else None


def set_command_state(conn: sa.Connection, command_id: int, from_states: tuple[str, ...], state: str,
                      **values) -> bool:
    """Move one command if it is still in one of `from_states`; False if someone else moved it first."""
    res = conn.execute(command.update().where(command.c.id == command_id, command.c.state.in_(from_states))
                       .values(state=state, **values))
    return res.rowcount == 1


def count_attempt(conn: sa.Connection, command_id: int, now: dt.datetime) -> bool:
    res = conn.execute(command.update().where(command.c.id == command_id, command.c.state.in_(UNFINISHED))
                       .values(state="sent", attempts=command.c.attempts + 1, sent_at=now))
    return res.rowcount == 1


def shift_money_counters(conn: sa.Connection, meter_id: int, above: int) -> int:
    """Unfinished money commands of the meter after a failed one move down by one (counts stay consecutive)."""
    res = conn.execute(command.update().where(
        command.c.meter_id == meter_id, command.c.kind.in_(MONEY_KINDS), command.c.state == "queued",
        command.c.counter > above).values(counter=command.c.counter - 1))
    return res.rowcount


def expire_stale(conn: sa.Connection, before: dt.datetime) -> list[dict]:
    """Commands to expire: queued ones (never on the wire, or not delivered) older than `before`, and sent
    non-money ones (a resend would be refused as REPLAYED anyway). A sent money command is never expired:
    it is resent until the meter says APPLIED or ALREADY_APPLIED or refuses it."""
    q = sa.select(command).where(command.c.created_at < before, sa.or_(
        command.c.state == "queued",
        sa.and_(command.c.state == "sent", command.c.kind.not_in(MONEY_KINDS)))).order_by(command.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


def dispatch_targets(conn: sa.Connection, meter_ids: list[int]) -> dict[int, dict]:
    """Endpoint and unit of each meter (as poll_targets) keyed by meter id."""
    if not meter_ids:
        return {}
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address.label("meter_address"), meter.c.unit,
                   meter.c.profile, gateway.c.name.label("gateway"), gateway.c.host, gateway.c.framing,
                   gateway.c.timeout_s, gateway.c.retries, bus.c.bus_no, bus.c.port)
         .join_from(meter, bus).join(gateway, bus.c.gateway_id == gateway.c.id)
         .where(meter.c.id.in_(meter_ids)))
    return {r["meter_id"]: dict(r) for r in conn.execute(q).mappings()}


def commands_of_meter(conn: sa.Connection, meter_id: int, limit: int = 50) -> list[dict]:
    q = sa.select(command).where(command.c.meter_id == meter_id).order_by(command.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def commands_of_batch(conn: sa.Connection, batch_id: str) -> list[dict]:
    q = sa.select(command).where(command.c.batch_id == batch_id).order_by(command.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


# ---------------------------------------------------------------------------------------------
def open_alarm(conn: sa.Connection, meter_id: int | None, kind: str, level: int, message: str,
               now: dt.datetime) -> bool:
    """Open an alarm unless one of the same kind is already open for the meter."""
    exists = conn.execute(sa.select(alarm_event.c.id).where(
        alarm_event.c.meter_id == meter_id, alarm_event.c.kind == kind, alarm_event.c.closed_at.is_(None))
        .limit(1)).first()
    if exists:
        return False
    conn.execute(alarm_event.insert().values(meter_id=meter_id, kind=kind, level=level, opened_at=now,
                                             message=message[:300]))
    return True


def close_alarms(conn: sa.Connection, meter_id: int, kind: str, now: dt.datetime) -> int:
    return conn.execute(alarm_event.update().where(
        alarm_event.c.meter_id == meter_id, alarm_event.c.kind == kind, alarm_event.c.closed_at.is_(None))
        .values(closed_at=now)).rowcount


def alarm_by_id(conn: sa.Connection, alarm_id: int) -> dict | None:
    row = conn.execute(sa.select(alarm_event).where(alarm_event.c.id == alarm_id)).mappings().first()
    return dict(row) if row else None


def close_alarm_by_id(conn: sa.Connection, alarm_id: int, now: dt.datetime) -> int:
    """Close one open alarm; 0 when it was closed already (by the poll or another operator)."""
    return conn.execute(alarm_event.update().where(alarm_event.c.id == alarm_id, alarm_event.c.closed_at.is_(None))
                        .values(closed_at=now)).rowcount


def open_alarms(conn: sa.Connection, kind: str | None = None, meter_id: int | None = None) -> list[dict]:
    q = sa.select(alarm_event).where(alarm_event.c.closed_at.is_(None)).order_by(alarm_event.c.id)
    if kind:
        q = q.where(alarm_event.c.kind == kind)
    if meter_id is not None:
        q = q.where(alarm_event.c.meter_id == meter_id)
    return [dict(r) for r in conn.execute(q).mappings()]


@contextmanager
def meters_transaction(engine: sa.Engine, meter_ids: list[int]) -> Iterator[sa.Connection]:
    """meter_transaction over several meters, locked in id order (so two callers never deadlock)."""
    ids = sorted(set(meter_ids))
    locks = [_meter_lock(i) for i in ids]
    for lock in locks:
        lock.acquire()
    try:
        with engine.begin() as conn:
            if ids and not is_duckdb(engine):
                conn.execute(sa.select(meter.c.id).where(meter.c.id.in_(ids)).order_by(meter.c.id).with_for_update())
            yield conn
    finally:
        for lock in reversed(locks):
            lock.release()
