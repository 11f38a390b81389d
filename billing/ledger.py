"""Money movements: sell, refund, reverse an entry; each passes the gate (billing.credit), which writes its ledger
entry, its meter command and its operation-log row in one transaction.

Purchase counts. A RECHARGE or REFUND carries the meter's next purchase count, which the meter
accepts only as exactly its stored count + 1. The next count comes from the ledger, never from a
reading: the highest count of the meter's live (pending or confirmed) entries, or the count the
meter had when it joined its account (account_meter.base_purchase_count), plus one. Handing it
out and writing the entry happen under the meter's lock (storage.outbox.meter_transaction), so
two cashiers selling to one meter at once get consecutive counts. When a money command fails for
good, the still-pending entries after it move down by one with their commands (settle_entry_of_command).

Sign convention: ledger amounts are signed by their effect on the meter's balance.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from billing.balance import Balance, known_balance, next_purchase_count  # noqa: F401  (read here by pages and tests)
from billing.context import BillingContext
from billing.credit import Actor, authorize, move_money, reason_text, require_actor
from billing.errors import BillingError
from billing.lookup import meter_by_number, operator_name
from billing.money import parse_amount
from core import permissions as P
from storage import billing as store
from storage.outbox import command_of_entry, is_conflict, is_unique_violation, meter_transaction
from storage.transitions import TransitionRefused

KINDS = ("sale", "refund", "reversal", "transfer_in", "closing_refund")
REVERSIBLE = ("sale", "refund")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_RETRIES = 8
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryView:
    """One ledger entry with the state of its meter command, as pages and the API show it."""
    id: int
    receipt_no: str
    kind: str
    amount: Decimal
    account_id: int
    meter_address: str
    purchase_count: int
    state: str                      # pending | confirmed | failed
    operator: str
    source: str
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    balance_after: Decimal | None
    failure: str | None
    reason: str | None
    reverses_receipt_no: str | None
    request_id: str | None
    command_state: str | None       # queued | sent | acked | failed | expired
    command_result: str | None
    replayed: bool = False          # True: an earlier request with the same request_id

    def as_json(self) -> dict:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, Decimal):
                out[k] = str(v)
            elif isinstance(v, dt.datetime):
                out[k] = v.isoformat(timespec="seconds") + "Z"
        return out


# ---------------------------------------------------------------------------------------------
# reads

def entry_view(conn: sa.Connection, entry: dict, replayed: bool = False) -> EntryView:
    cmd = command_of_entry(conn, entry["id"])
    reverses = None
    if entry.get("reverses_entry_id"):
        original = store.entry_by_id(conn, entry["reverses_entry_id"])
        reverses = original["receipt_no"] if original else None
    return EntryView(
        id=entry["id"], receipt_no=entry["receipt_no"], kind=entry["kind"], amount=Decimal(entry["amount"]),
        account_id=entry["account_id"], meter_address=entry["meter_address"], purchase_count=entry["purchase_count"],
        state=entry["state"], operator=entry["operator"], source=entry["source"], created_at=entry["created_at"],
        confirmed_at=entry["confirmed_at"],
        balance_after=None if entry["balance_after"] is None else Decimal(entry["balance_after"]),
        failure=entry["failure"], reason=entry["reason"], reverses_receipt_no=reverses,
        request_id=entry["request_id"], command_state=cmd["state"] if cmd else None,
        command_result=cmd["result"] if cmd else None, replayed=replayed)


def get_entry(ctx: BillingContext, receipt_no: str) -> EntryView:
    with ctx.engine.connect() as conn:
        entry = store.entry_by_receipt(conn, (receipt_no or "").strip())
        if entry is None:
            raise BillingError("entry_unknown", receipt=receipt_no)
        return entry_view(conn, entry)


def meter_entries(ctx: BillingContext, meter_address: str, limit: int = 20) -> list[EntryView]:
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, meter_address)
        return [entry_view(conn, e) for e in store.entries_of_meter(conn, m["id"], limit)]


def account_entries(ctx: BillingContext, account_id: int, limit: int = 200) -> list[EntryView]:
    with ctx.engine.connect() as conn:
        return [entry_view(conn, e) for e in store.entries_of_account(conn, account_id, limit)]


def meter_balance(ctx: BillingContext, meter_address: str) -> Balance:
    with ctx.engine.connect() as conn:
        return known_balance(conn, meter_by_number(conn, meter_address)["id"])


# ---------------------------------------------------------------------------------------------
# validation helpers

def _request_id(request_id) -> str | None:
    if request_id is None:
        return None
    text = str(request_id).strip()
    if not _REQUEST_ID.fullmatch(text):
        raise BillingError("request_id_invalid")
    return text


def open_link(conn: sa.Connection, m: dict) -> dict:
    """The meter's link to an open account, or BillingError (closed / closing account, meter not opened)."""
    link = store.active_link(conn, m["id"])
    if link is not None and link["account_status"] == "open":
        return link
    if link is not None or (store.latest_link(conn, m["id"]) or {}).get("account_status") in ("closing", "closed"):
        raise BillingError("account_closed", meter=m["address"])
    raise BillingError("meter_not_opened", meter=m["address"])


