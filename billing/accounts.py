"""Accounts: open (with their meters' setup commands), add a meter, close (billing.transfers carries balances over).

Opening a meter queues, in this order: SET_TARIFF (the tariff version in force), SET_LIMITS (the
site's alarm / overload / overdraft settings), RELAY close if the meter was tripped by an earlier
closing, and RELAY keep-power off (action 3), which restores prepaid control (purpose "opening").

Closing is two steps driven by the meters' answers, so the refund is exact: close_account queues a
RELAY trip per meter (purpose "closing", the account on the command; billing.settlement routes its
answer to closing_step, the batch "close-<account>" is only a label); when a meter acknowledges the trip, its answer
carries the balance, and a closing refund (REFUND of that whole balance) is queued; when every
meter has answered and its refund is confirmed, the account is closed, its meters go back to
not_opened, and the closing is written to the operation log. A refused step leaves the account
"closing"; calling close_account again retries the meters not yet settled. The account's status moves
through storage.transitions.ACCOUNT (open -> closing -> closed).

A meter that cannot answer at all (dead, burnt, its bus gone) is settled by hand instead
(settle_meter_by_hand): once its closing trip has failed, a cashier types the money left on it
(read off its display, or its last known balance) with a reason; a confirmed closing refund with
no command (source "manual", purchase count 0: nothing was sent to the meter) is written, and the
meter leaves the account as "removed" so it is never sold to or reopened without being checked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from billing import pii
from billing.context import BillingContext
from billing.errors import BillingError
from billing.balance import known_balance
from billing.credit import Actor, authorize, move_money, reason_text, require_actor
from billing.lookup import meter_by_number, operator_name
from billing.money import parse_amount
from billing.meter_settings import limits_payload
from billing.settings import default_tariff_id
from billing.tariffs import queue_tariff, usable_tariff
from core import permissions as P
from storage import audit
from storage import billing as store
from storage.outbox import commands_of_account, insert_command, meters_transaction, next_command_seq
from storage.purposes import Purpose
from storage.schema import ledger_entry
from storage.transitions import ACCOUNT, transition


@dataclass(frozen=True)
class AccountMeterView:
    address: str
    added_at: dt.datetime
    base_purchase_count: int
    balance: Decimal | None
    reading_ts: dt.datetime | None


@dataclass(frozen=True)
class AccountView:
    id: int
    holder_name: str
    phone: str | None
    national_id_masked: str
    room: str
    building: str
    room_id: int | None
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    operator: str
    meters: list[AccountMeterView] = field(default_factory=list)
    batch_id: str | None = None      # the commands the last action queued


def account_view(ctx: BillingContext, conn: sa.Connection, account_id: int, batch_id: str | None = None,
                 active_only: bool = True) -> AccountView:
    a = store.account_by_id(conn, account_id)
    if a is None:
        raise BillingError("account_unknown", account=account_id)
    try:
        nid = pii.decrypt_national_id(ctx.pii_key, a["national_id_enc"])
    except ValueError:
        nid = None  # another site's key: never show more than "encrypted"
    label = store.room_label(conn, a["room_id"])
    meters = []
    for link in store.account_meters(conn, account_id, active_only=active_only):
        bal = known_balance(conn, link["meter_id"])
        meters.append(AccountMeterView(link["address"], link["added_at"], link["base_purchase_count"], bal.balance,
                                       bal.reading_ts))
    return AccountView(id=a["id"], holder_name=a["holder_name"], phone=a["phone"],
                       national_id_masked=pii.mask_national_id(nid) if nid else ("***" if a["national_id_enc"] else ""),
                       room=label["room"], building=label["building"], room_id=a["room_id"], status=a["status"],
                       opened_at=a["opened_at"], closed_at=a["closed_at"], operator=a["operator"], meters=meters,
                       batch_id=batch_id)


def get_account(ctx: BillingContext, account_id: int) -> AccountView:
    with ctx.engine.connect() as conn:
        return account_view(ctx, conn, account_id)


def find_accounts(ctx: BillingContext, text: str | None = None, status: str | None = None,
                  limit: int = 100) -> list[dict]:
    """Accounts whose holder, phone, room or meter number contains `text` (holder and phone as stored)."""
    with ctx.engine.connect() as conn:
        return store.accounts_search(conn, (text or "").strip() or None, status, limit)


def reveal_national_id(ctx: BillingContext, account_id: int, operator: str) -> str | None:
    """The clear national ID for an operator allowed to see it (the caller checks permission); audited."""
    now = ctx.now()
    with ctx.engine.begin() as conn:
        a = account_row(conn, account_id)
        audit.record(conn, operator=operator_name(operator), action="billing.reveal_national_id",
                     target=f"account:{account_id}", ts=now)
        return pii.decrypt_national_id(ctx.pii_key, a["national_id_enc"])


# ---------------------------------------------------------------------------------------------

def account_row(conn: sa.Connection, account_id: int, status: str | None = None) -> dict:
    """The account (BillingError when there is none, or when it is not in `status`: open / closing)."""
    a = store.account_by_id(conn, account_id)
    if a is None:
        raise BillingError("account_unknown", account=account_id)
    if status is not None and a["status"] != status:
        raise BillingError("account_not_open" if status == "open" else "account_not_closing", account=account_id)
    return a


def _prepare_meter(ctx: BillingContext, conn: sa.Connection, address, purchase_count: int | None) -> tuple[dict, int]:
    m = meter_by_number(conn, address)
    if m["status"] == "removed":
        raise BillingError("meter_removed", meter=m["address"])
    if not ctx.is_prepaid_profile(m["profile"]):
        raise BillingError("meter_not_prepaid", meter=m["address"])
    if store.active_link(conn, m["id"]) is not None:
        raise BillingError("meter_in_use", meter=m["address"])
    if purchase_count is None:
        reading = store.meter_reading(conn, m["id"])
        if reading is None or reading["purchase_count"] is None:
            raise BillingError("meter_never_read", meter=m["address"])
        purchase_count = int(reading["purchase_count"])
    return m, max(purchase_count, store.max_live_count(conn, m["id"]) or 0)


def resolve_tariff(conn: sa.Connection, tariff_id: int | None, now: dt.datetime) -> tuple[int, dict]:
    tid = tariff_id if tariff_id is not None else default_tariff_id(conn)
    if tid is None:
        raise BillingError("tariff_missing", tariff=tid)
    usable_tariff(conn, tid)  # known and not retired
    version = store.version_at(conn, tid, now)
    if version is None:
        raise BillingError("tariff_not_in_force", tariff=tid)
    return tid, version


def setup_meter(ctx: BillingContext, conn: sa.Connection, *, account_id: int, m: dict, base: int, tariff_id: int,
                 version: dict, operator: str, now: dt.datetime, batch: str) -> None:
    store.insert_link(conn, account_id=account_id, meter_id=m["id"], base_purchase_count=base, now=now,
                      operator=operator)
    if store.meter_tariff_at(conn, m["id"], now) != tariff_id:
        store.insert_meter_tariffs(conn, [dict(meter_id=m["id"], tariff_id=tariff_id, valid_from=now,
                                               operator=operator)])
    store.set_meter_status(conn, [m["id"]], "opened")
    queue_tariff(conn, m["id"], version, operator, now, batch, purpose=Purpose.OPENING, account_id=account_id)
    kinds = [("limits", limits_payload(conn, m["id"]))]   # the meter's own limits, else the site's defaults
    if (store.meter_reading(conn, m["id"]) or {}).get("forced_trip"):
        kinds.append(("close", {}))
    kinds.append(("restore_prepaid", {}))
    for kind, payload in kinds:
        insert_command(conn, meter_id=m["id"], kind=kind, purpose=Purpose.OPENING, payload=payload,
                       counter=next_command_seq(conn, m["id"]), operator=operator, now=now, batch_id=batch,
                       account_id=account_id)


def open_account(ctx: BillingContext, *, holder_name: str, meter_addresses: list[str], operator: str,
                 phone: str | None = None, national_id: str | None = None, room_id: int | None = None,
                 tariff_id: int | None = None, purchase_counts: dict[str, int] | None = None,
                 remote: str | None = None) -> AccountView:
    """Open an account for a room with one or more meters and queue each meter's setup commands.

    A meter's starting purchase count is its last reading's (or `purchase_counts[address]`, read
    on the spot by the caller). Every input is checked before anything is written.
    """
    operator = operator_name(operator)
    holder = pii.normalize_holder(holder_name)
    phone = pii.normalize_phone(phone)
    nid = pii.normalize_national_id(national_id) if national_id not in (None, "") else None
    addresses = [str(a).strip() for a in (meter_addresses or []) if str(a).strip()]
    if not addresses:
        raise BillingError("meters_missing")
    if len(set(addresses)) != len(addresses):
        raise BillingError("meter_listed_twice")
    now = ctx.now()
    with ctx.engine.connect() as conn:
        ids = [meter_by_number(conn, a)["id"] for a in addresses]
    batch = None
    with meters_transaction(ctx.engine, ids) as conn:
        prepared = [_prepare_meter(ctx, conn, a, (purchase_counts or {}).get(a)) for a in addresses]
        tid, version = resolve_tariff(conn, tariff_id, now)
        if room_id is None:
            room_id = prepared[0][0]["room_id"]
        elif not store.room_exists(conn, room_id):
            raise BillingError("room_unknown", room=room_id)
        account_id = store.insert_account(
            conn, room_id=room_id, holder_name=holder, phone=phone,
            national_id_enc=pii.encrypt_national_id(ctx.pii_key, nid) if nid else None, status="open",
            opened_at=now, operator=operator)
        batch = f"open-{account_id}"
        for m, base in prepared:
            setup_meter(ctx, conn, account_id=account_id, m=m, base=base, tariff_id=tid, version=version,
                         operator=operator, now=now, batch=batch)
        audit.record(conn, operator=operator, action="billing.open_account", target=f"account:{account_id}", ts=now,
                     after={"holder": pii.mask_name(holder), "room_id": room_id, "meters": addresses,
                            "tariff_id": tid, "tariff_version": version["version_no"]}, source=remote)
        view = account_view(ctx, conn, account_id, batch)
    ctx.commands_queued()
    return view


def add_meter(ctx: BillingContext, account_id: int, meter_address: str, operator: str, *,
              tariff_id: int | None = None, purchase_count: int | None = None,
              remote: str | None = None) -> AccountView:
    """Add one more meter to an open account (setup commands as at opening)."""
    operator = operator_name(operator)
    now = ctx.now()
    with ctx.engine.connect() as conn:
        mid = meter_by_number(conn, meter_address)["id"]
    with meters_transaction(ctx.engine, [mid]) as conn:
        account_row(conn, account_id, "open")
        m, base = _prepare_meter(ctx, conn, meter_address, purchase_count)
        if tariff_id is None:
            tariff_id = next((store.meter_tariff_at(conn, x["meter_id"], now)
                              for x in store.account_meters(conn, account_id)), None)
        tid, version = resolve_tariff(conn, tariff_id, now)
        batch = f"add-{account_id}-{m['id']}"
        setup_meter(ctx, conn, account_id=account_id, m=m, base=base, tariff_id=tid, version=version,
                     operator=operator, now=now, batch=batch)
        audit.record(conn, operator=operator, action="billing.add_meter", target=f"account:{account_id}", ts=now,
                     after={"meter": m["address"], "tariff_id": tid}, source=remote)
        view = account_view(ctx, conn, account_id, batch)
    ctx.commands_queued()
    return view


# ---------------------------------------------------------------------------------------------
# closing

def close_account(ctx: BillingContext, account_id: int, actor: Actor, *, reason) -> AccountView:
    """Start (or retry) closing (account.close, with a reason): a RELAY trip per meter not yet settled; the
    rest follows the meters' answers."""
    require_actor(actor)
    authorize(ctx, actor, P.ACCOUNT_CLOSE, f"account:{account_id}")
    reason = reason_text(reason, True)
    operator, remote = actor.username[:100], actor.address or actor.channel
    now = ctx.now()
    with ctx.engine.connect() as conn:
        account_row(conn, account_id)
        links = store.account_meters(conn, account_id)
    batch = f"close-{account_id}"
    with meters_transaction(ctx.engine, [x["meter_id"] for x in links]) as conn:
        a = store.account_by_id(conn, account_id)
        if a["status"] == "closed":
            raise BillingError("account_not_open", account=account_id)
        if a["status"] == "open":
            transition(conn, ACCOUNT, account_id, "closing")
        queued = []
        for link in links:
            if _meter_settled(conn, account_id, link["meter_id"]) or _closing_in_flight(conn, account_id, link["meter_id"]):
                continue
            insert_command(conn, meter_id=link["meter_id"], kind="trip", purpose=Purpose.CLOSING,
                           payload={"closing_account_id": account_id},
                           counter=next_command_seq(conn, link["meter_id"]), operator=operator, now=now,
                           batch_id=batch, account_id=account_id)
            queued.append(link["address"])
        audit.record(conn, operator=operator, action="billing.close_account", target=f"account:{account_id}", ts=now,
                     after={"trips": queued, "reason": reason}, source=remote)
        _finish_if_settled(ctx, conn, account_id, operator, now)
        view = account_view(ctx, conn, account_id, batch)
    ctx.commands_queued()
    return view


