"""Whose answer the mailbox read-back is: the dispatcher against the simulated field over real loopback Modbus,
with a second Modbus master (its own pymodbus client and socket) writing the same meter's mailbox.

A result counts for a frame only when it names the frame's command code and counter; otherwise the
purchase count (money) or the command sequence (other commands) read back with it decides
(specs/device-profile.md, "Command mailbox").
"""
from __future__ import annotations

import logging
import random
import threading
import time
from decimal import Decimal
from functools import partial

import pytest
import sqlalchemy as sa
from pymodbus.client import ModbusTcpClient

from billing import accounts, ledger, settlement
from billing.context import utcnow
from billing.reports import reconciliation_alarms
from collectors.cycle import CollectorService
from collectors.dispatch import MAX_BLIND_SENDS, Dispatcher, command_frame
from collectors.poller import FieldIO, PollTarget
from collectors.profiles import ProfileRegistry
from simulator import secure
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY, Command, RelayAction
from storage.outbox import (
    count_attempt, insert_command, meters_transaction, meters_with_work, next_command_seq,
)
from storage.alarms import message_text, meter, open_alarms
from storage.schema import command, gateway

from tests.billing_support import NATIONAL_ID, address, cashier, flat_tariff, load_site, make_ctx, meter_id, prepaid_site
from tests.conftest import free_port_block

MAILBOX = 0x0300
PURCHASE_COUNT = 0x0221
CONFLICT = "mailbox_conflict"


class World:
    def __init__(self, engine, field, fio, ctx, dispatcher, collector, base_port):
        self.engine, self.field, self.fio, self.ctx = engine, field, fio, ctx
        self.dispatcher, self.collector, self.base_port = dispatcher, collector, base_port

    def meter(self, n: int):
        return self.field.meter(address(n))

    def port(self, n: int) -> int:
        """Meters 1 and 3 are on bus 1, 2 and 4 on bus 2 (prepaid_site)."""
        return self.base_port + (n - 1) % 2

    def unit(self, n: int) -> int:
        return (n - 1) // 2 + 1

    def target(self, n: int) -> PollTarget:
        return PollTarget(meter_id=meter_id(self.engine, address(n)), meter_address=address(n), gateway="GW-A",
                          host="127.0.0.1", port=self.port(n), framing="socket", bus_no=(n - 1) % 2 + 1,
                          unit=self.unit(n), profile="acrel-ddsy1352", timeout_s=0.5)

    def open(self, *ns: int) -> None:
        accounts.open_account(self.ctx, holder_name="张三", meter_addresses=[address(n) for n in ns],
                              operator="cashier", national_id=NATIONAL_ID)
        self.dispatcher.run_once()

    def sell(self, n: int, amount: str):
        return ledger.sell(self.ctx, address(n), amount, cashier())

    def refund(self, n: int, amount: str):
        return ledger.refund(self.ctx, address(n), amount, cashier(), reason="moved rooms")

    def entry(self, receipt_no: str):
        return ledger.get_entry(self.ctx, receipt_no)

    def queue_relay(self, n: int, kind: str) -> int:
        """A relay command as a batch from the control page queues it; returns the command id."""
        mid = meter_id(self.engine, address(n))
        with meters_transaction(self.engine, [mid]) as conn:
            return insert_command(conn, meter_id=mid, kind=kind, purpose="relay", payload={},
                                  counter=next_command_seq(conn, mid),
                                  operator="operator", now=utcnow())

    def command(self, command_id: int) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(command).where(command.c.id == command_id)).mappings().one())

    def command_of(self, receipt_no: str) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(command).where(
                command.c.ledger_entry_id == self.entry(receipt_no).id)).mappings().one())

    def conflicts(self, n: int) -> list[dict]:
        with self.engine.connect() as conn:
            return [{**a, "message": message_text(a, "en")}
                    for a in open_alarms(conn, CONFLICT, meter(meter_id(self.engine, address(n))))]

    def drain(self, runs: int = 10) -> None:
        """Dispatch until nothing is left to send (what the retry timer does between poll cycles)."""
        for _ in range(runs):
            with self.engine.connect() as conn:
                if not meters_with_work(conn):
                    return
            self.dispatcher.run_once()