# ---------------------------------------------------------------------------------------------
# writing

def _locked(ctx: BillingContext, meter_id: int, work: Callable[[sa.Connection], dict | EntryView]):
    """Run `work` in the meter's transaction, retrying optimistic-concurrency conflicts."""
    for attempt in range(_RETRIES):
        try:
            with meter_transaction(ctx.engine, meter_id) as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if not is_conflict(exc) or attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _replay(conn: sa.Connection, prior: dict, kind: str, meter_id: int, amount: Decimal) -> EntryView:
    if prior["kind"] != kind or prior["meter_id"] != meter_id or abs(Decimal(prior["amount"])) != amount:
        raise BillingError("request_id_reused", request_id=prior["request_id"])
    return entry_view(conn, prior, replayed=True)


def _money(ctx: BillingContext, action: str, meter_address, amount, actor: Actor, *, request_id=None,
           reason=None) -> EntryView:
    """A sale or a refund: checked before anything is written, then through the gate under the meter's lock."""
    kind = "sale" if action == "sale" else "refund"
    require_actor(actor)
    authorize(ctx, actor, P.SALE_CREATE if kind == "sale" else P.SALE_REFUND, f"meter:{str(meter_address)[:20]}")
    if kind == "refund" and amount in (None, "") and reason_text(reason, False) is None:
        raise BillingError("refund_fields_missing")
    amount = parse_amount(amount, negative_code="amount_negative" if kind == "sale" else "refund_amount_negative")
    request_id = _request_id(request_id)
    reason = reason_text(reason, required=kind == "refund")
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, meter_address)

    def work(conn: sa.Connection) -> EntryView:
        if request_id is not None:
            prior = store.entry_by_request_id(conn, request_id)
            if prior is not None:
                return _replay(conn, prior, kind, m["id"], amount)
        link = open_link(conn, m)
        if kind == "refund":
            bal = known_balance(conn, m["id"])
            if bal.balance is None:
                raise BillingError("balance_unknown", meter=m["address"])
            if amount > bal.refundable:
                raise BillingError("refund_above_balance", amount=amount, balance=bal.refundable)
        entry = move_money(conn, ctx, actor, kind, amount=amount, meter_row=m, account_id=link["account_id"],
                           reason=reason, request_id=request_id)
        return entry_view(conn, {**entry, "meter_address": m["address"], "confirmed_at": None,
                                 "balance_after": None, "failure": None})

    try:
        view = _locked(ctx, m["id"], work)
    except sa.exc.DBAPIError as exc:
        # the same request_id committed by another process (or for another meter) in the meantime
        if request_id is None or not is_unique_violation(exc):
            raise
        with ctx.engine.connect() as conn:
            prior = store.entry_by_request_id(conn, request_id)
            if prior is None:
                raise
            return _replay(conn, prior, kind, m["id"], amount)
    if not view.replayed:
        ctx.commands_queued()
    return view


def sell(ctx: BillingContext, meter_address: str, amount, actor: Actor, *,
         request_id: str | None = None) -> EntryView:
    """Sell `amount` yuan to a meter (sale.create): a pending sale and its RECHARGE. A repeated request_id
    returns the first."""
    return _money(ctx, "sale", meter_address, amount, actor, request_id=request_id)


def refund(ctx: BillingContext, meter_address: str, amount, actor: Actor, *, reason: str | None = None,
           request_id: str | None = None) -> EntryView:
    """Give money back from a meter (sale.refund, with a reason): refused before anything is written above its
    last known balance."""
    return _money(ctx, "refund", meter_address, amount, actor, request_id=request_id, reason=reason)