def _closing_commands(conn: sa.Connection, account_id: int, meter_id: int) -> list[dict]:
    return commands_of_account(conn, account_id, Purpose.CLOSING, meter_id)


def _closing_in_flight(conn: sa.Connection, account_id: int, meter_id: int) -> bool:
    return any(c["state"] in ("queued", "sent") for c in _closing_commands(conn, account_id, meter_id))


def _meter_settled(conn: sa.Connection, account_id: int, meter_id: int) -> bool:
    """The meter's last closing trip was acknowledged and the refund queued with it (if any) is confirmed."""
    trips = [c for c in _closing_commands(conn, account_id, meter_id) if c["kind"] == "trip"]
    if not trips or trips[-1]["state"] != "acked":
        return False
    refund = conn.execute(sa.select(ledger_entry.c.state).where(
        ledger_entry.c.account_id == account_id, ledger_entry.c.meter_id == meter_id,
        ledger_entry.c.kind == "closing_refund", ledger_entry.c.created_at >= trips[-1]["created_at"])
        .order_by(ledger_entry.c.id.desc()).limit(1)).scalar()
    return refund in (None, "confirmed")


def _finish_if_settled(ctx: BillingContext, conn: sa.Connection, account_id: int, operator: str,
                       now: dt.datetime) -> bool:
    store.touch_account(conn, account_id)  # the last meter to settle must see the others' settlements
    a = store.account_by_id(conn, account_id)
    if a["status"] != "closing":
        return False
    links = store.account_meters(conn, account_id)
    if not all(_meter_settled(conn, account_id, x["meter_id"]) for x in links):
        return False
    transition(conn, ACCOUNT, account_id, "closed", closed_at=now, closed_by=operator)
    ids = [x["meter_id"] for x in links]
    store.end_links(conn, account_id, ids, now)
    store.set_meter_status(conn, ids, "not_opened")
    refunds = conn.execute(sa.select(ledger_entry.c.receipt_no, ledger_entry.c.amount).where(
        ledger_entry.c.account_id == account_id, ledger_entry.c.kind == "closing_refund",
        ledger_entry.c.state == "confirmed")).all()
    audit.record(conn, operator=operator, action="billing.account_closed", target=f"account:{account_id}", ts=now,
                 after={"meters": [x["address"] for x in links],
                        "closing_refunds": {r: str(-Decimal(v)) for r, v in refunds}})
    return True


