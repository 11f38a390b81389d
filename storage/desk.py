"""SQL of the cashier desk's read models: meters by number or room, ledger records and account openings /
closings with filters, buildings and rooms, command batches, API clients, meters per tariff."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from storage.matching import contains_text, equals_text, phone_matches
from storage.schema import (
    account, account_meter, api_client, building, command, ledger_entry, meter, meter_tariff, room,
)


def _meter_place():
    return (meter.outerjoin(room, meter.c.room_id == room.c.id)
            .outerjoin(building, room.c.building_id == building.c.id))


# ---------------------------------------------------------------------------------------------
# places and meters
def buildings(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(building.c.name).order_by(building.c.name)).scalars())


def rooms(conn: sa.Connection, building_name: str | None = None) -> list[dict]:
    """Rooms (id, name, floor, building), by building and name."""
    q = (sa.select(room.c.id, room.c.name, room.c.floor, building.c.name.label("building"))
         .join_from(room, building).order_by(building.c.name, room.c.name))
    if building_name:
        q = q.where(equals_text(building.c.name, building_name))
    return [dict(r) for r in conn.execute(q).mappings()]


def find_meters(conn: sa.Connection, text: str, limit: int = 20) -> list[dict]:
    """Meters whose number is `text`, or whose room is named `text` (any case), or, failing both, whose
    number or room contains it; with room, building and status, by address."""
    cols = (meter.c.id, meter.c.address, meter.c.status, meter.c.profile, meter.c.room_id,
            room.c.name.label("room"), building.c.name.label("building"))
    base = sa.select(*cols).select_from(_meter_place()).order_by(meter.c.address).limit(limit)
    for cond in (equals_text(meter.c.address, text), equals_text(sa.func.lower(room.c.name), text.lower())):
        rows = [dict(r) for r in conn.execute(base.where(cond)).mappings()]
        if rows:
            return rows
    anywhere = sa.or_(contains_text(meter.c.address, text), contains_text(room.c.name, text, any_case=True))
    return [dict(r) for r in conn.execute(base.where(anywhere)).mappings()]


def room_meters(conn: sa.Connection, room_id: int) -> list[dict]:
    """The meters of one room with their status (to open an account for the room)."""
    q = (sa.select(meter.c.id, meter.c.address, meter.c.status, meter.c.profile)
         .where(meter.c.room_id == room_id).order_by(meter.c.address))
    return [dict(r) for r in conn.execute(q).mappings()]


def building_meters(conn: sa.Connection, building_name: str) -> list[dict]:
    """Every room meter of a building (address, room, floor, status), by floor, room and address."""
    q = (sa.select(meter.c.address, meter.c.status, room.c.name.label("room"), room.c.floor)
         .select_from(_meter_place()).where(equals_text(building.c.name, building_name), meter.c.status != "removed")
         .order_by(room.c.floor, room.c.name, meter.c.address))
    return [dict(r) for r in conn.execute(q).mappings()]


def meters_of_accounts(conn: sa.Connection, account_ids: list[int]) -> dict[int, list[str]]:
    """Account id -> its meters' addresses (every meter it ever held, in the order added)."""
    if not account_ids:
        return {}
    q = (sa.select(account_meter.c.account_id, meter.c.address).join_from(account_meter, meter)
         .where(account_meter.c.account_id.in_(account_ids)).order_by(account_meter.c.id))
    out: dict[int, list[str]] = {}
    for aid, address in conn.execute(q).all():
        out.setdefault(aid, []).append(address)
    return out


# ---------------------------------------------------------------------------------------------
# ledger records
# The kinds the sales records show by default and whose sum is the overview's sales of the day: sales less
# refunds and reversals (a balance carried over to a new meter and a closing refund are not counted there).
SALES_KINDS = ("sale", "refund", "reversal")


