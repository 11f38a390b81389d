"""The remote-command outbox: queue, pick per meter in order, move through states (alarms: storage.alarms)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from storage.engine import is_conflict, is_duckdb, is_unique_violation  # noqa: F401  (imported from here by billing)
from storage.purposes import QUEUEABLE
from storage.schema import bus, command, gateway, meter, meter_state
from storage.transitions import MONEY_KINDS  # noqa: F401  (read from here by the dispatcher)
from storage.transitions import COMMAND, TransitionRefused, transition

log = logging.getLogger(__name__)
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
def insert_command(conn: sa.Connection, *, meter_id: int, kind: str, purpose: str, payload: dict, counter: int,
                   operator: str | None, now: dt.datetime, batch_id: str | None = None,
                   ledger_entry_id: int | None = None, account_id: int | None = None) -> int:
    """Queue one command. `purpose` (storage.purposes.Purpose) decides what its settlement does; `account_id`
    names the account it was queued for (an opening, a closing, money); `batch_id` is only a label."""
    if purpose not in QUEUEABLE:
        raise ValueError(f"a command needs a known purpose ({', '.join(sorted(QUEUEABLE))}), not {purpose!r}")
    return conn.execute(command.insert().values(
        meter_id=meter_id, kind=kind, purpose=str(purpose), payload=json.dumps(payload, sort_keys=True),
        counter=counter, state="queued", attempts=0, operator=operator, batch_id=batch_id,
        ledger_entry_id=ledger_entry_id, account_id=account_id, created_at=now,
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


def move_command(conn: sa.Connection, command_id: int, state: str, **values) -> bool:
    """Move one command as storage.transitions.COMMAND allows from the state it is in now (read in this
    transaction); False, writing nothing, when it does not (someone else settled or moved it first)."""
    try:
        transition(conn, COMMAND, command_id, state, **values)
    except TransitionRefused as refused:
        log.info("%s", refused)
        return False
    return True


def count_attempt(conn: sa.Connection, command_id: int, now: dt.datetime) -> bool:
    """queued or sent -> sent, one attempt more: committed before the frame goes out."""
    return move_command(conn, command_id, "sent", attempts=command.c.attempts + 1, sent_at=now)


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


def commands_of_account(conn: sa.Connection, account_id: int, purpose: str, meter_id: int | None = None) -> list[dict]:
    """The commands queued for an account with this purpose (e.g. its closing's trips and refunds), oldest first."""
    q = sa.select(command).where(command.c.account_id == account_id, command.c.purpose == str(purpose))
    if meter_id is not None:
        q = q.where(command.c.meter_id == meter_id)
    return [dict(r) for r in conn.execute(q.order_by(command.c.id)).mappings()]


def commands_of_batch(conn: sa.Connection, batch_id: str) -> list[dict]:
    q = sa.select(command).where(command.c.batch_id == batch_id).order_by(command.c.id)
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