def closing_step(ctx: BillingContext, conn: sa.Connection, cmd: dict, state: str, mailbox, now: dt.datetime) -> None:
    """A closing command settled (billing.settlement, in the dispatcher's transaction, meter lock held): an
    acknowledged trip queues the closing refund of the balance it reported; otherwise the account closes if every
    meter is settled. The account is the command's own (command.account_id)."""
    account_id = cmd.get("account_id")
    a = store.account_by_id(conn, account_id) if account_id is not None else None
    if a is None or a["status"] != "closing":
        return
    operator = cmd.get("operator") or "system"
    if cmd["kind"] == "trip" and state == "acked" and mailbox is not None and mailbox.balance > 0:
        m = store.meter_by_id(conn, cmd["meter_id"])
        move_money(conn, ctx, Actor.for_system(operator), "closing_refund", amount=Decimal(mailbox.balance),
                   meter_row=m, account_id=account_id, reason="account closing", batch_id=cmd.get("batch_id"))
        return
    _finish_if_settled(ctx, conn, account_id, operator, now)


@dataclass(frozen=True)
class HandSettlement:
    account: AccountView
    refund: Decimal                 # what was refunded (0.00 when nothing was left on the meter)
    receipt_no: str | None          # its closing refund's receipt (None when nothing was refunded)


