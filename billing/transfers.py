"""Carrying an old meter's balance over onto a meter of the same account: read or entered, approved, once per old meter.

Read: the old meter's last known balance is carried over (account.open). Entered: the old meter cannot be
read (dead, burnt, from another site), so its balance is typed in with a reason. That needs its own
permission, transfer.entered; it is refused for a meter of the site that answers (online, or read within
RECENT_READING: its balance is read instead); and above the site's approval amount
(billing.settings.transfer_approval_above, 100.00 yuan by default) nothing is queued: the request waits
on the accounts page until a different operator holding transfer.entered approves it (then, and only
then, the transfer_in and its RECHARGE go through the gate, billing.credit) or rejects it. Either
decision is in the operation log. A meter replaced in place (the same number on both sides, its purchase
count back to 0) is registered through the same form (replace_meter_in_place).

Once: every carry-over is a row of retired_meter keyed by the old meter's number and purchase-count epoch,
written in the transaction that queues the transfer (or stores the request), so two requests for one old
meter, even at the same moment, carry its balance once. A meter unknown to the site exists only there,
recorded as retired with the balance entered for it. A transfer whose RECHARGE the new meter refused or
never received (failed or expired: no money moved) and a rejected request delete their row, so the
balance may be carried over again (entered above the approval amount: approved again).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from billing import pii
from billing.accounts import account_row, resolve_tariff, setup_meter
from billing.balance import known_balance
from billing.context import BillingContext
from billing.credit import Actor, authorize, check_hoarding, move_money, reason_text, require_actor
from billing.errors import BillingError
from billing.ledger import EntryView, entry_view, open_link
from billing.lookup import meter_by_number
from billing.money import parse_amount
from billing.settings import transfer_approval_above
from core import permissions as P
from storage import audit
from storage import billing as store
from storage.outbox import is_conflict, is_unique_violation, meters_transaction

ENTERED, READ = P.TRANSFER_ENTERED, P.ACCOUNT_OPEN
# A meter of the site read this recently answers: its balance is read from it, never typed in.
RECENT_READING = dt.timedelta(hours=24)
_RETRIES = 8


@dataclass(frozen=True)
class TransferRequestView:
    """An entered transfer waiting for (or given) a second operator's decision, as the accounts page shows it."""
    id: int
    account_id: int
    holder: str                   # masked
    room: str
    old_address: str
    old_known: bool               # the site knew the old meter
    new_address: str
    amount: Decimal
    reason: str
    state: str                    # awaiting_approval | approved | rejected
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    receipt_no: str | None        # the transfer_in queued on approval


def _request_view(conn: sa.Connection, r: dict) -> TransferRequestView:
    label = store.room_label(conn, r["room_id"])
    receipt = store.entry_by_id(conn, r["ledger_entry_id"])["receipt_no"] if r["ledger_entry_id"] else None
    return TransferRequestView(
        id=r["id"], account_id=r["account_id"], holder=pii.mask_name(r["holder_name"]),
        room=f"{label['building']} {label['room']}".strip(), old_address=r["old_address"],
        old_known=r["old_meter_id"] is not None, new_address=r["new_address"], amount=Decimal(r["amount"]),
        reason=r["reason"], state=r["state"], requested_by=r["requested_by"], requested_at=r["requested_at"],
        decided_by=r["decided_by"], decided_at=r["decided_at"], decision_note=r["decision_note"],
        receipt_no=receipt)


def transfers_awaiting(ctx: BillingContext, account_id: int | None = None) -> list[TransferRequestView]:
    """Entered transfers waiting for a second operator, newest first."""
    with ctx.engine.connect() as conn:
        return [_request_view(conn, r) for r in store.transfer_requests(conn, state="awaiting_approval",
                                                                        account_id=account_id)]


def get_transfer_request(ctx: BillingContext, request_id: int) -> TransferRequestView:
    with ctx.engine.connect() as conn:
        r = store.transfer_request_by_id(conn, request_id)
        if r is None:
            raise BillingError("transfer_request_unknown", request=request_id)
        return _request_view(conn, r)


def retired_meters(ctx: BillingContext, unknown_only: bool = False) -> list[dict]:
    """Old meters whose balance was carried over (unknown_only: those the site never knew), for reports."""
    with ctx.engine.connect() as conn:
        return store.retired_meters(conn, unknown_only)


# ---------------------------------------------------------------------------------------------