@pytest.fixture
def world(duck_engine):
    base = free_port_block(2)
    site = prepaid_site(base, counts=(24, 7, 0, 12))   # meter 1: 100.00 yuan after 24 purchases, as on the demo
    load_site(duck_engine, site, utcnow())
    with duck_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.5, retries=0))
    ctx = make_ctx(duck_engine, utcnow)
    flat_tariff(ctx)
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        dispatcher = Dispatcher(duck_engine, fio, TEST_MASTER_KEY, utcnow,
                                on_settled=partial(settlement.settle_command, ctx), send_timeout_s=1.0)
        collector = CollectorService(duck_engine, fio, clock=utcnow)
        collector.run_cycle()       # a first reading: balances known to billing
        yield World(duck_engine, ft.field, fio, ctx, dispatcher, collector, base)


def second_master(port: int) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert client.connect()
    return client


def write_mailbox(client: ModbusTcpClient, unit: int, frame: bytes) -> None:
    written = client.write_registers(MAILBOX, secure.frame_to_registers(frame), device_id=unit)
    assert not written.isError(), written


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class JunkWriter(threading.Thread):
    """Another master on the bus writing junk into one meter's mailbox: right after each purchase lands on the meter
    (the race seen on the demo: the junk's BAD_FRAME replaces the sale's APPLIED before the dispatcher reads it),
    and now and then at random (a sale written while the junk is processed is discarded by the meter)."""

    def __init__(self, port: int, unit: int, seed: int = 7):
        super().__init__(name="junk-writer", daemon=True)
        self.port, self.unit = port, unit
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.written = 0

    def junk(self) -> bytes:
        return self.rng.randbytes(self.rng.randrange(22, 60))

    def run(self) -> None:
        client = second_master(self.port)
        try:
            last = None
            next_at = time.monotonic() + self.rng.uniform(0.05, 0.3)
            while not self.stop.is_set():
                reply = client.read_holding_registers(PURCHASE_COUNT, count=1, device_id=self.unit)
                count = None if reply.isError() else reply.registers[0]
                if (last is not None and count != last) or time.monotonic() >= next_at:
                    write_mailbox(client, self.unit, self.junk())
                    self.written += 1
                    next_at = time.monotonic() + self.rng.uniform(0.05, 0.3)
                last = count
                time.sleep(0.002)
        finally:
            client.close()

    def __enter__(self) -> "JunkWriter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)


# ---------------------------------------------------------------------------------------------
# (a) junk from a second master during sales

def test_junk_written_by_a_second_master_during_sales_never_loses_a_sale_the_meter_applied(world, caplog):
    world.open(1)
    meter = world.meter(1)
    count_before, balance_before = meter.purchase_count, meter.balance_fen
    amounts = [Decimal("7.00") + i for i in range(10)]
    sold = []
    with caplog.at_level(logging.WARNING, logger="collectors.dispatch"), \
            JunkWriter(world.port(1), world.unit(1)) as junk:
        for amount in amounts:
            sold.append(world.sell(1, str(amount)))
            world.dispatcher.run_once()
    world.drain()

    entries = [world.entry(s.receipt_no) for s in sold]
    assert junk.written >= len(amounts), "the second master wrote junk after every purchase at least"
    assert {e.state for e in entries} <= {"confirmed", "failed"}, "every sale is settled"
    confirmed = [e for e in entries if e.state == "confirmed"]
    assert sorted(e.purchase_count for e in confirmed) == list(range(count_before + 1, meter.purchase_count + 1)), \
        "the ledger's confirmed purchase counts are exactly the meter's"
    assert meter.balance_fen - balance_before == sum(int(e.amount * 100) for e in confirmed), \
        "the meter's balance rose by exactly the confirmed sales"
    assert [a["kind"] for a in world.conflicts(1)] == [CONFLICT]
    assert "mailbox conflict" in caplog.text


