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


def insert_commands(conn: sa.Connection, commands: list[dict]) -> list[int]:
    """insert_command for many commands (each a dict of insert_command's keywords) in one statement; their ids
    in the same order."""
    rows = []
    for c in commands:
        if c["purpose"] not in QUEUEABLE:
            raise ValueError(f"a command needs a known purpose ({', '.join(sorted(QUEUEABLE))}), not {c['purpose']!r}")
        rows.append({"meter_id": c["meter_id"], "kind": c["kind"], "purpose": str(c["purpose"]),
                     "payload": json.dumps(c["payload"], sort_keys=True), "counter": c["counter"], "state": "queued",
                     "attempts": 0, "operator": c.get("operator"), "batch_id": c.get("batch_id"),
                     "ledger_entry_id": c.get("ledger_entry_id"), "account_id": c.get("account_id"),
                     "created_at": c["now"]})
    if not rows:
        return []
    return list(conn.execute(command.insert().returning(command.c.id, sort_by_parameter_order=True), rows).scalars())


def next_command_seqs(conn: sa.Connection, meter_ids: list[int]) -> dict[int, int]:
    """next_command_seq of many meters in two statements."""
    ids = sorted({int(i) for i in meter_ids})
    read: dict[int, int] = {}
    used: dict[int, int] = {}
    for i in range(0, len(ids), 1000):
        part = ids[i:i + 1000]
        read.update(conn.execute(sa.select(meter_state.c.meter_id, meter_state.c.command_seq)
                                 .where(meter_state.c.meter_id.in_(part))).all())
        used.update(conn.execute(sa.select(command.c.meter_id, sa.func.max(command.c.counter))
                                 .where(command.c.meter_id.in_(part), command.c.kind.not_in(MONEY_KINDS))
                                 .group_by(command.c.meter_id)).all())
    return {m: max(read.get(m) or 0, used.get(m) or 0) + 1 for m in ids}


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


def head_commands(conn: sa.Connection, meter_ids: list[int] | None = None) -> dict[int, tuple[dict, int]]:
    """Each meter's head command (head_command) and how many unfinished commands it has, for every meter with
    work (or these meters): one query for a whole dispatch run instead of one per meter."""
    q = sa.select(command).where(command.c.state.in_(UNFINISHED)).order_by(command.c.id)
    if meter_ids is not None:
        q = q.where(command.c.meter_id.in_(meter_ids))
    heads: dict[int, tuple[dict, int]] = {}
    for row in conn.execute(q).mappings():
        mid = row["meter_id"]
        head = heads.get(mid)
        heads[mid] = (dict(row), 1) if head is None else (head[0], head[1] + 1)
    return heads


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


def _plan_moves(conn: sa.Connection, moves: list[tuple[int, str, tuple]]) -> tuple[dict[int, dict], dict]:
    """Read the commands' rows (one statement) and check each move against storage.transitions.COMMAND as
    transition() does; returns the rows of the allowed moves and their ids grouped by (from, to, values)."""
    q = sa.select(command).where(command.c.id.in_(sorted({m[0] for m in moves}))).order_by(command.c.id)
    if not is_duckdb(conn.engine):
        q = q.with_for_update()
    rows = {r["id"]: dict(r) for r in conn.execute(q).mappings()}
    allowed: dict[int, dict] = {}
    groups: dict[tuple, list[int]] = {}
    for command_id, to_state, values in moves:
        row = rows.get(command_id)
        current = row["state"] if row is not None else None
        guard = COMMAND.guards.get((current, to_state))
        why = ("no such row" if row is None else "not allowed" if not COMMAND.allows(current, to_state)
               else guard[1] if guard is not None and not guard[0](row) else None)
        if why is not None:
            log.info("%s", TransitionRefused(COMMAND.name, command_id, current, to_state, why))
            continue
        allowed[command_id] = row
        groups.setdefault((current, to_state, values), []).append(command_id)
    return allowed, groups


def _update_moves(conn: sa.Connection, groups: dict, extra: dict) -> None:
    for (current, to_state, values), ids in groups.items():
        done = conn.execute(command.update().where(command.c.id.in_(ids), command.c.state == current)
                            .values(state=to_state, **dict(values), **extra)).rowcount
        if done != len(ids):
            raise TransitionRefused(COMMAND.name, ids[0], current, to_state, "changed meanwhile")


def move_commands(conn: sa.Connection, moves: list[tuple[int, str, dict]]) -> dict[int, dict]:
    """move_command for many commands in a few statements (one read, one UPDATE per from-state, to-state and
    values): the row of each moved command as it was before; a move the machine refuses is left out (logged),
    as move_command's False. TransitionRefused when a row changed between the read and the update (rerun)."""
    if not moves:
        return {}
    allowed, groups = _plan_moves(conn, [(cid, to, tuple(sorted(values.items()))) for cid, to, values in moves])
    _update_moves(conn, groups, {})
    return allowed


def mark_sent(conn: sa.Connection, command_ids: list[int], now: dt.datetime) -> dict[int, dict]:
    """count_attempt for many commands in a few statements: the row of each as read before the mark (its
    attempts not yet counted); a command the machine does not let go to sent is left out."""
    if not command_ids:
        return {}
    allowed, groups = _plan_moves(conn, [(cid, "sent", ()) for cid in command_ids])
    _update_moves(conn, groups, {"attempts": command.c.attempts + 1, "sent_at": now})
    return allowed


def unmark_sent(conn: sa.Connection, before: dict) -> bool:
    """Undo a mark_sent whose frame never left (the command's bus refused the connection before its turn): the
    command's state, attempts and sent_at as they were (`before`, the row mark_sent returned)."""
    return move_command(conn, before["id"], before["state"], attempts=before["attempts"], sent_at=before["sent_at"])


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