def _once(ctx: BillingContext, meter_ids: list[int], old_address: str, work: Callable[[sa.Connection], object]):
    """`work` in the meters' transaction; a carry-over of the same old meter committed meanwhile is refused by
    retired_meter's key (already_transferred), an optimistic-concurrency conflict is retried."""
    for attempt in range(_RETRIES):
        try:
            with meters_transaction(ctx.engine, meter_ids) as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if is_unique_violation(exc):
                raise BillingError("already_transferred", meter=old_address) from None
            if not is_conflict(exc) or attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _refuse_claimed(conn: sa.Connection, address: str, epoch: int) -> None:
    claim = store.old_meter_claim(conn, address, epoch)
    if claim is None:
        return
    if claim["status"] == "awaiting_approval":
        raise BillingError("transfer_awaiting_approval", meter=address, request=claim["transfer_request_id"])
    raise BillingError("already_transferred", meter=address)


def _refuse_if_answering(ctx: BillingContext, conn: sa.Connection, old: dict) -> None:
    """A meter of the site that answers has its balance read, never typed in."""
    reading = store.meter_reading(conn, old["id"])
    if reading is None or reading["balance"] is None:
        return
    if reading["comm_state"] == "online" or reading["ts"] >= ctx.now() - RECENT_READING:
        raise BillingError("old_meter_answers", meter=old["address"], balance=Decimal(reading["balance"]),
                           read_at=f"{ctx.local(reading['ts']):%Y-%m-%d %H:%M}")


def _entered_input(ctx: BillingContext, actor: Actor, account_id: int, amount, reason) -> tuple[Decimal, str]:
    authorize(ctx, actor, ENTERED, f"account:{account_id}")
    if amount in (None, "") and reason_text(reason, False) is None:
        raise BillingError("transfer_fields_missing")
    return parse_amount(amount), reason_text(reason, True)


def _request(conn: sa.Connection, ctx: BillingContext, actor: Actor, *, account_id: int, old_address: str,
             old_epoch: int, old_id: int | None, new: dict, amount: Decimal, reason: str) -> TransferRequestView:
    """Store an entered transfer for a second operator; its old meter is claimed now, so nobody carries it twice."""
    check_hoarding(conn, new, amount)   # what approval would refuse anyway is refused now
    now = ctx.now()
    rid = store.insert_transfer_request(
        conn, account_id=account_id, old_address=old_address, old_count_epoch=old_epoch, old_meter_id=old_id,
        new_meter_id=new["id"], amount=amount, reason=reason, state="awaiting_approval",
        requested_by=actor.username[:100], requested_at=now, source=actor.address)
    store.claim_old_meter(conn, address=old_address, count_epoch=old_epoch, meter_id=old_id,
                          status="awaiting_approval", balance=amount, entered=True, account_id=account_id,
                          new_meter_id=new["id"], transfer_request_id=rid, recorded_at=now,
                          operator=actor.username[:100])
    audit.record(conn, operator=actor.username[:100], action="billing.transfer_requested",
                 target=f"account:{account_id}", ts=now, source=actor.address or actor.channel,
                 after={"request": rid, "old_meter": old_address, "new_meter": new["address"], "amount": amount,
                        "reason": reason, "old_meter_known": old_id is not None})
    return _request_view(conn, store.transfer_request_by_id(conn, rid))


def _carry(conn: sa.Connection, ctx: BillingContext, actor: Actor, *, entered: bool, account_id: int,
           old_address: str, old_epoch: int, old_id: int | None, new: dict, amount: Decimal, reason: str | None,
           transfer_from: str | None, batch_id: str | None = None, request_id: int | None = None) -> dict:
    """The transfer_in through the gate and the old meter's carry-over row, in one transaction."""
    entry = move_money(conn, ctx, actor, "transfer_entered" if entered else "transfer_read", amount=amount,
                       meter_row=new, account_id=account_id, reason=reason, transfer_from=transfer_from,
                       batch_id=batch_id)
    if request_id is None:
        store.claim_old_meter(conn, address=old_address, count_epoch=old_epoch, meter_id=old_id, status="retired",
                              balance=entry["amount"], entered=entered, account_id=account_id,
                              new_meter_id=new["id"], ledger_entry_id=entry["id"], recorded_at=ctx.now(),
                              operator=actor.username[:100])
    else:
        store.update_old_meter_claim(conn, old_address, old_epoch, status="retired", ledger_entry_id=entry["id"])
    return entry