def settle_meter_by_hand(ctx: BillingContext, account_id: int, meter_address: str, actor: Actor, *,
                         amount, reason) -> HandSettlement:
    """Close a meter of a closing account that cannot answer (account.close): its trip has failed, the money
    left on it is typed in (0 when none) with a reason; a closing refund of it is written through the gate as
    confirmed (no command goes out), the meter leaves the account as removed, and the account closes if it was
    the last one."""
    require_actor(actor)
    authorize(ctx, actor, P.ACCOUNT_CLOSE, f"account:{account_id}")
    if amount in (None, "") and reason_text(reason, False) is None:
        raise BillingError("settle_fields_missing")
    value = parse_amount(amount, allow_zero=True, negative_code="refund_amount_negative")
    reason = reason_text(reason, True)
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, meter_address)
    now = ctx.now()
    with meters_transaction(ctx.engine, [m["id"]]) as conn:
        account_row(conn, account_id, "closing")
        if m["id"] not in {x["meter_id"] for x in store.account_meters(conn, account_id)}:
            raise BillingError("meter_not_in_account", meter=m["address"], account=account_id)
        if _meter_settled(conn, account_id, m["id"]):
            raise BillingError("closing_meter_settled", meter=m["address"])
        trips = [c for c in _closing_commands(conn, account_id, m["id"]) if c["kind"] == "trip"]
        if not trips or _closing_in_flight(conn, account_id, m["id"]) or trips[-1]["state"] == "acked":
            # acked: its closing refund is on its way or was refused; close_account retries it
            raise BillingError("closing_meter_answering", meter=m["address"])
        bal = known_balance(conn, m["id"])
        receipt_no = None
        if value > 0:
            receipt_no = move_money(conn, ctx, actor, "settle_by_hand", amount=value, meter_row=m,
                                    account_id=account_id, reason=reason)["receipt_no"]
        store.end_links(conn, account_id, [m["id"]], now)
        store.set_meter_status(conn, [m["id"]], "removed")
        audit.record(conn, operator=actor.username[:100], action="billing.closing_settled_by_hand",
                     target=f"account:{account_id}", ts=now, source=actor.address or actor.channel,
                     before={"meter": m["address"], "last_known_balance": bal.balance,
                             "read_at": bal.reading_ts, "failed_trip": trips[-1]["state"]},
                     after={"meter_id": m["id"], "meter": m["address"], "closing_refund": -value,
                            "receipt_no": receipt_no, "reason": reason, "meter_status": "removed"})
        _finish_if_settled(ctx, conn, account_id, actor.username[:100], now)
        return HandSettlement(account_view(ctx, conn, account_id, active_only=False), value, receipt_no)


def closing_status(ctx: BillingContext, account_id: int) -> dict[str, str]:
    """Per meter: settled | in_flight | refused (close_account again to retry, or settle it by hand) |
    by_hand (settled by hand: the meter could not answer)."""
    with ctx.engine.connect() as conn:
        out = {}
        for link in store.account_meters(conn, account_id, active_only=False):
            trips = [c for c in _closing_commands(conn, account_id, link["meter_id"]) if c["kind"] == "trip"]
            if link["removed_at"] is not None and not trips:
                continue                           # it left before closing (a replaced meter)
            if link["removed_at"] is not None and trips[-1]["state"] != "acked":
                out[link["address"]] = "by_hand"   # it could not answer: settle_meter_by_hand
            elif _meter_settled(conn, account_id, link["meter_id"]):
                out[link["address"]] = "settled"
            elif _closing_in_flight(conn, account_id, link["meter_id"]):
                out[link["address"]] = "in_flight"
            else:
                out[link["address"]] = "refused"
        return out
