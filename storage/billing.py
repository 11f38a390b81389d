"""SQL of billing: accounts and their meters, tariffs, the ledger, settings, API clients, reconciliation marks."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import sqlalchemy as sa

from core.phone import phone_digits
from storage.engine import is_duckdb
from storage.matching import contains_text, equals_text, phone_matches
from storage.schema import (
    account, account_meter, api_client, building, ledger_entry, meter, meter_reconcile, meter_state, meter_tariff,
    readings, retired_meter, room, setting, tariff, tariff_version, transfer_request,
)
from storage.transitions import LEDGER_ENTRY, transition

LIVE_STATES = ("pending", "confirmed")


def _in_current_epoch():
    """Entries of their meter's current purchase-count epoch (a meter replaced in place starts a new one):
    every count comparison with a meter is made within it."""
    return ledger_entry.c.count_epoch == (sa.select(meter.c.count_epoch).where(meter.c.id == ledger_entry.c.meter_id)
                                          .scalar_subquery())


def _latest_links():
    """Per meter, the id of its latest account link (its base count is the one that counts now)."""
    return (sa.select(account_meter.c.meter_id, sa.func.max(account_meter.c.id).label("link_id"))
            .group_by(account_meter.c.meter_id).subquery())


# ---------------------------------------------------------------------------------------------
# settings (the shared `setting` table; billing keys start with "billing.")
def get_setting(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(setting.c.value).where(setting.c.key == key)).scalar()


def set_setting(conn: sa.Connection, key: str, value: str, now: dt.datetime) -> None:
    if conn.execute(setting.update().where(setting.c.key == key).values(value=value, updated_at=now)).rowcount == 0:
        conn.execute(setting.insert().values(key=key, value=value, updated_at=now))


# ---------------------------------------------------------------------------------------------
# meters and rooms
def meter_by_address(conn: sa.Connection, address: str) -> dict | None:
    row = conn.execute(sa.select(meter).where(meter.c.address == address)).mappings().first()
    return dict(row) if row else None


def meter_by_id(conn: sa.Connection, meter_id: int) -> dict | None:
    row = conn.execute(sa.select(meter).where(meter.c.id == meter_id)).mappings().first()
    return dict(row) if row else None


def set_meter_status(conn: sa.Connection, meter_ids: list[int], status: str) -> None:
    if meter_ids:
        conn.execute(meter.update().where(meter.c.id.in_(meter_ids)).values(status=status))


def meter_reading(conn: sa.Connection, meter_id: int) -> dict | None:
    """The latest reading's money-related values (meter_state)."""
    q = sa.select(meter_state.c.ts, meter_state.c.balance, meter_state.c.purchase_count, meter_state.c.command_seq,
                  meter_state.c.forced_trip, meter_state.c.relay_closed, meter_state.c.comm_state,
                  meter_state.c.energy_total).where(meter_state.c.meter_id == meter_id)
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def last_reading_at_count(conn: sa.Connection, meter_id: int, count: int, since: dt.datetime | None) -> dict | None:
    """The latest reading at or after `since` whose purchase count was `count` or more (the meter before a
    reset), or None."""
    q = (sa.select(readings.c.ts, readings.c.balance, readings.c.purchase_count)
         .where(readings.c.meter_id == meter_id, readings.c.purchase_count >= count, readings.c.balance.is_not(None))
         .order_by(readings.c.ts.desc()).limit(1))
    if since is not None:
        q = q.where(readings.c.ts >= since)
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def pending_money_entries(conn: sa.Connection, meter_id: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(ledger_entry).where(
        ledger_entry.c.meter_id == meter_id, ledger_entry.c.state == "pending", _in_current_epoch())).scalar_one()


def room_label(conn: sa.Connection, room_id: int | None) -> dict:
    if room_id is None:
        return {"room_id": None, "room": "", "building": "", "floor": None}
    row = conn.execute(sa.select(room.c.id, room.c.name, room.c.floor, building.c.name.label("building"))
                       .join_from(room, building).where(room.c.id == room_id)).mappings().first()
    if not row:
        return {"room_id": None, "room": "", "building": "", "floor": None}
    return {"room_id": row["id"], "room": row["name"], "building": row["building"], "floor": row["floor"]}