def _retire(conn: sa.Connection, ctx: BillingContext, account_id: int, old_id: int | None) -> None:
    """A meter of the site whose balance was carried over leaves its account and is marked removed: its money
    now is on the new meter, so it is never sold to, refunded from or opened again until it is checked."""
    if old_id is None:
        return
    link = store.active_link(conn, old_id)
    if link is not None and link["account_id"] == account_id:
        store.end_links(conn, account_id, [old_id], ctx.now())
    store.set_meter_status(conn, [old_id], "removed")


def _entry_view(conn: sa.Connection, entry: dict, address: str) -> EntryView:
    return entry_view(conn, {**entry, "meter_address": address, "confirmed_at": None, "balance_after": None,
                             "failure": None})


def transfer_old_meter_balance(ctx: BillingContext, account_id: int, old_meter_address: str,
                               new_meter_address: str, actor: Actor, *, entered: bool = False, amount=None,
                               reason: str | None = None) -> EntryView | TransferRequestView | None:
    """Carry the balance of a replaced meter onto a meter of the same account.

    Read (entered False): the old meter's last known balance, as a transfer_in and its RECHARGE (account.open).
    Entered (or an amount given): the typed amount with a reason (transfer.entered), refused for a meter that
    answers; above the approval amount a TransferRequestView waiting for a second operator is returned and
    nothing is queued. An old meter of the site leaves this account (if it was in it) and is marked removed,
    so the money carried over cannot also be refunded from it or sold on. The same
    number on both sides means the meter was replaced in place (replace_meter_in_place: None when it had
    nothing to carry over)."""
    require_actor(actor)
    entered = entered or amount not in (None, "")
    old_address = str(old_meter_address or "").strip()
    if entered:
        amount, reason = _entered_input(ctx, actor, account_id, amount, reason)
    else:
        authorize(ctx, actor, READ, f"account:{account_id}")
        reason = reason_text(reason, False)
    with ctx.engine.connect() as conn:
        new = meter_by_number(conn, new_meter_address)
        old = store.meter_by_address(conn, old_address) if re.fullmatch(r"[0-9]{12}", old_address) else None
        if old is None and (not entered or not re.fullmatch(r"[0-9]{12}", old_address)):
            raise BillingError("meter_unknown", meter=old_address)
    if old is not None and old["id"] == new["id"]:
        # the same number on both sides: the meter was replaced in place (or reset)
        return replace_meter_in_place(ctx, account_id, old_address, actor, entered=entered,
                                      amount=amount if entered else None, reason=reason)

    def work(conn: sa.Connection):
        account_row(conn, account_id, "open")
        link = open_link(conn, new)
        if link["account_id"] != account_id:
            raise BillingError("meter_not_in_account", meter=new["address"], account=account_id)
        old_link = store.active_link(conn, old["id"]) if old is not None else None
        if old_link is not None and old_link["account_id"] != account_id:
            raise BillingError("meter_not_in_account", meter=old_address, account=account_id)
        epoch = store.meter_epoch(conn, old["id"]) if old is not None else 0
        _refuse_claimed(conn, old_address, epoch)
        old_id = old["id"] if old is not None else None
        if entered:
            if old is not None:
                _refuse_if_answering(ctx, conn, old)
            if amount > transfer_approval_above(conn):
                return _request(conn, ctx, actor, account_id=account_id, old_address=old_address, old_epoch=epoch,
                                old_id=old_id, new=new, amount=amount, reason=reason)
            value, why = amount, reason
        else:
            bal = known_balance(conn, old["id"])
            if bal.balance is None:
                raise BillingError("balance_unknown", meter=old_address)
            if bal.balance <= 0:
                raise BillingError("nothing_to_transfer", meter=old_address, balance=bal.balance)
            value = bal.balance
            why = reason or f"read from meter {old_address} at {bal.reading_ts:%Y-%m-%d %H:%M} UTC"
        entry = _carry(conn, ctx, actor, entered=entered, account_id=account_id, old_address=old_address,
                       old_epoch=epoch, old_id=old_id, new=new, amount=value, reason=why, transfer_from=old_address)
        _retire(conn, ctx, account_id, old["id"] if old is not None else None)
        return _entry_view(conn, entry, new["address"])

    result = _once(ctx, [new["id"]] + ([old["id"]] if old is not None else []), old_address, work)
    if isinstance(result, EntryView):
        ctx.commands_queued()
    return result


