"""The one gate every movement of money on a meter passes, and the only writer of ledger entries and money commands.

DESIGN: "every credit to a meter passes one gate: permission, amount rules, hoarding limit, audit". Every
path that raises a meter's balance (a sale, a balance carried over from an old meter, the reversal of a
refund, and whatever later adds one) and every path that lowers it (a refund, the reversal of a sale, a
closing refund, a meter settled by hand) calls `move_money` inside the meter's transaction and names its
action. The action table (ACTIONS) says which permission the action needs, whether it needs a reason and
which way the money goes; the gate applies them, the amount rules (billing.money.parse_amount) and, for a
credit, the hoarding limit, then writes the entry, its command and its operation-log row together.

Who acts comes in as an Actor: the dashboard builds it from the signed-in operator, the payment API from
its client's scope, the dispatcher (a closing refund the meter's answer decides) as the system. So the
permission is checked here, on the server, whatever a page showed; a refusal is written to the operation
log (permission.denied) and raised as a BillingError.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from billing.balance import known_balance, next_purchase_count
from billing.context import BillingContext
from billing.errors import BillingError
from billing.money import MAX_AMOUNT, parse_amount, receipt_number, to_fen
from billing.settings import hoarding_limit
from core import permissions as P
from storage import audit
from storage import billing as store
from storage.outbox import insert_command
from storage.purposes import Purpose

REASON_LENGTH = 300
# A closing refund gives back whatever the meter reported; the wire carries uint32 fen.
WIRE_MAX = Decimal("42949672.95")


@dataclass(frozen=True)
class Actor:
    """Who acts and what they may do: an operator signed in to the dashboard, a payment-API client, or the system."""
    username: str
    permissions: frozenset[str] = frozenset()
    address: str | None = None       # the client's network address, for the operation log
    channel: str = "desk"            # where the action came from: the ledger's `source` (desk | api)
    system: bool = False             # the dispatcher, finishing what an operator started (a closing)

    def may(self, permission: str | None) -> bool:
        """None: an action only the system takes; the system takes no other."""
        if permission is None:
            return self.system
        return not self.system and permission in self.permissions

    @classmethod
    def for_system(cls, on_behalf_of: str | None) -> Actor:
        return cls(username=on_behalf_of or "system", system=True, channel="desk")


@dataclass(frozen=True)
class MoneyAction:
    kind: str                    # the ledger entry's kind
    purpose: Purpose             # its command's purpose: what the command's settlement does (billing.settlement)
    permission: str | None       # None: only the system
    reason_required: bool
    credit: bool                 # True raises the meter's balance (the hoarding limit applies)
    command: bool = True         # False: nothing is sent to the meter (a dead meter settled by hand)
    maximum: Decimal = MAX_AMOUNT


ACTIONS: dict[str, MoneyAction] = {
    "sale": MoneyAction("sale", Purpose.SALE, P.SALE_CREATE, False, True),
    "refund": MoneyAction("refund", Purpose.REFUND, P.SALE_REFUND, True, False),
    "reversal_of_sale": MoneyAction("reversal", Purpose.REVERSAL, P.SALE_REVERSE, True, False),
    "reversal_of_refund": MoneyAction("reversal", Purpose.REVERSAL, P.SALE_REVERSE, True, True),
    # carried over from an old meter: as read from it, or typed in when it is dead (and approved above a sum)
    "transfer_read": MoneyAction("transfer_in", Purpose.TRANSFER, P.ACCOUNT_OPEN, False, True),
    "transfer_entered": MoneyAction("transfer_in", Purpose.TRANSFER, P.TRANSFER_ENTERED, True, True),
    # a closing: the meter's answer to its trip decides the refund; the closer's permission was checked then
    "closing_refund": MoneyAction("closing_refund", Purpose.CLOSING, None, False, False, maximum=WIRE_MAX),
    "settle_by_hand": MoneyAction("closing_refund", Purpose.CLOSING, P.ACCOUNT_CLOSE, True, False, command=False),
}


def require_actor(actor) -> Actor:
    if not isinstance(actor, Actor):
        raise TypeError(f"billing services take an Actor (who acts and what they may do), not {type(actor).__name__}")
    if not actor.username.strip():
        raise BillingError("operator_missing")
    return actor


def authorize(ctx: BillingContext, actor: Actor, permission: str | None, target: str) -> None:
    """Refuse (BillingError permission_denied, with its operation-log row) unless the actor may do `permission`.

    The refusal's row is written in a transaction of its own: the caller's, if any, is rolled back by the raise."""
    require_actor(actor)
    if actor.may(permission):
        return
    with ctx.engine.begin() as conn:
        audit.record(conn, operator=actor.username[:100], action="permission.denied", target=target[:200],
                     ts=ctx.now(), after={"permission": permission or "system"}, source=actor.address or actor.channel)
    raise BillingError("permission_denied", permission=permission or "system")


def reason_text(reason, required: bool, code: str = "reason_required") -> str | None:
    """A reason as kept: one line of printable text, at most REASON_LENGTH characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(reason or "")).split())[:REASON_LENGTH]
    if required and not text:
        raise BillingError(code)
    return text or None


