"""Command dispatch against the simulated field on loopback, on both engines: sales applied, answers settled,
resends never credit twice, mismatches raise alarms, closing refunds the exact balance, reconciliation."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from functools import partial

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, settlement, transfers
from billing.context import utcnow
from billing.errors import BillingError
from billing.reconcile import reconcile
from collectors.cycle import CollectorService
from collectors.dispatch import Dispatcher, command_frame
from collectors.poller import FieldIO, PollTarget
from collectors.profiles import ProfileRegistry
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from simulator.tariff import MODE_TIERED, TIERED_DEMO
from storage.alarms import message_text, open_alarms
from storage.alarms import meter as meter_subject
from storage.outbox import count_attempt
from storage.schema import alarm_event, audit_log, command, gateway, meter, meter_state

from tests.billing_support import (NATIONAL_ID, actor, address, cashier, flat_tariff, load_site, make_ctx, meter_id,
                                   prepaid_site)
from tests.conftest import free_port_block
from tests.webclient import db_snapshot


class World:
    def __init__(self, engine, field, fio, ctx, collector, dispatcher):
        self.engine, self.field, self.fio, self.ctx = engine, field, fio, ctx
        self.collector, self.dispatcher = collector, dispatcher

    def meter(self, n: int):
        return self.field.meter(address(n))

    def open(self, *ns: int, holder="张三"):
        view = accounts.open_account(self.ctx, holder_name=holder, meter_addresses=[address(n) for n in ns],
                                     operator="cashier", national_id=NATIONAL_ID)
        self.dispatcher.run_once()
        return view

    def entry(self, receipt):
        return ledger.get_entry(self.ctx, receipt)


@pytest.fixture
def world(any_engine):
    site = prepaid_site(free_port_block(2))
    now = utcnow()
    load_site(any_engine, site, now)
    with any_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))  # quick, yet answered on a busy machine
    ctx = make_ctx(any_engine, utcnow)
    flat_tariff(ctx)
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(any_engine, fio, clock=utcnow)
        dispatcher = Dispatcher(any_engine, fio, TEST_MASTER_KEY, utcnow,
                                on_settled=partial(settlement.settle_command, ctx), send_timeout_s=1.0)
        collector.before_cycle.append(dispatcher.run_once)
        collector.after_cycle.append(lambda _s: reconcile(any_engine, utcnow))
        collector.run_cycle()
        yield World(any_engine, ft.field, fio, ctx, collector, dispatcher)


def test_a_sale_is_applied_on_the_meter_and_confirms_its_entry(world):
    world.open(1)
    sale = ledger.sell(world.ctx, address(1), "50.00", cashier("cashier"))
    summary = world.dispatcher.run_once()
    assert summary.acked == 1 and summary.failed == 0
    done = world.entry(sale.receipt_no)
    assert (done.state, done.command_state, done.command_result) == ("confirmed", "acked", "APPLIED")
    assert done.balance_after == Decimal("150.00")
    assert (world.meter(1).balance_fen, world.meter(1).purchase_count) == (15000, 4)


def test_opening_sends_tariff_limits_and_restores_prepaid_control_on_the_meter(world):
    world.meter(3).prepaid_enabled = False       # a meter left in keep-power by its last tenant
    world.meter(3).alarm1_fen = 100
    world.meter(3).tariff = TIERED_DEMO
    world.open(3)
    with world.engine.connect() as conn:
        states = conn.execute(sa.select(command.c.state).where(command.c.meter_id == meter_id(world.engine, address(3))))
        assert set(states.scalars()) == {"acked"}
    assert world.meter(3).prepaid_enabled and world.meter(3).alarm1_fen == 2000
    assert world.meter(3).tariff.mode != MODE_TIERED and world.meter(3).tariff.prices[2] == 6000


def test_two_cashiers_selling_to_one_meter_at_the_same_moment_are_both_applied(world):
    world.open(1)
    start = threading.Barrier(2)
    sold = []

    def sell(name, amount):
        start.wait()
        sold.append(ledger.sell(world.ctx, address(1), amount, cashier(name)))

    threads = [threading.Thread(target=sell, args=("alice", "10.00")),
               threading.Thread(target=sell, args=("bob", "20.00"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    world.dispatcher.run_once()
    assert sorted(s.purchase_count for s in sold) == [4, 5]
    assert {world.entry(s.receipt_no).state for s in sold} == {"confirmed"}
    assert (world.meter(1).balance_fen, world.meter(1).purchase_count) == (10000 + 3000, 5)


def test_a_command_resent_after_a_crash_is_not_credited_twice(world):
    world.open(1)
    sale = ledger.sell(world.ctx, address(1), "25.00", cashier("cashier"))
    with world.engine.begin() as conn:  # the dispatcher marked it sent, wrote the frame, then died
        cmd = dict(conn.execute(sa.select(command).where(command.c.ledger_entry_id == sale.id)).mappings().one())
        count_attempt(conn, cmd["id"], utcnow())
    target = PollTarget(meter_id=cmd["meter_id"], meter_address=address(1), gateway="GW-A", host="127.0.0.1",
                        port=world.field.site.gateways[0].buses[0].port, framing="socket", bus_no=1, unit=1,
                        profile="acrel-ddsy1352")
    first = world.fio.send_frame(target, command_frame(TEST_MASTER_KEY, address(1), cmd, int(utcnow().timestamp())))
    assert first.result.name == "APPLIED"
    world.dispatcher.run_once()  # restart: the same counter and amount again
    done = world.entry(sale.receipt_no)
    assert (done.state, done.command_result) == ("confirmed", "ALREADY_APPLIED")
    assert (world.meter(1).balance_fen, world.meter(1).purchase_count) == (12500, 4)


def test_count_mismatch_opens_a_reconciliation_alarm_and_fails_the_sale(world):
    world.open(1)
    world.field.reset_meter_counter(address(1))  # meter swapped behind billing's back: its count is 0 now
    sale = ledger.sell(world.ctx, address(1), "10.00", cashier("cashier"))
    world.dispatcher.run_once()
    done = world.entry(sale.receipt_no)
    assert (done.state, done.failure, done.command_result) == ("failed", "COUNT_MISMATCH", "COUNT_MISMATCH")
    with world.engine.connect() as conn:
        alarms = open_alarms(conn, "count_mismatch", meter_subject(meter_id(world.engine, address(1))))
    assert len(alarms) == 1 and "count 4" in message_text(alarms[0], "en")
    assert world.meter(1).balance_fen == 0


def test_a_refused_refund_fails_and_the_sales_after_it_move_down_one_count(world):
    world.open(2)                                      # 5.00 yuan, 7 purchases
    refund = ledger.refund(world.ctx, address(2), "5.00", cashier("cashier"), reason="moved out")
    sale = ledger.sell(world.ctx, address(2), "10.00", cashier("cashier"))
    assert (refund.purchase_count, sale.purchase_count) == (8, 9)
    world.field.meter(address(2)).balance_fen = 400     # the room used 1.00 yuan meanwhile
    world.dispatcher.run_once()
    assert world.entry(refund.receipt_no).failure == "INSUFFICIENT"
    done = world.entry(sale.receipt_no)
    assert (done.state, done.purchase_count) == ("confirmed", 8)
    assert (world.meter(2).balance_fen, world.meter(2).purchase_count) == (1400, 8)
    with world.engine.connect() as conn:   # the refused refund opened command_failed; the sale applied closed it
        failed = conn.execute(sa.select(alarm_event).where(alarm_event.c.kind == "command_failed")).mappings().all()
    assert len(failed) == 1 and failed[0]["closed_at"] is not None
    assert message_text(failed[0], "en").endswith("(refund) failed: INSUFFICIENT.")


def test_a_command_to_an_unreachable_meter_waits_then_expires(world):
    world.open(4)
    world.field.set_gateway_down("GW-A", True)
    sale = ledger.sell(world.ctx, address(4), "10.00", cashier("cashier"))
    summary = world.dispatcher.run_once()
    assert summary.undelivered == 1 and world.entry(sale.receipt_no).command_state == "queued"
    world.dispatcher.expire_after = dt.timedelta(seconds=0)
    world.dispatcher.run_once()
    done = world.entry(sale.receipt_no)
    assert (done.state, done.command_state) == ("failed", "expired")
    world.field.set_gateway_down("GW-A", False)
    again = ledger.sell(world.ctx, address(4), "10.00", cashier("cashier"))
    assert again.purchase_count == 13, "the expired count is handed out again"


def test_closing_an_account_refunds_the_whole_balance_and_frees_its_meters(world):
    view = world.open(1, 2)
    accounts.close_account(world.ctx, view.id, cashier("cashier"), reason="moved out")
    world.dispatcher.run_once()   # trips; their answers carry the balances; closing refunds queued
    world.dispatcher.run_once()   # closing refunds
    done = accounts.get_account(world.ctx, view.id)
    assert done.status == "closed" and done.closed_at is not None
    assert (world.meter(1).balance_fen, world.meter(2).balance_fen) == (0, 0)
    assert world.meter(1).forced_trip
    refunds = [e for e in ledger.account_entries(world.ctx, view.id) if e.kind == "closing_refund"]
    assert sorted(e.amount for e in refunds) == [Decimal("-100.00"), Decimal("-5.00")]
    assert {e.state for e in refunds} == {"confirmed"}
    with world.engine.connect() as conn:
        statuses = conn.execute(sa.select(meter.c.status).where(meter.c.address.in_([address(1), address(2)])))
        assert set(statuses.scalars()) == {"not_opened"}


def test_a_reversal_the_meter_never_applied_says_how_to_put_the_money_right(world):
    world.open(4)
    sale = ledger.sell(world.ctx, address(4), "30.00", cashier("cashier"))
    world.dispatcher.run_once()
    assert world.entry(sale.receipt_no).state == "confirmed"
    world.field.set_gateway_down("GW-A", True)
    rev = ledger.reverse_entry(world.ctx, sale.receipt_no, cashier("cashier"), "sold to the wrong room")
    world.dispatcher.expire_after = dt.timedelta(seconds=0)
    world.dispatcher.run_once()
    assert world.entry(rev.receipt_no).state == "failed"
    world.field.set_gateway_down("GW-A", False)
    with pytest.raises(BillingError) as err:
        ledger.reverse_entry(world.ctx, sale.receipt_no, cashier("cashier"), "again")
    assert err.value.code == "reversal_failed_before" and rev.receipt_no in err.value.message("en")
    assert "退费" in err.value.message("zh")
    world.dispatcher.expire_after = dt.timedelta(hours=24)
    fix = ledger.refund(world.ctx, address(4), "30.00", cashier("cashier"),
                        reason=f"reversal {rev.receipt_no} not applied")
    world.dispatcher.run_once()
    assert world.entry(fix.receipt_no).state == "confirmed"
    assert world.meter(4).balance_fen == 2000, "20.00 before the mistaken sale, 20.00 after it is put right"


def _dead_meter_closing(world):
    """Account with meters 1 and 2; meter 2 stops answering; closing settles 1 and refuses 2."""
    view = world.open(1, 2)
    world.field.set_meter_offline(address(2), True)
    accounts.close_account(world.ctx, view.id, cashier("cashier"), reason="moved out")
    world.dispatcher.run_once()                  # meter 1 trips; meter 2 does not answer
    world.dispatcher.expire_after = dt.timedelta(seconds=0)
    world.dispatcher.run_once()                  # meter 1's closing refund; meter 2's trip expires
    return view


def test_a_dead_meter_is_settled_by_hand_and_the_account_closes(world):
    view = _dead_meter_closing(world)
    assert accounts.closing_status(world.ctx, view.id) == {address(1): "settled", address(2): "refused"}
    assert accounts.get_account(world.ctx, view.id).status == "closing"
    with world.engine.connect() as conn:
        commands_before = conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one()

    done = accounts.settle_meter_by_hand(world.ctx, view.id, address(2), cashier("cashier"), amount="5.00",
                                         reason="meter burnt; its display read 5.00")
    assert done.account.status == "closed" and done.refund == Decimal("5.00")
    refunds = {e.meter_address: e for e in ledger.account_entries(world.ctx, view.id) if e.kind == "closing_refund"}
    assert refunds[address(1)].amount == Decimal("-100.00") and refunds[address(1)].state == "confirmed"
    by_hand = refunds[address(2)]
    assert (by_hand.amount, by_hand.state, by_hand.receipt_no) == (Decimal("-5.00"), "confirmed", done.receipt_no)
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one() == commands_before, \
            "nothing is sent to a meter that cannot answer"
        statuses = dict(conn.execute(sa.select(meter.c.address, meter.c.status)
                                     .where(meter.c.address.in_([address(1), address(2)]))).all())
        logged = conn.execute(sa.select(audit_log.c.operator, audit_log.c.after)
                              .where(audit_log.c.action == "billing.closing_settled_by_hand")).one()
    assert statuses == {address(1): "not_opened", address(2): "removed"}
    assert logged.operator == "cashier" and "meter burnt" in logged.after
    assert accounts.closing_status(world.ctx, view.id) == {address(1): "settled", address(2): "by_hand"}
    # the meter was still holding 5.00: nothing sold or refunded on it afterwards
    with pytest.raises(BillingError):
        ledger.sell(world.ctx, address(2), "10.00", cashier("cashier"))


def test_settling_by_hand_is_refused_while_the_meter_may_still_answer(world):
    view = world.open(1, 2)
    with pytest.raises(BillingError) as err:
        accounts.settle_meter_by_hand(world.ctx, view.id, address(2), cashier("cashier"), amount="5", reason="dead")
    assert err.value.code == "account_not_closing"
    world.field.set_meter_offline(address(2), True)
    accounts.close_account(world.ctx, view.id, cashier("cashier"), reason="moved out")
    world.dispatcher.run_once()                  # meter 2's trip still waiting to be delivered
    with pytest.raises(BillingError) as err:
        accounts.settle_meter_by_hand(world.ctx, view.id, address(2), cashier("cashier"), amount="5", reason="dead")
    assert err.value.code == "closing_meter_answering"
    world.dispatcher.run_once()
    with pytest.raises(BillingError) as err:     # meter 1 answered and was refunded: it needs no hand
        accounts.settle_meter_by_hand(world.ctx, view.id, address(1), cashier("cashier"), amount="5", reason="dead")
    assert err.value.code == "closing_meter_settled"


@pytest.mark.parametrize("amount, reason, code", [
    ("", "dead", "amount_missing"), ("-1", "dead", "refund_amount_negative"), ("1.234", "dead", "amount_too_precise"),
    ("abc", "dead", "amount_not_a_number"), ("5", "  ", "reason_required"),
])
def test_settling_by_hand_with_bad_input_writes_nothing(world, amount, reason, code):
    view = _dead_meter_closing(world)
    before = db_snapshot(world.engine, exclude={"readings", "meter_state", "bus_state", "poll_cycle", "audit_log"})
    with pytest.raises(BillingError) as err:
        accounts.settle_meter_by_hand(world.ctx, view.id, address(2), cashier("cashier"), amount=amount, reason=reason)
    assert err.value.code == code
    assert db_snapshot(world.engine, exclude={"readings", "meter_state", "bus_state", "poll_cycle",
                                              "audit_log"}) == before


def test_a_dead_meter_with_nothing_left_closes_without_a_refund(world):
    view = _dead_meter_closing(world)
    done = accounts.settle_meter_by_hand(world.ctx, view.id, address(2), cashier("cashier"), amount="0",
                                         reason="meter dead; balance was 0.00 at its last reading")
    assert done.account.status == "closed" and done.refund == Decimal("0.00") and done.receipt_no is None
    assert [e.meter_address for e in ledger.account_entries(world.ctx, view.id)
            if e.kind == "closing_refund"] == [address(1)]


def _replaced_in_place(world, n: int = 1):
    """Meter n, billed, sells 20.00 and is read; then it is swapped for a new meter keeping its number."""
    view = world.open(n)
    sale = ledger.sell(world.ctx, address(n), "20.00", cashier("cashier"))
    world.dispatcher.run_once()
    world.collector.run_cycle()
    before = world.entry(sale.receipt_no)
    world.field.reset_meter_counter(address(n))      # the new meter: purchase count 0, balance 0
    world.collector.run_cycle()
    return view, before


def test_a_meter_replaced_in_place_starts_its_counts_again_and_keeps_its_money(world):
    view, sale = _replaced_in_place(world)
    mid = meter_id(world.engine, address(1))
    with world.engine.connect() as conn:
        assert [a["kind"] for a in open_alarms(conn, subject=meter_subject(mid))] == ["count_mismatch"]
        last = Decimal(conn.execute(sa.select(meter_state.c.balance).where(meter_state.c.meter_id == mid)).scalar())
    assert last == 0 and sale.balance_after == Decimal("120.00")

    # the same number on both sides of "carry an old meter's balance over"
    moved = transfers.transfer_old_meter_balance(world.ctx, view.id, address(1), address(1), cashier("cashier"))
    assert moved.kind == "transfer_in" and moved.purchase_count == 1
    assert Decimal("119.00") <= moved.amount <= Decimal("120.00"), "the balance at the last reading before the swap"
    # a second registration, before and after the next reading, is refused (the balance is carried once)
    for code in ("meter_not_read_since_setup", "meter_not_reset"):
        if code == "meter_not_reset":
            world.dispatcher.run_once()
            world.collector.run_cycle()
        with pytest.raises(BillingError) as err:
            transfers.transfer_old_meter_balance(world.ctx, view.id, address(1), address(1), cashier("cashier"))
        assert err.value.code == code
    world.dispatcher.run_once()              # tariff, limits, prepaid control, then the transfer
    done = world.entry(moved.receipt_no)
    assert (done.state, done.command_result) == ("confirmed", "APPLIED")
    assert (world.meter(1).purchase_count, world.meter(1).balance_fen) == (1, int(moved.amount * 100))
    again = ledger.sell(world.ctx, address(1), "10.00", cashier("cashier"))
    assert again.purchase_count == 2
    world.dispatcher.run_once()
    assert world.entry(again.receipt_no).state == "confirmed"
    world.collector.run_cycle()
    with world.engine.connect() as conn:
        assert open_alarms(conn) == [], "the count mismatch closed itself; nothing looks like a foreign recharge"
        logged = conn.execute(sa.select(audit_log.c.after).where(
            audit_log.c.action == "billing.meter_replaced_in_place")).scalar_one()
    assert '"count_epoch": 1' in logged


def test_a_meter_that_was_not_reset_cannot_take_its_own_balance(world):
    view = world.open(1)
    world.collector.run_cycle()
    before = db_snapshot(world.engine, exclude={"readings", "meter_state", "bus_state", "poll_cycle", "audit_log"})
    with pytest.raises(BillingError) as err:
        transfers.transfer_old_meter_balance(world.ctx, view.id, address(1), address(1), cashier("cashier"))
    assert err.value.code == "meter_not_reset"
    assert db_snapshot(world.engine, exclude={"readings", "meter_state", "bus_state", "poll_cycle",
                                              "audit_log"}) == before


def test_a_replacement_in_place_waits_for_money_still_on_its_way(world):
    view, _sale = _replaced_in_place(world)
    world.field.set_gateway_down("GW-A", True)
    stuck = ledger.sell(world.ctx, address(1), "5.00", cashier("cashier"))   # queued before anyone noticed the swap
    with pytest.raises(BillingError) as err:
        transfers.transfer_old_meter_balance(world.ctx, view.id, address(1), address(1), cashier("cashier"))
    assert err.value.code == "money_in_flight"
    world.dispatcher.expire_after = dt.timedelta(seconds=0)
    world.dispatcher.run_once()
    assert world.entry(stuck.receipt_no).state == "failed"
    world.field.set_gateway_down("GW-A", False)
    world.dispatcher.expire_after = dt.timedelta(hours=24)
    asked = transfers.transfer_old_meter_balance(world.ctx, view.id, address(1), address(1), actor("admin"),
                                                 amount="118.50", reason="display of the old meter read 118.50")
    assert asked.state == "awaiting_approval"       # typed in, above the approval amount: a second operator
    moved = transfers.approve_transfer(world.ctx, asked.id, actor("manager"))
    assert (moved.amount, moved.purchase_count) == (Decimal("118.50"), 1)


def test_reconciliation_is_quiet_when_meters_and_ledger_agree(world):
    world.open(1, 2)
    ledger.sell(world.ctx, address(1), "10.00", cashier("cashier"))
    world.collector.run_cycle()
    world.collector.run_cycle()
    with world.engine.connect() as conn:
        assert open_alarms(conn) == []


def test_a_balance_rise_without_a_purchase_opens_a_mismatch_alarm(world):
    world.open(1)
    world.collector.run_cycle()
    world.field.meter(address(1)).balance_fen += 5000  # money that did not come through the ledger
    world.field.meter(address(1)).mark_dirty()
    world.collector.run_cycle()
    with world.engine.connect() as conn:
        kinds = [a["kind"] for a in open_alarms(conn, subject=meter_subject(meter_id(world.engine, address(1))))]
    assert kinds == ["balance_mismatch"]


def test_a_purchase_count_the_ledger_does_not_know_opens_a_count_mismatch_alarm(world):
    world.open(1)
    world.collector.run_cycle()
    frame = command_frame(TEST_MASTER_KEY, address(1), {"kind": "recharge", "payload": '{"amount_fen": 100}',
                                                        "counter": 4}, int(utcnow().timestamp()))
    target = PollTarget(meter_id=meter_id(world.engine, address(1)), meter_address=address(1), gateway="GW-A",
                        host="127.0.0.1", port=world.field.site.gateways[0].buses[0].port, framing="socket",
                        bus_no=1, unit=1, profile="acrel-ddsy1352")
    assert world.fio.send_frame(target, frame).result.name == "APPLIED"  # a recharge from outside billing
    world.collector.run_cycle()
    with world.engine.connect() as conn:
        kinds = sorted(a["kind"] for a in open_alarms(conn, subject=meter_subject(meter_id(world.engine, address(1)))))
    assert kinds == ["balance_mismatch", "count_mismatch"]


def test_a_sale_waiting_behind_a_refused_gateway_is_not_counted_as_sent_and_goes_next_run(world):
    """The dispatcher marks a bus's next command sent while the one before is on the wire: when the gateway then
    refuses the connection, that money command goes back as it was, and the next run applies it once."""
    world.open(1, 3)   # both on bus 1
    world.field.set_gateway_down("GW-A", True)
    first = ledger.sell(world.ctx, address(1), "10.00", cashier("cashier"))
    second = ledger.sell(world.ctx, address(3), "20.00", cashier("cashier"))
    world.dispatcher.run_once()
    with world.engine.connect() as conn:
        waiting = conn.execute(sa.select(command.c.state, command.c.attempts, command.c.sent_at).where(
            command.c.meter_id == meter_id(world.engine, address(3)), command.c.kind == "recharge")).one()
    assert tuple(waiting) == ("queued", 0, None)
    assert (world.entry(first.receipt_no).state, world.entry(second.receipt_no).state) == ("pending", "pending")
    world.field.set_gateway_down("GW-A", False)
    world.dispatcher.run_once()
    assert (world.entry(first.receipt_no).state, world.entry(second.receipt_no).state) == ("confirmed", "confirmed")
    assert (world.meter(1).balance_fen, world.meter(3).balance_fen) == (11000, 2000)