def replace_meter_in_place(ctx: BillingContext, account_id: int, meter_address: str, actor: Actor, *,
                           entered: bool = False, amount=None, reason: str | None = None):
    """A meter replaced by a new one that kept its number (or reset in place): it reports a purchase count
    below the ledger's, so every sale to it would fail. This starts a new purchase-count epoch from the
    count the new meter reports, sends it its tariff, limits and prepaid control, and carries the old
    meter's money over as a transfer_in: its balance at the last reading before the reset, or an amount
    typed in with a reason (the rules of an entered transfer: transfer.entered, approval above the amount).
    Returns the transfer's EntryView, a TransferRequestView awaiting approval, or None when there was nothing
    to carry. Refused while a sale or refund to the meter is still on its way (let it be answered or expire)."""
    from billing.reconcile import expected_counts
    require_actor(actor)
    authorize(ctx, actor, READ, f"account:{account_id}")
    entered = entered or amount not in (None, "")
    if entered:
        amount, reason = _entered_input(ctx, actor, account_id, amount, reason)
    else:
        reason = reason_text(reason, False)
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, meter_address)
    now = ctx.now()

    def work(conn: sa.Connection):
        account_row(conn, account_id, "open")
        link = store.active_link(conn, m["id"])
        if link is None or link["account_id"] != account_id:
            raise BillingError("meter_not_in_account", meter=m["address"], account=account_id)
        reading = store.meter_reading(conn, m["id"])
        if reading is None or reading["purchase_count"] is None:
            raise BillingError("meter_never_read", meter=m["address"])
        if reading["ts"] <= link["added_at"]:
            # the last reading is older than the meter's setup (e.g. a replacement registered a moment ago)
            raise BillingError("meter_not_read_since_setup", meter=m["address"])
        count = int(reading["purchase_count"])
        known, _upper = expected_counts(store.live_count_bounds(conn).get(m["id"], (None, None, None)))
        if count >= known:
            raise BillingError("meter_not_reset", meter=m["address"], count=count, expected=known)
        if store.pending_money_entries(conn, m["id"]):
            raise BillingError("money_in_flight", meter=m["address"])
        old_epoch = store.meter_epoch(conn, m["id"])
        _refuse_claimed(conn, m["address"], old_epoch)
        value, why = amount, reason
        if not entered:
            before = store.last_reading_at_count(conn, m["id"], known, store.epoch_start(conn, m["id"]))
            if before is None:
                raise BillingError("balance_unknown", meter=m["address"])
            value = Decimal(before["balance"]).quantize(Decimal("0.01"))
            why = reason or (f"meter {m['address']} replaced in place; balance read at "
                             f"{before['ts']:%Y-%m-%d %H:%M} UTC before the reset")
        store.end_links(conn, account_id, [m["id"]], now)
        epoch = store.start_count_epoch(conn, m["id"])
        tid, version = resolve_tariff(conn, store.meter_tariff_at(conn, m["id"], now), now)
        batch = f"replace-{account_id}-{m['id']}-{epoch}"
        setup_meter(ctx, conn, account_id=account_id, m=m, base=count, tariff_id=tid, version=version,
                     operator=actor.username[:100], now=now, batch=batch)
        entry = request = None
        if value > 0 and entered and value > transfer_approval_above(conn):
            request = _request(conn, ctx, actor, account_id=account_id, old_address=m["address"],
                               old_epoch=old_epoch, old_id=m["id"], new=m, amount=value, reason=why)
        elif value > 0:
            entry = _carry(conn, ctx, actor, entered=entered, account_id=account_id, old_address=m["address"],
                           old_epoch=old_epoch, old_id=m["id"], new=m, amount=value, reason=why,
                           transfer_from=None, batch_id=batch)
        audit.record(conn, operator=actor.username[:100], action="billing.meter_replaced_in_place",
                     target=f"meter:{m['address']}", ts=now, source=actor.address or actor.channel,
                     before={"account_id": account_id, "ledger_count": known, "count_epoch": old_epoch},
                     after={"meter_count": count, "count_epoch": epoch, "carried": value,
                            "receipt_no": entry["receipt_no"] if entry else None,
                            "transfer_request": request.id if request else None, "reason": why})
        return request if request is not None else (None if entry is None else _entry_view(conn, entry, m["address"]))

    result = _once(ctx, [m["id"]], m["address"], work)
    ctx.commands_queued()
    return result


# ---------------------------------------------------------------------------------------------
# the second operator

def _decision_input(ctx: BillingContext, actor: Actor, request_id) -> tuple[int, TransferRequestView]:
    require_actor(actor)
    authorize(ctx, actor, ENTERED, f"transfer_request:{request_id}")
    text = "" if isinstance(request_id, bool) or request_id is None else str(request_id).strip()
    if not (text.isascii() and text.isdigit()):
        raise BillingError("transfer_request_missing")
    if len(text) > 9:                      # beyond any id (and PostgreSQL's integer): unknown, not a 500
        raise BillingError("transfer_request_unknown", request=text[:20])
    rid = int(text)
    return rid, get_transfer_request(ctx, rid)