def test_a_sale_whose_answer_junk_replaced_is_confirmed_by_its_purchase_count_and_raises_an_alarm(world, caplog):
    """The demo's case, step by step: the meter applies the sale (24 -> 25, +7.00), junk from another master lands
    before the dispatcher reads, and the read-back says BAD_FRAME."""
    world.open(1)
    sale = world.sell(1, "7.00")
    world.field.set_mailbox_delay(address(1), 0.01)      # the meter applies the sale in 10 ms, while
    world.field.set_bus_slow("GW-A", 1, 2400)             # the 2400-baud line still carries the frame (~0.3 s)
    world.dispatcher.send_timeout_s = 5.0
    bus = world.field.bus("GW-A", 1)
    other = second_master(world.port(1))
    before = bus.transactions
    with caplog.at_level(logging.WARNING, logger="collectors.dispatch"):
        run = threading.Thread(target=world.dispatcher.run_once)
        run.start()
        wait_for(lambda: bus.transactions >= before + 2)  # the dispatcher's check of the mailbox, then its frame
        # the junk queues behind the frame's transaction, ahead of the dispatcher's first read-back
        write_mailbox(other, world.unit(1), bytes(40))
        run.join(10)
    other.close()

    done = world.entry(sale.receipt_no)
    assert (done.state, done.command_result) == ("confirmed", "APPLIED_BY_COUNT")
    assert (world.meter(1).purchase_count, world.meter(1).balance_fen) == (25, 10700)
    assert world.meter(1).mailbox_result.name == "BAD_FRAME"
    [alarm] = world.conflicts(1)
    assert "says BAD_FRAME naming no frame, but the purchase count 25" in alarm["message"]
    assert "mailbox conflict" in caplog.text


# ---------------------------------------------------------------------------------------------
# (b) a mailbox version 1 meter: no frame named, the counts decide

def test_a_mailbox_version_1_meter_confirms_sales_by_its_purchase_count(world):
    world.field.set_mailbox_version(address(1), 1)
    world.open(1)
    sales = [world.sell(1, amount) for amount in ("10.00", "20.00", "30.00")]
    world.dispatcher.run_once()
    done = [world.entry(s.receipt_no) for s in sales]
    assert [(e.state, e.purchase_count, e.command_result) for e in done] == [
        ("confirmed", 25, "APPLIED"), ("confirmed", 26, "APPLIED"), ("confirmed", 27, "APPLIED")]
    assert (world.meter(1).purchase_count, world.meter(1).balance_fen) == (27, 16000)
    assert world.conflicts(1) == [], "a version 1 answer that agrees with its counts is no conflict"


def test_a_mailbox_version_1_meter_confirms_relay_commands_by_sequence_and_relay_bits(world):
    world.field.set_mailbox_version(address(1), 1)
    world.open(1)
    trip = world.queue_relay(1, "trip")
    world.dispatcher.run_once()
    assert world.meter(1).forced_trip and not world.meter(1).relay_closed
    close = world.queue_relay(1, "close")
    world.dispatcher.run_once()
    assert not world.meter(1).forced_trip and world.meter(1).relay_closed
    assert [(world.command(c)["state"], world.command(c)["attempts"]) for c in (trip, close)] == [("acked", 1)] * 2
    assert world.meter(1).command_seq == world.command(close)["counter"]
    assert world.conflicts(1) == []


def test_a_refund_a_mailbox_version_1_meter_refuses_fails_after_repeated_sends_and_changes_nothing(world):
    world.field.set_mailbox_version(address(2), 1)
    world.open(2)                                         # 5.00 yuan, 7 purchases
    refund = world.refund(2, "5.00")
    sale = world.sell(2, "10.00")
    world.meter(2).balance_fen = 400                      # the room used 1.00 yuan meanwhile
    world.meter(2).mark_dirty()
    world.dispatcher.run_once()
    failed = world.entry(refund.receipt_no)
    assert (failed.state, failed.failure) == ("failed", "INSUFFICIENT")
    assert world.command_of(refund.receipt_no)["attempts"] == MAX_BLIND_SENDS, \
        "a refusal that names no frame is taken as this frame's only when every send gets it"
    done = world.entry(sale.receipt_no)
    assert (done.state, done.purchase_count) == ("confirmed", 8)
    assert (world.meter(2).balance_fen, world.meter(2).purchase_count) == (1400, 8)


# ---------------------------------------------------------------------------------------------
# (c) the read-back names another master's frame while the count says ours was not applied