def check_hoarding(conn: sa.Connection, m: dict, amount: Decimal) -> None:
    """A credit may not leave more than the hoarding limit on the meter (its balance and credits on their way)."""
    limit = hoarding_limit(conn)
    if limit is None:
        return
    bal = known_balance(conn, m["id"])
    if bal.projected + amount > limit:
        raise BillingError("above_hoarding_limit", amount=amount, limit=limit, balance=bal.projected,
                           most=max(Decimal("0.00"), limit - bal.projected))


def move_money(conn: sa.Connection, ctx: BillingContext, actor: Actor, action: str, *, amount, meter_row: dict,
               account_id: int, reason=None, request_id: str | None = None, reverses_entry_id: int | None = None,
               transfer_from: str | None = None, batch_id: str | None = None) -> dict:
    """Inside the meter's transaction: the gate, then the ledger entry, its RECHARGE / REFUND with the meter's
    next purchase count (or, for a meter settled by hand, a confirmed entry and no command) and its
    operation-log row. `amount` is the sum moved (positive); the action says which way. Returns the entry."""
    spec = ACTIONS[action]
    authorize(ctx, actor, spec.permission, f"meter:{meter_row['address']}")
    value = parse_amount(amount, maximum=spec.maximum)
    why = reason_text(reason, spec.reason_required)
    if spec.credit:
        check_hoarding(conn, meter_row, value)
    signed = value if spec.credit else -value
    now = ctx.now()
    count = next_purchase_count(conn, meter_row["id"]) if spec.command else 0
    entry_id = store.next_entry_id(conn)
    receipt = receipt_number(spec.kind, entry_id, ctx.local_day(now))
    entry = dict(id=entry_id, receipt_no=receipt, kind=spec.kind, amount=signed, account_id=account_id,
                 meter_id=meter_row["id"], purchase_count=count, operator=actor.username[:100], reason=why,
                 source=actor.channel if spec.command else "manual", created_at=now,
                 state="pending" if spec.command else "confirmed", confirmed_at=None if spec.command else now,
                 reverses_entry_id=reverses_entry_id, request_id=request_id, transfer_from=transfer_from)
    store.insert_entry(conn, **entry)
    if spec.command:
        insert_command(conn, meter_id=meter_row["id"], kind="recharge" if signed > 0 else "refund",
                       purpose=spec.purpose, payload={"amount_fen": to_fen(value)}, counter=count,
                       operator=actor.username[:100], now=now, batch_id=batch_id, ledger_entry_id=entry_id,
                       account_id=account_id)
    audit.record(conn, operator=actor.username[:100], action=f"billing.{spec.kind}",
                 target=f"meter:{meter_row['address']}", ts=now, source=actor.address or actor.channel,
                 after={"receipt_no": receipt, "amount": signed, "purchase_count": count, "account_id": account_id,
                        "request_id": request_id, "reason": why, "action": action})
    return entry
