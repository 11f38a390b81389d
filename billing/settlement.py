"""What happens when a remote command reaches its final state: one handler per purpose (command.purpose).

The dispatcher calls settle_command (its on_settled hook, serve.billing wires it) inside the transaction that
records the meter's answer, with the meter's lock held; the command row's state is final already (acked,
failed or expired). settle_command looks up the handler registered for the command's stored purpose, never
anything read out of its batch id:

- sale, refund, reversal, transfer: the ledger entry riding on the command is confirmed or failed
  (billing.ledger.settle_entry_of_command);
- closing: the same for a closing refund, then the account's closing moves on (billing.accounts.closing_step:
  a trip's answer queues the closing refund of its balance, the last settled meter closes the account);
- opening, tariff_push, limits_push, relay, grid (a terminal's breaker, tap, capacity mode: grid.avc reads
  the command's state), other: the command's own state is all there is.

A handler that raises rolls the dispatcher's transaction back (the command stays sent and is asked again); a
command whose purpose has no handler (a newer release's purpose, a capability not loaded) is logged and left
settled. Later capabilities (work orders, breakers) register theirs with register().
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import sqlalchemy as sa

from billing.accounts import closing_step
from billing.context import BillingContext
from billing.ledger import settle_entry_of_command
from storage.purposes import Purpose

log = logging.getLogger(__name__)

# (ctx, conn, command row, final state, result name, mailbox answer or None, now)
Handler = Callable[[BillingContext, sa.Connection, dict, str, "str | None", object, dt.datetime], None]
HANDLERS: dict[str, Handler] = {}


def register(purpose: str, handler: Handler) -> None:
    """The handler of every command of `purpose` that settles from now on (one per purpose; a second replaces it)."""
    HANDLERS[str(purpose)] = handler


def settle_command(ctx: BillingContext, conn: sa.Connection, cmd: dict, state: str, result: str | None,
                   mailbox, now: dt.datetime) -> None:
    """The dispatcher's on_settled: route the settled command to its purpose's handler."""
    handler = HANDLERS.get(cmd.get("purpose") or "")
    if handler is None:
        log.warning("command %s (%s to meter %s) settled %s: no handler for purpose %r; nothing else done",
                    cmd.get("id"), cmd.get("kind"), cmd.get("meter_id"), state, cmd.get("purpose"))
        return
    handler(ctx, conn, cmd, state, result, mailbox, now)


def settle_closing(ctx: BillingContext, conn: sa.Connection, cmd: dict, state: str, result: str | None,
                   mailbox, now: dt.datetime) -> None:
    """A closing trip or closing refund: its entry first (a refund's), then the account's next step."""
    settle_entry_of_command(ctx, conn, cmd, state, result, mailbox, now)
    closing_step(ctx, conn, cmd, state, mailbox, now)


def nothing_to_settle(ctx: BillingContext, conn: sa.Connection, cmd: dict, state: str, result: str | None,
                      mailbox, now: dt.datetime) -> None:
    """Settings and relay commands: the command's own final state is the whole record."""


for _purpose in (Purpose.SALE, Purpose.REFUND, Purpose.REVERSAL, Purpose.TRANSFER):
    register(_purpose, settle_entry_of_command)
register(Purpose.CLOSING, settle_closing)
for _purpose in (Purpose.OPENING, Purpose.TARIFF_PUSH, Purpose.LIMITS_PUSH, Purpose.RELAY, Purpose.GRID, Purpose.OTHER):
    register(_purpose, nothing_to_settle)