def test_a_sale_discarded_while_another_masters_frame_was_processed_is_sent_again_and_applied_once(world, caplog):
    world.open(1)
    sale = world.sell(1, "7.00")
    world.field.set_mailbox_delay(address(1), 0.15)
    # another master (with the site key) resends an old relay command: the meter refuses it as REPLAYED
    old_relay = secure.seal_frame(TEST_MASTER_KEY, address(1), Command.RELAY, 1, int(time.time()),
                                  secure.relay_payload(RelayAction.TRIP))
    other = second_master(world.port(1))
    with caplog.at_level(logging.WARNING, logger="collectors.dispatch"):
        with world.field.hold_bus("GW-A", 1) as bus:      # the line is busy: requests queue in arrival order
            run = threading.Thread(target=world.dispatcher.run_once)
            run.start()
            wait_for(lambda: bus.waiting == 1)            # the dispatcher's check of the mailbox
            write = threading.Thread(target=write_mailbox, args=(other, world.unit(1), old_relay))
            write.start()
            wait_for(lambda: bus.waiting == 2)            # the other master's frame, next in line
        write.join(10)
        run.join(10)
    other.close()

    done = world.entry(sale.receipt_no)
    cmd = world.command_of(sale.receipt_no)
    assert (done.state, cmd["result"], cmd["attempts"]) == ("confirmed", "APPLIED", 2), \
        "our first frame arrived while the meter processed the other one and was discarded; the resend applied"
    assert (world.meter(1).purchase_count, world.meter(1).balance_fen) == (25, 10700), "applied once"
    [alarm] = world.conflicts(1)
    assert "another frame (RELAY counter 1: REPLAYED)" in alarm["message"] and "purchase count 24" in alarm["message"]
    assert "mailbox conflict" in caplog.text


def test_a_sale_whose_purchase_count_another_master_used_is_never_failed(world):
    world.open(1)
    sale = world.sell(1, "7.00")
    # another master with the site key recharges 3.00 yuan with the count billing handed to our sale
    other = second_master(world.port(1))
    write_mailbox(other, world.unit(1), secure.seal_frame(TEST_MASTER_KEY, address(1), Command.RECHARGE, 25,
                                                          int(time.time()), secure.recharge_payload(300)))
    other.close()
    wait_for(lambda: world.meter(1).purchase_count == 25)
    world.dispatcher.run_once()
    done = world.entry(sale.receipt_no)
    assert done.state == "pending", "the meter refuses our frame, yet its count says 25 was applied: kept, not failed"
    assert world.command_of(sale.receipt_no)["state"] == "sent"
    [alarm] = world.conflicts(1)
    assert "COUNT_MISMATCH for this frame" in alarm["message"]


# ---------------------------------------------------------------------------------------------
# (d) relay commands decided by the command sequence

def test_a_relay_command_resent_after_a_lost_answer_is_confirmed_by_its_sequence_and_relay_bits(world):
    world.open(1)
    trip = world.queue_relay(1, "trip")
    cmd = world.command(trip)
    with world.engine.begin() as conn:        # the dispatcher marked it sent, wrote it, and lost the answer
        count_attempt(conn, trip, utcnow())
    assert world.fio.send_frame(world.target(1), command_frame(TEST_MASTER_KEY, address(1), cmd,
                                                               int(time.time()))).result.name == "APPLIED"
    world.dispatcher.run_once()
    done = world.command(trip)
    assert (done["state"], done["result"], done["attempts"]) == ("acked", "REPLAYED", 2)
    assert world.meter(1).forced_trip and world.conflicts(1) == []


def close_relay_first_with_the_sequence_of(world, command_id: int) -> int:
    """Another master (with the site key) closes meter 1's relay with the sequence a queued command holds."""
    seq = world.command(command_id)["counter"]
    other = second_master(world.port(1))
    write_mailbox(other, world.unit(1), secure.seal_frame(TEST_MASTER_KEY, address(1), Command.RELAY, seq,
                                                          int(time.time()), secure.relay_payload(RelayAction.CLOSE)))
    other.close()
    wait_for(lambda: world.meter(1).command_seq == seq)
    return seq


def test_a_relay_command_whose_sequence_another_master_took_is_renumbered_when_the_relay_bits_disagree(world):
    world.open(1)
    trip = world.queue_relay(1, "trip")
    seq = close_relay_first_with_the_sequence_of(world, trip)
    world.dispatcher.run_once()
    done = world.command(trip)
    assert (done["state"], done["result"], done["counter"]) == ("acked", "APPLIED", seq + 1)
    assert world.meter(1).forced_trip and not world.meter(1).relay_closed
    [alarm] = world.conflicts(1)
    assert "relay bits (forced_trip=0)" in alarm["message"]


def test_a_mailbox_conflict_is_listed_with_the_reconciliation_alarms(world):
    world.open(1)
    close_relay_first_with_the_sequence_of(world, world.queue_relay(1, "trip"))
    world.dispatcher.run_once()
    listed = [(a["kind"], a["meter_address"]) for a in reconciliation_alarms(world.ctx)]
    assert listed == [(CONFLICT, address(1))]