def _ledger_query():
    original = ledger_entry.alias("original")
    latest_cmd = (sa.select(command.c.ledger_entry_id, sa.func.max(command.c.id).label("cmd_id"))
                  .where(command.c.ledger_entry_id.is_not(None)).group_by(command.c.ledger_entry_id).subquery())
    cmd = command.alias("cmd")
    return (sa.select(ledger_entry.c.id, ledger_entry.c.receipt_no, ledger_entry.c.kind, ledger_entry.c.amount,
                      ledger_entry.c.state, ledger_entry.c.operator, ledger_entry.c.source, ledger_entry.c.created_at,
                      ledger_entry.c.confirmed_at, ledger_entry.c.balance_after, ledger_entry.c.reason,
                      ledger_entry.c.purchase_count, ledger_entry.c.account_id, ledger_entry.c.failure,
                      meter.c.address.label("meter_address"), room.c.name.label("room"),
                      building.c.name.label("building"), account.c.holder_name,
                      original.c.receipt_no.label("reverses"), cmd.c.state.label("command_state"))
            .select_from(ledger_entry.join(meter, ledger_entry.c.meter_id == meter.c.id)
                         .join(account, ledger_entry.c.account_id == account.c.id)
                         .outerjoin(room, meter.c.room_id == room.c.id)
                         .outerjoin(building, room.c.building_id == building.c.id)
                         .outerjoin(original, ledger_entry.c.reverses_entry_id == original.c.id)
                         .outerjoin(latest_cmd, latest_cmd.c.ledger_entry_id == ledger_entry.c.id)
                         .outerjoin(cmd, cmd.c.id == latest_cmd.c.cmd_id)))


def _ledger_filtered(q, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     kinds: list[str] | None = None, operator: str | None = None, building_name: str | None = None,
                     text: str | None = None):
    """`q` (over ledger_entry joined to meter, room, building) narrowed by every given filter."""
    if since is not None:
        q = q.where(ledger_entry.c.created_at >= since)
    if until is not None:
        q = q.where(ledger_entry.c.created_at < until)
    if kinds:
        q = q.where(ledger_entry.c.kind.in_(kinds))
    if operator:
        q = q.where(equals_text(ledger_entry.c.operator, operator))
    if building_name:
        q = q.where(equals_text(building.c.name, building_name))
    if text:
        q = q.where(sa.or_(contains_text(meter.c.address, text), contains_text(room.c.name, text, any_case=True),
                           contains_text(ledger_entry.c.receipt_no, text, any_case=True)))
    return q


def ledger_rows(conn: sa.Connection, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                kinds: list[str] | None = None, operator: str | None = None, building_name: str | None = None,
                text: str | None = None, limit: int = 5000) -> list[dict]:
    """Ledger entries matching every given filter, newest first; `until` is exclusive; `text` matches the
    meter number, the room or the receipt number (contains, any case)."""
    q = _ledger_query().order_by(ledger_entry.c.created_at.desc(), ledger_entry.c.id.desc()).limit(limit)
    q = _ledger_filtered(q, since=since, until=until, kinds=kinds, operator=operator, building_name=building_name,
                         text=text)
    return [dict(r) for r in conn.execute(q).mappings()]