def reverse_entry(ctx: BillingContext, receipt_no: str, actor: Actor, reason: str) -> EntryView:
    """Undo a mistaken sale (a REFUND) or refund (a RECHARGE) with the meter's next purchase count (sale.reverse,
    with a reason).

    Only a confirmed sale or refund can be reversed, once; a reversal cannot itself be reversed
    (the database refuses a second reversal of one entry too: reverses_entry_id is unique).
    """
    require_actor(actor)
    authorize(ctx, actor, P.SALE_REVERSE, f"receipt:{str(receipt_no or '')[:40]}")
    receipt_text = str(receipt_no or "").strip()
    reason_given = reason_text(reason, False)
    if not receipt_text and reason_given is None:
        raise BillingError("reversal_fields_missing")
    if not receipt_text:
        raise BillingError("receipt_missing")
    reason = reason_text(reason, required=True)
    with ctx.engine.connect() as conn:
        original = store.entry_by_receipt(conn, receipt_text)
    if original is None:
        raise BillingError("entry_unknown", receipt=receipt_text)

    def work(conn: sa.Connection) -> EntryView:
        entry = store.entry_by_id(conn, original["id"])
        if entry["kind"] == "reversal":
            raise BillingError("reversal_not_reversible", receipt=entry["receipt_no"])
        if entry["kind"] not in REVERSIBLE:
            raise BillingError("entry_not_reversible", receipt=entry["receipt_no"], kind=entry["kind"])
        if entry["state"] != "confirmed":
            raise BillingError("entry_not_confirmed", receipt=entry["receipt_no"], state=entry["state"])
        done = store.reversal_of(conn, entry["id"])
        if done is not None and done["state"] == "failed":
            # one reversal per entry (the database holds to it): the meter refused this one, so the
            # money is put right with a plain refund or sale and a reason, never a second reversal
            raise BillingError("reversal_failed_before", receipt=entry["receipt_no"], reversal=done["receipt_no"],
                               failure=done["failure"] or "-")
        if done is not None:
            raise BillingError("already_reversed", receipt=entry["receipt_no"], reversal=done["receipt_no"])
        m = store.meter_by_id(conn, entry["meter_id"])
        link = open_link(conn, m)
        if link["account_id"] != entry["account_id"]:
            raise BillingError("account_closed", meter=m["address"])
        undo = -Decimal(entry["amount"])
        if undo < 0:
            bal = known_balance(conn, m["id"])
            if bal.balance is None:
                raise BillingError("balance_unknown", meter=m["address"])
            if -undo > bal.refundable:
                raise BillingError("reversal_above_balance", amount=-undo, balance=bal.refundable)
        new = move_money(conn, ctx, actor, "reversal_of_refund" if undo > 0 else "reversal_of_sale", amount=abs(undo),
                         meter_row=m, account_id=entry["account_id"], reason=reason, reverses_entry_id=entry["id"])
        return entry_view(conn, {**new, "meter_address": m["address"], "confirmed_at": None,
                                 "balance_after": None, "failure": None})

    try:
        view = _locked(ctx, original["meter_id"], work)
    except sa.exc.DBAPIError as exc:
        if not is_unique_violation(exc):
            raise
        with ctx.engine.connect() as conn:
            done = store.reversal_of(conn, original["id"])
        if done is None:
            raise
        raise BillingError("already_reversed", receipt=original["receipt_no"], reversal=done["receipt_no"]) from None
    ctx.commands_queued()
    return view


# ---------------------------------------------------------------------------------------------
# settlement: billing.settlement calls this for every money command, inside the dispatcher's transaction
# (meter lock held)

def settle_entry_of_command(ctx: BillingContext, conn: sa.Connection, cmd: dict, state: str, result: str | None,
                            mailbox, now: dt.datetime) -> None:
    """A money command reached a final state: its ledger entry pending -> confirmed (acked) or failed (failed,
    expired); a failed one moves the later pending counts down and frees the old meter of a transfer. An entry
    that is no longer pending (settled already) is left as it is and logged."""
    entry_id = cmd.get("ledger_entry_id")
    if not entry_id or state not in ("acked", "failed", "expired"):
        return
    try:
        if state == "acked":
            store.settle_entry(conn, entry_id, "confirmed", confirmed_at=now,
                               balance_after=None if mailbox is None else mailbox.balance)
            return
        store.settle_entry(conn, entry_id, "failed", failure=(result or state)[:100])
    except TransitionRefused as refused:
        log.warning("command %s (%s) settled %s: %s", cmd.get("id"), cmd.get("purpose"), state, refused)
        return
    store.shift_pending_counts(conn, cmd["meter_id"], cmd["counter"])
    # a transfer the meter never took frees its old meter: the balance may be carried over again
    store.release_old_meter_of_entry(conn, entry_id)


def payload_of(cmd: dict) -> dict:
    return json.loads(cmd["payload"]) if cmd.get("payload") else {}
