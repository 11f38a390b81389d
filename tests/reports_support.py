"""Helpers of the report centre tests: a small prepaid site with a movable clock, and meters' answers settled as
the dispatcher settles them (the command's final state and its ledger entry in one transaction)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from billing import accounts, settlement
from collectors.commands import MailboxResult
from collectors.secureframe import Result
from storage.outbox import meter_transaction
from storage.schema import command
from storage.transitions import COMMAND, transition

from tests.billing_support import NATIONAL_ID, Clock, address, flat_tariff, load_site, make_ctx, prepaid_site, \
    write_reading


def report_site(engine, now: dt.datetime, port: int = 15040):
    """Four meters of "Dorm A" with 100.00 each on an open account; a context with a movable clock."""
    load_site(engine, prepaid_site(port), now)
    ctx = make_ctx(engine, Clock(now))
    flat_tariff(ctx)
    for n in (1, 2, 3, 4):
        write_reading(engine, address(n), balance="100.00", purchase_count=3, ts=now - dt.timedelta(minutes=5))
    accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(n) for n in (1, 2, 3, 4)],
                          operator="cashier", phone="13800138000", national_id=NATIONAL_ID)
    settle_queued(ctx, "acked")
    return ctx


def settle_queued(ctx, state: str, ledger_entry_id: int | None = None) -> None:
    """Every queued command (or the one of `ledger_entry_id`) answered: acked (applied) or failed."""
    with ctx.engine.connect() as conn:
        q = sa.select(command).where(command.c.state == "queued").order_by(command.c.id)
        if ledger_entry_id is not None:
            q = q.where(command.c.ledger_entry_id == ledger_entry_id)
        cmds = [dict(r) for r in conn.execute(q).mappings()]
    for cmd in cmds:
        answer = MailboxResult(Result.APPLIED, cmd["counter"], cmd["counter"], Decimal("100.00")) \
            if state == "acked" and cmd["counter"] is not None else None
        with meter_transaction(ctx.engine, cmd["meter_id"]) as conn:
            transition(conn, COMMAND, cmd["id"], "sent")
            transition(conn, COMMAND, cmd["id"], state, result="APPLIED" if state == "acked" else "TIMEOUT",
                       finished_at=ctx.now())
            settlement.settle_command(ctx, conn, cmd, state, None if state == "acked" else "TIMEOUT", answer,
                                      ctx.now())