def ledger_totals(conn: sa.Connection, **filters) -> dict[str, Decimal]:
    """The money of the entries matching the filters (those of ledger_rows, no limit), per kind: amounts signed
    by their effect on the balance, failed entries left out (their money never moved; a pending one's is at
    the desk already). The sales records' total and the overview's sales of the day are this sum."""
    q = (sa.select(ledger_entry.c.kind, sa.func.sum(ledger_entry.c.amount))
         .select_from(ledger_entry.join(meter, ledger_entry.c.meter_id == meter.c.id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(ledger_entry.c.state != "failed").group_by(ledger_entry.c.kind))
    rows = conn.execute(_ledger_filtered(q, **filters)).all()
    return {kind: Decimal(total).quantize(Decimal("0.01")) for kind, total in rows}


def ledger_rows_by_id(conn: sa.Connection, ids: list[int]) -> list[dict]:
    """These entries, in the order of `ids` (the order a grid shows them)."""
    if not ids:
        return []
    rows = {r["id"]: dict(r) for r in conn.execute(_ledger_query().where(ledger_entry.c.id.in_(ids))).mappings()}
    return [rows[i] for i in ids if i in rows]


def ledger_operators(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(ledger_entry.c.operator).distinct().order_by(ledger_entry.c.operator))
                .scalars())


# ---------------------------------------------------------------------------------------------
# account openings and closings
def account_rows(conn: sa.Connection, *, event: str, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, building_name: str | None = None, operator: str | None = None,
                 text: str | None = None, limit: int = 2000) -> list[dict]:
    """Accounts opened (event "opened") or closed ("closed") in [since, until), newest first."""
    at = account.c.opened_at if event == "opened" else account.c.closed_at
    by = account.c.operator if event == "opened" else account.c.closed_by
    q = (sa.select(account.c.id, account.c.holder_name, account.c.phone, account.c.status, account.c.opened_at,
                   account.c.closed_at, account.c.operator, account.c.closed_by, room.c.name.label("room"),
                   building.c.name.label("building"))
         .select_from(account.outerjoin(room, account.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(at.is_not(None)).order_by(at.desc(), account.c.id.desc()).limit(limit))
    if event == "closed":
        q = q.where(account.c.status == "closed")
    if since is not None:
        q = q.where(at >= since)
    if until is not None:
        q = q.where(at < until)
    if building_name:
        q = q.where(equals_text(building.c.name, building_name))
    if operator:
        q = q.where(equals_text(by, operator))
    if text:
        in_meter = sa.select(account_meter.c.account_id).join_from(account_meter, meter).where(
            contains_text(meter.c.address, text))
        q = q.where(sa.or_(contains_text(account.c.holder_name, text, any_case=True),
                           contains_text(account.c.phone, text), phone_matches(text),
                           contains_text(room.c.name, text, any_case=True),
                           account.c.id.in_(in_meter)))
    return [dict(r) for r in conn.execute(q).mappings()]


def account_operators(conn: sa.Connection) -> list[str]:
    names = set(conn.execute(sa.select(account.c.operator).distinct()).scalars())
    names |= set(conn.execute(sa.select(account.c.closed_by).where(account.c.closed_by.is_not(None)).distinct())
                 .scalars())
    return sorted(names)


# ---------------------------------------------------------------------------------------------
# commands, tariffs, API clients
def batch_commands(conn: sa.Connection, batch_id: str) -> list[dict]:
    """The commands of one batch with their meter numbers, in the order queued."""
    q = (sa.select(command.c.id, command.c.kind, command.c.state, command.c.result, command.c.attempts,
                   command.c.error, meter.c.address.label("meter_address"))
         .join_from(command, meter).where(command.c.batch_id == batch_id).order_by(command.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def meter_counts_by_tariff(conn: sa.Connection, at: dt.datetime) -> dict[int, int]:
    """Tariff id -> number of meters (not removed) billed by it at `at`."""
    latest = (sa.select(meter_tariff.c.meter_id, sa.func.max(meter_tariff.c.id).label("mt_id"))
              .where(meter_tariff.c.valid_from <= at).group_by(meter_tariff.c.meter_id).subquery())
    q = (sa.select(meter_tariff.c.tariff_id, sa.func.count())
         .join(latest, latest.c.mt_id == meter_tariff.c.id).join(meter, meter.c.id == meter_tariff.c.meter_id)
         .where(meter.c.status != "removed").group_by(meter_tariff.c.tariff_id))
    return {tid: n for tid, n in conn.execute(q).all()}


def api_clients(conn: sa.Connection) -> list[dict]:
    q = sa.select(api_client.c.id, api_client.c.name, api_client.c.created_by, api_client.c.created_at,
                  api_client.c.revoked_at).order_by(api_client.c.name)
    return [dict(r) for r in conn.execute(q).mappings()]

