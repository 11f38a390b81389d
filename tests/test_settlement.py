"""Settlement on both engines: a settled command is routed by the purpose stored with it, never by its batch id."""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, settlement
from collectors.commands import MailboxResult
from collectors.secureframe import Result
from storage.outbox import meter_transaction
from storage.schema import account, command
from storage.transitions import COMMAND, transition

from tests.billing_support import Clock, address, cashier, flat_tariff, load_site, make_ctx, meter_id, prepaid_site, \
    write_reading


@pytest.fixture
def ctx(any_engine, fixed_now):
    load_site(any_engine, prepaid_site(15020), fixed_now)
    c = make_ctx(any_engine, Clock(fixed_now))
    flat_tariff(c)
    write_reading(any_engine, address(1), balance="12.34", purchase_count=3, ts=fixed_now - dt.timedelta(minutes=5))
    return c


def _settle(ctx, command_id: int, state: str, result: str | None, balance: str | None = None) -> None:
    """What the dispatcher does with a meter's answer: the command's final state and its settlement, in one
    transaction under the meter's lock."""
    with ctx.engine.connect() as conn:
        cmd = dict(conn.execute(sa.select(command).where(command.c.id == command_id)).mappings().one())
    answer = None if balance is None else MailboxResult(Result.APPLIED, cmd["counter"], cmd["counter"],
                                                        Decimal(balance))
    with meter_transaction(ctx.engine, cmd["meter_id"]) as conn:
        transition(conn, COMMAND, command_id, "sent")
        transition(conn, COMMAND, command_id, state, result=result, finished_at=ctx.now())
        settlement.settle_command(ctx, conn, cmd, state, result, answer, ctx.now())


def _commands(ctx, **where) -> list[dict]:
    with ctx.engine.connect() as conn:
        q = sa.select(command).where(*(command.c[k] == v for k, v in where.items())).order_by(command.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


def test_a_closing_whose_batch_id_does_not_start_with_close_still_closes_the_account(ctx):
    opened = accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(1)], operator="cashier")
    accounts.close_account(ctx, opened.id, cashier(), reason="moved out")
    with ctx.engine.begin() as conn:       # a batch label of another style: nothing may be read out of it
        conn.execute(command.update().values(batch_id="desk-batch-7"))
    [trip] = _commands(ctx, kind="trip")
    assert (trip["purpose"], trip["account_id"]) == ("closing", opened.id)
    _settle(ctx, trip["id"], "acked", "APPLIED", balance="12.34")     # the trip's answer carries the balance
    [refund] = _commands(ctx, kind="refund")
    assert (refund["purpose"], refund["account_id"]) == ("closing", opened.id)
    assert accounts.get_account(ctx, opened.id).status == "closing"
    _settle(ctx, refund["id"], "acked", "APPLIED", balance="0.00")
    closed = accounts.get_account(ctx, opened.id)
    assert closed.status == "closed" and closed.closed_at == ctx.now()
    [entry] = [e for e in ledger.account_entries(ctx, opened.id) if e.kind == "closing_refund"]
    assert (entry.amount, entry.state) == (Decimal("-12.34"), "confirmed")


def test_a_command_of_a_purpose_without_a_handler_is_settled_and_logged(ctx, caplog):
    """A purpose this release has no handler for (written by a later one, say): the command keeps its final
    state, the meter's next command goes out, and the log says what was left undone."""
    opened = accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(1)], operator="cashier")
    with ctx.engine.begin() as conn:
        conn.execute(command.insert().values(meter_id=meter_id(ctx.engine, address(1)), kind="trip",
                                             purpose="breaker", payload="{}", counter=99, state="queued",
                                             attempts=0, operator="t", created_at=ctx.now()))
    [odd] = _commands(ctx, purpose="breaker")
    with caplog.at_level(logging.WARNING, logger="billing.settlement"):
        _settle(ctx, odd["id"], "acked", "APPLIED")
    assert _commands(ctx, purpose="breaker")[0]["state"] == "acked"
    assert any("breaker" in r.getMessage() and str(odd["id"]) in r.getMessage() for r in caplog.records)
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(account.c.status).where(account.c.id == opened.id)).scalar_one() == "open"


def test_a_sale_is_confirmed_by_its_purpose_and_a_second_settlement_leaves_it_as_it_is(ctx, caplog):
    accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(1)], operator="cashier")
    sale = ledger.sell(ctx, address(1), "20.00", cashier())
    [cmd] = _commands(ctx, ledger_entry_id=sale.id)
    assert (cmd["purpose"], cmd["kind"]) == ("sale", "recharge")
    _settle(ctx, cmd["id"], "acked", "APPLIED", balance="32.34")
    confirmed = ledger.get_entry(ctx, sale.receipt_no)
    assert (confirmed.state, confirmed.balance_after) == ("confirmed", Decimal("32.34"))
    with caplog.at_level(logging.WARNING, logger="billing.ledger"), \
            meter_transaction(ctx.engine, cmd["meter_id"]) as conn:    # settled twice (a stale answer)
        settlement.settle_command(ctx, conn, cmd, "failed", "COUNT_MISMATCH", None, ctx.now())
    assert ledger.get_entry(ctx, sale.receipt_no).state == "confirmed"
    assert any("confirmed -> failed" in r.getMessage() for r in caplog.records)