def _check_awaiting(conn: sa.Connection, rid: int, actor: Actor) -> dict:
    """The request, read in the deciding transaction: still awaiting, and not the decider's own."""
    r = store.transfer_request_by_id(conn, rid)
    if r["state"] != "awaiting_approval":
        raise BillingError("transfer_request_decided", request=rid, state=r["state"], by=r["decided_by"] or "-")
    if r["requested_by"] == actor.username:
        raise BillingError("approval_by_requester", request=rid)
    return r


def approve_transfer(ctx: BillingContext, request_id, actor: Actor, *, note: str | None = None) -> EntryView:
    """A second operator (transfer.entered, not the one who asked) approves an entered transfer: its
    transfer_in and RECHARGE go through the gate now (the hoarding limit as it stands now), the old meter
    leaves the account if it was in it, and the approval is in the operation log."""
    rid, view = _decision_input(ctx, actor, request_id)
    note = reason_text(note, False)
    with ctx.engine.connect() as conn:
        r = store.transfer_request_by_id(conn, rid)
        new = store.meter_by_id(conn, r["new_meter_id"])
    in_place = r["old_meter_id"] == r["new_meter_id"]          # a meter replaced in place: no other old meter
    old_id = None if in_place else r["old_meter_id"]

    def work(conn: sa.Connection) -> EntryView:
        r = _check_awaiting(conn, rid, actor)
        account_row(conn, r["account_id"], "open")
        link = open_link(conn, new)
        if link["account_id"] != r["account_id"]:
            raise BillingError("meter_not_in_account", meter=new["address"], account=r["account_id"])
        now = ctx.now()
        entry = _carry(conn, ctx, actor, entered=True, account_id=r["account_id"], old_address=r["old_address"],
                       old_epoch=r["old_count_epoch"], old_id=r["old_meter_id"], new=new, amount=r["amount"],
                       reason=r["reason"], transfer_from=None if in_place else r["old_address"], request_id=rid)
        store.decide_transfer_request(conn, rid, "awaiting_approval", "approved", decided_by=actor.username[:100],
                                      decided_at=now, decision_note=note, ledger_entry_id=entry["id"])
        _retire(conn, ctx, r["account_id"], old_id)
        audit.record(conn, operator=actor.username[:100], action="billing.transfer_approved",
                     target=f"transfer_request:{rid}", ts=now, source=actor.address or actor.channel,
                     before={"state": "awaiting_approval", "requested_by": r["requested_by"]},
                     after={"state": "approved", "receipt_no": entry["receipt_no"], "amount": r["amount"],
                            "old_meter": r["old_address"], "new_meter": new["address"], "note": note})
        return _entry_view(conn, entry, new["address"])

    result = _once(ctx, [new["id"]] + ([old_id] if old_id is not None else []), view.old_address, work)
    ctx.commands_queued()
    return result


def reject_transfer(ctx: BillingContext, request_id, actor: Actor, *, reason) -> TransferRequestView:
    """A second operator (transfer.entered, not the one who asked) rejects an entered transfer, with a reason:
    nothing is queued and the old meter is free to be carried over again; in the operation log."""
    rid, view = _decision_input(ctx, actor, request_id)
    reason = reason_text(reason, True)
    with ctx.engine.connect() as conn:
        new_id = store.transfer_request_by_id(conn, rid)["new_meter_id"]

    def work(conn: sa.Connection) -> TransferRequestView:
        r = _check_awaiting(conn, rid, actor)
        now = ctx.now()
        store.decide_transfer_request(conn, rid, "awaiting_approval", "rejected", decided_by=actor.username[:100],
                                      decided_at=now, decision_note=reason)
        store.release_old_meter(conn, r["old_address"], r["old_count_epoch"])
        audit.record(conn, operator=actor.username[:100], action="billing.transfer_rejected",
                     target=f"transfer_request:{rid}", ts=now, source=actor.address or actor.channel,
                     before={"state": "awaiting_approval", "requested_by": r["requested_by"]},
                     after={"state": "rejected", "reason": reason, "amount": r["amount"],
                            "old_meter": r["old_address"]})
        return _request_view(conn, store.transfer_request_by_id(conn, rid))

    return _once(ctx, [new_id], view.old_address, work)