def room_exists(conn: sa.Connection, room_id: int) -> bool:
    return conn.execute(sa.select(room.c.id).where(room.c.id == room_id)).first() is not None


def meters_page(conn: sa.Connection, *, building_name: str | None, status: str | None, offset: int,
                limit: int) -> tuple[int, list[dict]]:
    """Meters with room, status and last reading, filtered, ordered by address; (total, page rows)."""
    base = (sa.select(meter.c.id, meter.c.address, meter.c.status, meter.c.profile, room.c.name.label("room"),
                      building.c.name.label("building"), meter_state.c.ts, meter_state.c.balance,
                      meter_state.c.purchase_count, meter_state.c.comm_state, meter_state.c.relay_closed)
            .select_from(meter.outerjoin(room, meter.c.room_id == room.c.id)
                         .outerjoin(building, room.c.building_id == building.c.id)
                         .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id)))
    if building_name:
        base = base.where(equals_text(building.c.name, building_name))
    if status:
        base = base.where(meter.c.status == status)
    total = conn.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar_one()
    rows = conn.execute(base.order_by(meter.c.address).offset(offset).limit(limit)).mappings().all()
    return total, [dict(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# accounts
def insert_account(conn: sa.Connection, **values) -> int:
    """A new account; its phone is also kept as digits (core.phone.phone_digits), which searches match."""
    values["phone_digits"] = phone_digits(values.get("phone"))
    return conn.execute(account.insert().values(**values).returning(account.c.id)).scalar_one()


def account_by_id(conn: sa.Connection, account_id: int) -> dict | None:
    row = conn.execute(sa.select(account).where(account.c.id == account_id)).mappings().first()
    return dict(row) if row else None


def touch_account(conn: sa.Connection, account_id: int) -> None:
    """Write-lock the account row (a no-op update): decisions over all of an account's meters, taken
    in concurrent transactions, then see each other (PostgreSQL waits; DuckDB reports a conflict
    and the caller retries)."""
    conn.execute(account.update().where(account.c.id == account_id).values(status=account.c.status))


def insert_link(conn: sa.Connection, *, account_id: int, meter_id: int, base_purchase_count: int,
                now: dt.datetime, operator: str) -> int:
    return conn.execute(account_meter.insert().values(
        account_id=account_id, meter_id=meter_id, base_purchase_count=base_purchase_count, added_at=now,
        operator=operator, count_epoch=meter_epoch(conn, meter_id)).returning(account_meter.c.id)).scalar_one()


def epoch_starts(conn: sa.Connection, meter_ids: list[int] | None) -> dict[int, list[tuple[dt.datetime, int]]]:
    """Per meter: (time, epoch) when each count epoch after the first began (its first account link's added_at).
    `meter_ids` None: every meter (no list of ids in the query)."""
    q = (sa.select(account_meter.c.meter_id, sa.func.min(account_meter.c.added_at), account_meter.c.count_epoch)
         .where(account_meter.c.count_epoch > 0)
         .group_by(account_meter.c.meter_id, account_meter.c.count_epoch))
    if meter_ids is not None:
        q = q.where(account_meter.c.meter_id.in_(meter_ids))
    out: dict[int, list[tuple[dt.datetime, int]]] = {}
    for mid, since, epoch in conn.execute(q).all():
        out.setdefault(mid, []).append((since, epoch))
    for starts in out.values():
        starts.sort()
    return out


def end_links(conn: sa.Connection, account_id: int, meter_ids: list[int], now: dt.datetime) -> None:
    conn.execute(account_meter.update().where(account_meter.c.account_id == account_id,
                                              account_meter.c.meter_id.in_(meter_ids),
                                              account_meter.c.removed_at.is_(None)).values(removed_at=now))


def active_link(conn: sa.Connection, meter_id: int) -> dict | None:
    """The meter's current account link joined with its account, or None."""
    q = (sa.select(account_meter, account.c.status.label("account_status"), account.c.holder_name,
                   account.c.room_id)
         .join_from(account_meter, account).where(account_meter.c.meter_id == meter_id,
                                                  account_meter.c.removed_at.is_(None)))
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def latest_link(conn: sa.Connection, meter_id: int) -> dict | None:
    q = (sa.select(account_meter, account.c.status.label("account_status"))
         .join_from(account_meter, account).where(account_meter.c.meter_id == meter_id)
         .order_by(account_meter.c.id.desc()).limit(1))
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def account_meters(conn: sa.Connection, account_id: int, active_only: bool = True) -> list[dict]:
    q = (sa.select(account_meter, meter.c.address, meter.c.status.label("meter_status"))
         .join_from(account_meter, meter).where(account_meter.c.account_id == account_id)
         .order_by(account_meter.c.id))
    if active_only:
        q = q.where(account_meter.c.removed_at.is_(None))
    return [dict(r) for r in conn.execute(q).mappings()]


def accounts_search(conn: sa.Connection, text: str | None = None, status: str | None = None,
                    limit: int = 100) -> list[dict]:
    q = (sa.select(account, room.c.name.label("room"), building.c.name.label("building"))
         .select_from(account.outerjoin(room, account.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .order_by(account.c.id).limit(limit))
    if status:
        q = q.where(account.c.status == status)
    if text:
        in_meter = sa.select(account_meter.c.account_id).join_from(account_meter, meter).where(
            contains_text(meter.c.address, text))
        q = q.where(sa.or_(contains_text(account.c.holder_name, text), contains_text(account.c.phone, text),
                           phone_matches(text), contains_text(room.c.name, text), account.c.id.in_(in_meter)))
    return [dict(r) for r in conn.execute(q).mappings()]


def max_base_count(conn: sa.Connection, meter_id: int) -> int | None:
    """The base count of the meter's latest account link (None when it never had one)."""
    return conn.execute(sa.select(account_meter.c.base_purchase_count).where(account_meter.c.meter_id == meter_id)
                        .order_by(account_meter.c.id.desc()).limit(1)).scalar()


def epoch_start(conn: sa.Connection, meter_id: int) -> dt.datetime | None:
    """When the meter's current count epoch began (None for the first epoch)."""
    return conn.execute(sa.select(sa.func.min(account_meter.c.added_at)).where(
        account_meter.c.meter_id == meter_id, account_meter.c.count_epoch > 0,
        account_meter.c.count_epoch == sa.select(meter.c.count_epoch).where(meter.c.id == meter_id)
        .scalar_subquery())).scalar()


def meter_epoch(conn: sa.Connection, meter_id: int) -> int:
    return conn.execute(sa.select(meter.c.count_epoch).where(meter.c.id == meter_id)).scalar_one()


def start_count_epoch(conn: sa.Connection, meter_id: int) -> int:
    """The meter was replaced in place: its purchase counts start again; returns the new epoch."""
    conn.execute(meter.update().where(meter.c.id == meter_id).values(count_epoch=meter.c.count_epoch + 1))
    return meter_epoch(conn, meter_id)


# ---------------------------------------------------------------------------------------------
# ledger
def next_entry_id(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.Sequence("ledger_entry_id_seq").next_value())).scalar_one()


def next_entry_ids(conn: sa.Connection, n: int) -> list[int]:
    if n <= 0:
        return []
    source = "range(:n)" if is_duckdb(conn.engine) else "generate_series(1, :n)"
    return list(conn.execute(sa.text(f"SELECT nextval('ledger_entry_id_seq') FROM {source}"), {"n": n}).scalars())


def insert_entry(conn: sa.Connection, **values) -> None:
    """One ledger entry, in its meter's current purchase-count epoch."""
    values.setdefault("count_epoch", meter_epoch(conn, values["meter_id"]))
    conn.execute(ledger_entry.insert().values(**values))


def insert_entries(conn: sa.Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(ledger_entry.insert(), rows)


def _entry_query():
    return (sa.select(ledger_entry, meter.c.address.label("meter_address"))
            .join_from(ledger_entry, meter))


def entry_by_id(conn: sa.Connection, entry_id: int) -> dict | None:
    row = conn.execute(_entry_query().where(ledger_entry.c.id == entry_id)).mappings().first()
    return dict(row) if row else None


def entry_by_receipt(conn: sa.Connection, receipt_no: str) -> dict | None:
    row = conn.execute(_entry_query().where(ledger_entry.c.receipt_no == receipt_no)).mappings().first()
    return dict(row) if row else None


def entry_by_request_id(conn: sa.Connection, request_id: str) -> dict | None:
    row = conn.execute(_entry_query().where(ledger_entry.c.request_id == request_id)).mappings().first()
    return dict(row) if row else None


def reversal_of(conn: sa.Connection, entry_id: int) -> dict | None:
    row = conn.execute(_entry_query().where(ledger_entry.c.reverses_entry_id == entry_id)).mappings().first()
    return dict(row) if row else None


def entries_of_meter(conn: sa.Connection, meter_id: int, limit: int = 20, kinds: tuple[str, ...] | None = None,
                     states: tuple[str, ...] | None = None) -> list[dict]:
    q = _entry_query().where(ledger_entry.c.meter_id == meter_id).order_by(ledger_entry.c.id.desc()).limit(limit)
    if kinds:
        q = q.where(ledger_entry.c.kind.in_(kinds))
    if states:
        q = q.where(ledger_entry.c.state.in_(states))
    return [dict(r) for r in conn.execute(q).mappings()]


def entries_of_account(conn: sa.Connection, account_id: int, limit: int = 200) -> list[dict]:
    q = _entry_query().where(ledger_entry.c.account_id == account_id).order_by(ledger_entry.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def max_live_count(conn: sa.Connection, meter_id: int) -> int | None:
    return conn.execute(sa.select(sa.func.max(ledger_entry.c.purchase_count)).where(
        ledger_entry.c.meter_id == meter_id, ledger_entry.c.state.in_(LIVE_STATES), _in_current_epoch())).scalar()


def max_confirmed_count(conn: sa.Connection, meter_id: int) -> int | None:
    return conn.execute(sa.select(sa.func.max(ledger_entry.c.purchase_count)).where(
        ledger_entry.c.meter_id == meter_id, ledger_entry.c.state == "confirmed", _in_current_epoch())).scalar()


def money_position(conn: sa.Connection, meter_id: int, reading_count: int | None) -> dict:
    """Sums the balance checks need: confirmed entries the reading does not show yet (count above the
    reading's), and pending credits and debits."""
    amt = ledger_entry.c.amount
    unreflected = sa.func.coalesce(sa.func.sum(sa.case(
        (sa.and_(ledger_entry.c.state == "confirmed", ledger_entry.c.purchase_count > (reading_count or 0)), amt),
        else_=0)), 0)
    credits = sa.func.coalesce(sa.func.sum(sa.case(
        (sa.and_(ledger_entry.c.state == "pending", amt > 0), amt), else_=0)), 0)
    debits = sa.func.coalesce(sa.func.sum(sa.case(
        (sa.and_(ledger_entry.c.state == "pending", amt < 0), amt), else_=0)), 0)
    row = conn.execute(sa.select(unreflected, credits, debits).where(ledger_entry.c.meter_id == meter_id,
                                                                     _in_current_epoch())).one()
    return {"unreflected": Decimal(row[0]), "pending_credits": Decimal(row[1]), "pending_debits": Decimal(row[2])}


def amounts_between_counts(conn: sa.Connection, meter_id: int, low: int, high: int,
                           states: tuple[str, ...] = LIVE_STATES) -> Decimal:
    """Sum of the amounts of entries in `states` with low < purchase_count <= high."""
    return Decimal(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ledger_entry.c.amount), 0)).where(
        ledger_entry.c.meter_id == meter_id, ledger_entry.c.state.in_(states), _in_current_epoch(),
        ledger_entry.c.purchase_count > low, ledger_entry.c.purchase_count <= high)).scalar_one())


def settle_entry(conn: sa.Connection, entry_id: int, state: str, **values) -> None:
    """pending -> confirmed | failed, once (storage.transitions.LEDGER_ENTRY; TransitionRefused otherwise)."""
    transition(conn, LEDGER_ENTRY, entry_id, state, **values)


def shift_pending_counts(conn: sa.Connection, meter_id: int, above: int) -> int:
    return conn.execute(ledger_entry.update().where(
        ledger_entry.c.meter_id == meter_id, ledger_entry.c.state == "pending", _in_current_epoch(),
        ledger_entry.c.purchase_count > above).values(purchase_count=ledger_entry.c.purchase_count - 1)).rowcount


# ---------------------------------------------------------------------------------------------
# old meters carried over (retired_meter: once per meter number and epoch) and entered transfers awaiting approval
def claim_old_meter(conn: sa.Connection, **values) -> None:
    """Record an old meter's carry-over; a second one for the same (address, count_epoch) is refused by the
    primary key (IntegrityError on PostgreSQL, a conflict at commit on DuckDB)."""
    conn.execute(retired_meter.insert().values(**values))


def old_meter_claim(conn: sa.Connection, address: str, count_epoch: int) -> dict | None:
    row = conn.execute(sa.select(retired_meter).where(retired_meter.c.address == address,
                                                      retired_meter.c.count_epoch == count_epoch)).mappings().first()
    return dict(row) if row else None


def update_old_meter_claim(conn: sa.Connection, address: str, count_epoch: int, **values) -> None:
    conn.execute(retired_meter.update().where(retired_meter.c.address == address,
                                              retired_meter.c.count_epoch == count_epoch).values(**values))


def release_old_meter(conn: sa.Connection, address: str, count_epoch: int) -> None:
    conn.execute(retired_meter.delete().where(retired_meter.c.address == address,
                                              retired_meter.c.count_epoch == count_epoch))


def release_old_meter_of_entry(conn: sa.Connection, entry_id: int) -> int:
    """The carry-over whose transfer_in failed is undone (nothing reached the new meter)."""
    return conn.execute(retired_meter.delete().where(retired_meter.c.ledger_entry_id == entry_id)).rowcount


def retired_meters(conn: sa.Connection, unknown_only: bool = False) -> list[dict]:
    """Old meters whose balance was carried over, newest first (unknown_only: those the site never knew)."""
    q = sa.select(retired_meter).order_by(retired_meter.c.recorded_at.desc())
    if unknown_only:
        q = q.where(retired_meter.c.meter_id.is_(None))
    return [dict(r) for r in conn.execute(q).mappings()]


def insert_transfer_request(conn: sa.Connection, **values) -> int:
    return conn.execute(transfer_request.insert().values(**values).returning(transfer_request.c.id)).scalar_one()


def _request_query():
    new = meter.alias("new_meter")
    return (sa.select(transfer_request, new.c.address.label("new_address"), account.c.holder_name,
                      account.c.room_id, account.c.status.label("account_status"))
            .join(new, new.c.id == transfer_request.c.new_meter_id)
            .join(account, account.c.id == transfer_request.c.account_id))


def transfer_request_by_id(conn: sa.Connection, request_id: int) -> dict | None:
    row = conn.execute(_request_query().where(transfer_request.c.id == request_id)).mappings().first()
    return dict(row) if row else None


def transfer_requests(conn: sa.Connection, *, state: str | None = None, account_id: int | None = None,
                      limit: int = 200) -> list[dict]:
    q = _request_query().order_by(transfer_request.c.id.desc()).limit(limit)
    if state is not None:
        q = q.where(transfer_request.c.state == state)
    if account_id is not None:
        q = q.where(transfer_request.c.account_id == account_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def decide_transfer_request(conn: sa.Connection, request_id: int, old_state: str, new_state: str, **values) -> bool:
    """old_state -> new_state, once (the state read in this transaction, not assumed)."""
    return conn.execute(transfer_request.update().where(transfer_request.c.id == request_id,
                                                        transfer_request.c.state == old_state)
                        .values(state=new_state, **values)).rowcount == 1


# ---------------------------------------------------------------------------------------------
# tariffs
# A tariff's name as shown: its display_name once renamed, else the name it was created with. (tariff.name is
# unique and other tables point at the row: DuckDB cannot update such a column, so a rename writes display_name.)
_SHOWN_NAME = sa.func.coalesce(tariff.c.display_name, tariff.c.name)
_TARIFF = sa.select(*[c for c in tariff.c if c.name not in ("name", "display_name")], _SHOWN_NAME.label("name"))


def insert_tariff(conn: sa.Connection, *, name: str, **values) -> int:
    """A new tariff named `name` (the caller checked no tariff shows that name). When a renamed tariff was created
    under that name, the new row keeps it as its display name and gets a key of its own."""
    taken = conn.execute(sa.select(tariff.c.id).where(tariff.c.name == name)).first() is not None
    key = f"{name[:80]} #{uuid.uuid4().hex[:12]}" if taken else name
    return conn.execute(tariff.insert().values(name=key, display_name=name if taken else None, **values)
                        .returning(tariff.c.id)).scalar_one()


def tariff_by_id(conn: sa.Connection, tariff_id: int) -> dict | None:
    row = conn.execute(_TARIFF.where(tariff.c.id == tariff_id)).mappings().first()
    return dict(row) if row else None


def rename_tariff(conn: sa.Connection, tariff_id: int, name: str) -> None:
    conn.execute(tariff.update().where(tariff.c.id == tariff_id).values(display_name=name))


def retire_tariff(conn: sa.Connection, tariff_id: int, at: dt.datetime, by: str) -> None:
    conn.execute(tariff.update().where(tariff.c.id == tariff_id).values(retired_at=at, retired_by=by))


def tariff_by_name(conn: sa.Connection, name: str) -> dict | None:
    """The tariff shown under `name` (renamed ones by their new name)."""
    row = conn.execute(_TARIFF.where(_SHOWN_NAME == name)).mappings().first()
    return dict(row) if row else None


def tariffs(conn: sa.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(_TARIFF.order_by(tariff.c.id)).mappings()]


def insert_version(conn: sa.Connection, **values) -> int:
    return conn.execute(tariff_version.insert().values(**values).returning(tariff_version.c.id)).scalar_one()


def versions_of(conn: sa.Connection, tariff_id: int | None = None) -> list[dict]:
    q = sa.select(tariff_version).order_by(tariff_version.c.tariff_id, tariff_version.c.version_no)
    if tariff_id is not None:
        q = q.where(tariff_version.c.tariff_id == tariff_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def version_by_id(conn: sa.Connection, version_id: int) -> dict | None:
    row = conn.execute(sa.select(tariff_version).where(tariff_version.c.id == version_id)).mappings().first()
    return dict(row) if row else None


def version_at(conn: sa.Connection, tariff_id: int, at: dt.datetime) -> dict | None:
    """The version in force at `at`: the latest valid_from not after it (the highest number on a tie)."""
    q = (sa.select(tariff_version).where(tariff_version.c.tariff_id == tariff_id, tariff_version.c.valid_from <= at)
         .order_by(tariff_version.c.valid_from.desc(), tariff_version.c.version_no.desc()).limit(1))
    row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def max_version_no(conn: sa.Connection, tariff_id: int) -> int:
    return conn.execute(sa.select(sa.func.coalesce(sa.func.max(tariff_version.c.version_no), 0))
                        .where(tariff_version.c.tariff_id == tariff_id)).scalar_one()


def insert_meter_tariffs(conn: sa.Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(meter_tariff.insert(), rows)


def meter_tariff_at(conn: sa.Connection, meter_id: int, at: dt.datetime) -> int | None:
    q = (sa.select(meter_tariff.c.tariff_id).where(meter_tariff.c.meter_id == meter_id, meter_tariff.c.valid_from <= at)
         .order_by(meter_tariff.c.valid_from.desc(), meter_tariff.c.id.desc()).limit(1))
    return conn.execute(q).scalar()


def meter_tariff_history(conn: sa.Connection, meter_ids: list[int] | None = None) -> list[dict]:
    q = sa.select(meter_tariff).order_by(meter_tariff.c.meter_id, meter_tariff.c.valid_from, meter_tariff.c.id)
    if meter_ids is not None:
        q = q.where(meter_tariff.c.meter_id.in_(meter_ids))
    return [dict(r) for r in conn.execute(q).mappings()]


def meters_on_tariff(conn: sa.Connection, tariff_id: int, at: dt.datetime) -> list[int]:
    """Meters whose tariff in force at `at` is this one."""
    latest = (sa.select(meter_tariff.c.meter_id, sa.func.max(meter_tariff.c.id).label("mt_id"))
              .where(meter_tariff.c.valid_from <= at).group_by(meter_tariff.c.meter_id).subquery())
    q = (sa.select(meter_tariff.c.meter_id).join(latest, latest.c.mt_id == meter_tariff.c.id)
         .where(meter_tariff.c.tariff_id == tariff_id).order_by(meter_tariff.c.meter_id))
    return list(conn.execute(q).scalars())


# ---------------------------------------------------------------------------------------------
# API clients
def insert_api_client(conn: sa.Connection, **values) -> int:
    return conn.execute(api_client.insert().values(**values).returning(api_client.c.id)).scalar_one()


def api_client_by_hash(conn: sa.Connection, token_hash: str) -> dict | None:
    row = conn.execute(sa.select(api_client).where(api_client.c.token_hash == token_hash)).mappings().first()
    return dict(row) if row else None


def api_client_by_name(conn: sa.Connection, name: str) -> dict | None:
    row = conn.execute(sa.select(api_client).where(api_client.c.name == name)).mappings().first()
    return dict(row) if row else None


def revoke_api_client(conn: sa.Connection, name: str, now: dt.datetime) -> bool:
    return conn.execute(api_client.update().where(api_client.c.name == name, api_client.c.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount == 1


# ---------------------------------------------------------------------------------------------
# reconciliation
def reconcile_rows(conn: sa.Connection) -> list[dict]:
    """Every meter billing watches (it has or had an account), its latest reading and last reconciled mark."""
    watched = sa.select(account_meter.c.meter_id).distinct().subquery()
    q = (sa.select(meter_state.c.meter_id, meter_state.c.ts, meter_state.c.purchase_count, meter_state.c.balance,
                   meter_reconcile.c.ts.label("mark_ts"), meter_reconcile.c.purchase_count.label("mark_count"),
                   meter_reconcile.c.balance.label("mark_balance"), meter.c.address)
         .select_from(meter_state.join(watched, watched.c.meter_id == meter_state.c.meter_id)
                      .join(meter, meter.c.id == meter_state.c.meter_id)
                      .outerjoin(meter_reconcile, meter_reconcile.c.meter_id == meter_state.c.meter_id))
         .where(meter_state.c.ts.is_not(None), meter.c.status != "removed"))
    return [dict(r) for r in conn.execute(q).mappings()]


def set_reconcile_marks(conn: sa.Connection, marks: list[dict]) -> None:
    """Replace the marks of these meters (rows: meter_id, ts, purchase_count, balance) in two statements."""
    if not marks:
        return
    conn.execute(meter_reconcile.delete().where(meter_reconcile.c.meter_id.in_([m["meter_id"] for m in marks])))
    conn.execute(meter_reconcile.insert(), marks)


def live_count_bounds(conn: sa.Connection) -> dict[int, tuple[int | None, int | None, int | None]]:
    """Per meter, in its current count epoch: (highest confirmed count, highest pending count, base count of
    its latest account link)."""
    q = (sa.select(ledger_entry.c.meter_id,
                   sa.func.max(sa.case((ledger_entry.c.state == "confirmed", ledger_entry.c.purchase_count))),
                   sa.func.max(sa.case((ledger_entry.c.state == "pending", ledger_entry.c.purchase_count))))
         .join_from(ledger_entry, meter, sa.and_(meter.c.id == ledger_entry.c.meter_id,
                                                 meter.c.count_epoch == ledger_entry.c.count_epoch))
         .group_by(ledger_entry.c.meter_id))
    out = {m: (c, p, None) for m, c, p in conn.execute(q).all()}
    latest = _latest_links()
    for m, b in conn.execute(sa.select(account_meter.c.meter_id, account_meter.c.base_purchase_count)
                             .join(latest, latest.c.link_id == account_meter.c.id)).all():
        c, p, _ = out.get(m, (None, None, None))
        out[m] = (c, p, b)
    return out


def readings_frame(conn: sa.Connection, meter_ids: list[int], start: dt.datetime, end: dt.datetime):
    """Readings for shadow billing as a DataFrame (balance as integer fen), ordered by meter and time.

    On DuckDB the result goes straight to pandas (millions of rows in about a second)."""
    import pandas as pd
    cols = ["meter_id", "ts", "energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
            "balance_fen", "purchase_count"]
    if not meter_ids:
        return pd.DataFrame(columns=cols)
    q = (sa.select(readings.c.meter_id, readings.c.ts, readings.c.energy_total, readings.c.energy_sharp,
                   readings.c.energy_peak, readings.c.energy_flat, readings.c.energy_valley,
                   sa.cast(sa.func.round(readings.c.balance * 100), sa.BigInteger).label("balance_fen"),
                   readings.c.purchase_count)
         .where(readings.c.meter_id.in_(meter_ids), readings.c.ts >= start, readings.c.ts < end,
                readings.c.energy_total.is_not(None), readings.c.balance.is_not(None),
                readings.c.purchase_count.is_not(None))
         .order_by(readings.c.meter_id, readings.c.ts))
    if is_duckdb(conn.engine):
        ids = ", ".join(str(int(i)) for i in meter_ids)
        sql = (f"SELECT meter_id, ts, energy_total, energy_sharp, energy_peak, energy_flat, energy_valley, "
               f"CAST(ROUND(balance * 100) AS BIGINT) AS balance_fen, purchase_count FROM readings "
               f"WHERE meter_id IN ({ids}) AND ts >= ? AND ts < ? AND energy_total IS NOT NULL "
               f"AND balance IS NOT NULL AND purchase_count IS NOT NULL ORDER BY meter_id, ts")
        return conn.connection.driver_connection.execute(sql, [start, end]).df()
    return pd.DataFrame(conn.execute(q).all(), columns=cols)


def live_amounts_by_count(conn: sa.Connection, meter_ids: list[int]) -> list[tuple[int, int, int, Decimal]]:
    """(meter_id, count epoch, purchase_count, amount) of every pending or confirmed entry of these meters."""
    q = (sa.select(ledger_entry.c.meter_id, ledger_entry.c.count_epoch, ledger_entry.c.purchase_count,
                   ledger_entry.c.amount)
         .where(ledger_entry.c.meter_id.in_(meter_ids), ledger_entry.c.state.in_(LIVE_STATES)))
    return [tuple(r) for r in conn.execute(q).all()]


def meter_addresses(conn: sa.Connection, meter_ids: list[int]) -> dict[int, str]:
    return dict(conn.execute(sa.select(meter.c.id, meter.c.address).where(meter.c.id.in_(meter_ids))).all())


def energy_readings(conn: sa.Connection, meter_id: int, start: dt.datetime) -> list[tuple]:
    q = (sa.select(readings.c.ts, readings.c.energy_total).where(readings.c.meter_id == meter_id, readings.c.ts >= start)
         .order_by(readings.c.ts))
    return conn.execute(q).all()


def opened_meter_ids(conn: sa.Connection) -> list[int]:
    return list(conn.execute(sa.select(account_meter.c.meter_id).where(account_meter.c.removed_at.is_(None))
                             .distinct().order_by(account_meter.c.meter_id)).scalars())
