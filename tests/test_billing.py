"""Billing services on both engines (no field): validation writes nothing, counts from the ledger, reversals, tariffs."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, tariffs, transfers
from billing.errors import BillingError
from billing.settings import hoarding_limit, set_hoarding_limit
from storage.outbox import meter_transaction
from storage.schema import account, audit_log, command, ledger_entry, meter, meter_tariff

from tests.billing_support import (NATIONAL_ID, Clock, actor, address, cashier, counts, flat_tariff, load_site,
                                   make_ctx, meter_id, prepaid_site, write_reading)


@pytest.fixture
def ctx(any_engine, fixed_now):
    clock = Clock(fixed_now)
    load_site(any_engine, prepaid_site(15020), fixed_now)
    c = make_ctx(any_engine, clock)
    flat_tariff(c)
    for n, (bal, pc) in enumerate([("100.00", 3), ("5.00", 7), ("0.00", 0), ("20.00", 12)], start=1):
        write_reading(any_engine, address(n), balance=bal, purchase_count=pc, ts=fixed_now - dt.timedelta(minutes=5))
    return c


def _open(ctx, *addresses, holder="张三"):
    return accounts.open_account(ctx, holder_name=holder, meter_addresses=list(addresses), operator="cashier",
                                 phone="13800138000", national_id=NATIONAL_ID)


def _audit_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()


# --- bad input writes nothing -------------------------------------------------------------------

@pytest.mark.parametrize("case, meter_no, amount, code", [
    ("zero", address(1), "0", "amount_zero"),
    ("negative", address(1), "-10", "amount_negative"),
    ("not a number", address(1), "ten", "amount_not_a_number"),
    ("three decimals", address(1), "10.001", "amount_too_precise"),
    ("above hoarding limit", address(1), "950.01", "above_hoarding_limit"),
    ("closed account", address(2), "10", "account_closed"),
    ("unknown meter", "999999999999", "10", "meter_unknown"),
    ("not opened", address(3), "10", "meter_not_opened"),
])
def test_every_bad_sale_gets_a_clear_message_and_writes_nothing(ctx, case, meter_no, amount, code):
    _open(ctx, address(1))
    closing = _open(ctx, address(2), holder="李四")
    with ctx.engine.begin() as conn:
        conn.execute(account.update().where(account.c.id == closing.id).values(status="closed"))
    before, audit_before = counts(ctx.engine), _audit_rows(ctx.engine)
    with pytest.raises(BillingError) as err:
        ledger.sell(ctx, meter_no, amount, cashier("cashier"))
    assert err.value.code == code, case
    assert err.value.message("en") and err.value.message("zh") != err.value.message("en")
    assert counts(ctx.engine) == before and _audit_rows(ctx.engine) == audit_before


def test_the_hoarding_limit_counts_the_balance_and_sales_still_on_their_way(ctx):
    _open(ctx, address(1))                           # 100.00 on the meter, limit 1000.00
    ledger.sell(ctx, address(1), "800.00", cashier("cashier"))
    with pytest.raises(BillingError) as err:
        ledger.sell(ctx, address(1), "100.01", cashier("cashier"))
    assert err.value.code == "above_hoarding_limit" and err.value.params["most"] == Decimal("100.00")
    assert ledger.sell(ctx, address(1), "100.00", cashier("cashier")).state == "pending"


def test_the_hoarding_limit_is_a_setting(ctx):
    set_hoarding_limit(ctx, "150.00", "admin")
    with ctx.engine.connect() as conn:
        assert hoarding_limit(conn) == Decimal("150.00")
    _open(ctx, address(1))
    with pytest.raises(BillingError):
        ledger.sell(ctx, address(1), "50.01", cashier("cashier"))


def test_refund_larger_than_the_last_known_balance_is_refused_and_writes_nothing(ctx):
    _open(ctx, address(2))                           # 5.00 yuan
    before = counts(ctx.engine)
    with pytest.raises(BillingError) as err:
        ledger.refund(ctx, address(2), "5.01", cashier("cashier"), reason="moved out")
    assert err.value.code == "refund_above_balance"
    assert counts(ctx.engine) == before
    assert ledger.refund(ctx, address(2), "5.00", cashier("cashier"), reason="moved out").amount == Decimal("-5.00")


def test_a_pending_refund_lowers_what_can_still_be_refunded(ctx):
    _open(ctx, address(2))
    ledger.refund(ctx, address(2), "3.00", cashier("cashier"), reason="moved out")
    with pytest.raises(BillingError):
        ledger.refund(ctx, address(2), "2.01", cashier("cashier"), reason="moved out")


# --- purchase counts ----------------------------------------------------------------------------

def test_a_sale_writes_its_pending_entry_and_its_recharge_with_the_next_purchase_count(ctx):
    _open(ctx, address(1))                           # the meter has made 3 purchases
    view = ledger.sell(ctx, address(1), "50", cashier("cashier"))
    assert (view.kind, view.amount, view.state, view.purchase_count) == ("sale", Decimal("50.00"), "pending", 4)
    assert view.receipt_no.startswith("S20261121-") and view.command_state == "queued"
    with ctx.engine.connect() as conn:
        cmd = conn.execute(sa.select(command).where(command.c.ledger_entry_id == view.id)).mappings().one()
    assert (cmd["kind"], cmd["counter"], cmd["payload"]) == ("recharge", 4, '{"amount_fen": 5000}')


def test_two_cashiers_selling_to_one_meter_at_once_get_consecutive_purchase_counts(ctx):
    _open(ctx, address(1))
    start = threading.Barrier(2)
    results, errors = [], []

    def sell_five(name):
        try:
            start.wait()
            for _ in range(5):
                results.append(ledger.sell(ctx, address(1), "10.00", cashier(name)).purchase_count)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sell_five, args=(n,)) for n in ("alice", "bob")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert sorted(results) == list(range(4, 14))


def test_the_meter_row_is_locked_while_a_count_is_handed_out(ctx):
    """On PostgreSQL a second transaction waits on the meter row; everywhere the process lock serialises."""
    _open(ctx, address(1))
    mid = meter_id(ctx.engine, address(1))
    entered = threading.Event()
    sold = []
    with meter_transaction(ctx.engine, mid):
        th = threading.Thread(target=lambda: (entered.set(),
                                              sold.append(ledger.sell(ctx, address(1), "1", cashier("bob")))))
        th.start()
        entered.wait()
        th.join(0.5)
        assert not sold, "the second sale must wait for the lock"
    th.join(10)
    assert sold and sold[0].purchase_count == 4


def test_a_repeated_request_id_returns_the_first_sale(ctx):
    _open(ctx, address(1))
    first = ledger.sell(ctx, address(1), "10", cashier("api"), request_id="pay-1")
    again = ledger.sell(ctx, address(1), "10.00", cashier("api"), request_id="pay-1")
    assert again.replayed and again.receipt_no == first.receipt_no
    with pytest.raises(BillingError) as err:
        ledger.sell(ctx, address(1), "11", cashier("api"), request_id="pay-1")
    assert err.value.code == "request_id_reused"
    assert counts(ctx.engine)[0] == 1


# --- reversals ----------------------------------------------------------------------------------

def _confirm(ctx, receipt):
    with ctx.engine.begin() as conn:
        conn.execute(ledger_entry.update().where(ledger_entry.c.receipt_no == receipt)
                     .values(state="confirmed", confirmed_at=ctx.now()))


def test_a_mistaken_sale_is_reversed_by_a_refund_with_the_next_purchase_count(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    _confirm(ctx, sale.receipt_no)
    rev = ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "sold to the wrong room")
    assert (rev.kind, rev.amount, rev.purchase_count, rev.reverses_receipt_no) == (
        "reversal", Decimal("-30.00"), 5, sale.receipt_no)
    with ctx.engine.connect() as conn:
        kind = conn.execute(sa.select(command.c.kind).where(command.c.ledger_entry_id == rev.id)).scalar_one()
    assert kind == "refund"


def test_a_reversal_of_a_reversal_is_refused(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    _confirm(ctx, sale.receipt_no)
    rev = ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "wrong room")
    _confirm(ctx, rev.receipt_no)
    with pytest.raises(BillingError) as err:
        ledger.reverse_entry(ctx, rev.receipt_no, cashier("cashier"), "undo the undo")
    assert err.value.code == "reversal_not_reversible"


def test_an_entry_is_reversed_at_most_once(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    _confirm(ctx, sale.receipt_no)
    ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "wrong room")
    with pytest.raises(BillingError) as err:
        ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "again")
    assert err.value.code == "already_reversed"


def test_the_database_refuses_a_second_reversal_of_one_entry(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    _confirm(ctx, sale.receipt_no)
    first = ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "wrong room")
    with ctx.engine.connect() as conn:
        row = dict(conn.execute(sa.select(ledger_entry).where(ledger_entry.c.id == first.id)).mappings().one())
    row.update(id=row["id"] + 1000, receipt_no="V-FORGED", purchase_count=99)
    with pytest.raises(sa.exc.DBAPIError):
        with ctx.engine.begin() as conn:
            conn.execute(ledger_entry.insert().values(**row))


def test_an_entry_the_meter_has_not_confirmed_cannot_be_reversed(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    with pytest.raises(BillingError) as err:
        ledger.reverse_entry(ctx, sale.receipt_no, cashier("cashier"), "too early")
    assert err.value.code == "entry_not_confirmed"


def test_a_reversal_needs_a_reason(ctx):
    with pytest.raises(BillingError) as err:
        ledger.reverse_entry(ctx, "S20261121-000001", cashier("cashier"), "  ")
    assert err.value.code == "reason_required"


def test_ledger_amount_signs_are_checked_by_the_database(ctx):
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "30", cashier("cashier"))
    with ctx.engine.connect() as conn:
        row = dict(conn.execute(sa.select(ledger_entry).where(ledger_entry.c.id == sale.id)).mappings().one())
    row.update(id=row["id"] + 500, receipt_no="S-NEG", amount=Decimal("-1.00"), request_id=None)
    with pytest.raises(sa.exc.DBAPIError):
        with ctx.engine.begin() as conn:
            conn.execute(ledger_entry.insert().values(**row))


# --- accounts -----------------------------------------------------------------------------------

def test_opening_an_account_queues_tariff_limits_and_prepaid_control_for_each_meter(ctx):
    view = _open(ctx, address(1), address(2))
    assert [m.address for m in view.meters] == [address(1), address(2)]
    assert view.national_id_masked == "110105********002X" and view.status == "open"
    with ctx.engine.connect() as conn:
        cmds = conn.execute(sa.select(command.c.kind, command.c.counter, command.c.batch_id)
                            .where(command.c.meter_id == meter_id(ctx.engine, address(1)))
                            .order_by(command.c.id)).all()
        statuses = conn.execute(sa.select(meter.c.status).where(
                meter.c.address.in_([address(1), address(2)]))).scalars().all()
        stored = conn.execute(sa.select(account.c.national_id_enc)).scalar_one()
    assert [c.kind for c in cmds] == ["tariff", "limits", "restore_prepaid"]
    assert [c.counter for c in cmds] == [1, 2, 3] and {c.batch_id for c in cmds} == {f"open-{view.id}"}
    assert set(statuses) == {"opened"}
    assert NATIONAL_ID not in stored


def test_a_meter_tripped_by_an_earlier_closing_gets_a_relay_close_when_opened_again(ctx, fixed_now):
    write_reading(ctx.engine, address(3), balance="0.00", purchase_count=0, ts=fixed_now, forced_trip=True)
    _open(ctx, address(3))
    with ctx.engine.connect() as conn:
        kinds = conn.execute(sa.select(command.c.kind).where(command.c.meter_id == meter_id(ctx.engine, address(3)))
                             .order_by(command.c.id)).scalars().all()
    assert kinds == ["tariff", "limits", "close", "restore_prepaid"]


@pytest.mark.parametrize("field, value, code", [
    ("national_id", "110105194912310021", "national_id_invalid"),
    ("holder_name", "   ", "holder_missing"),
    ("phone", "call me", "phone_invalid"),
    ("meter_addresses", [], "meters_missing"),
    ("meter_addresses", ["202611210099"], "meter_unknown"),
])
def test_opening_with_bad_details_is_refused_and_writes_nothing(ctx, field, value, code):
    kw = dict(holder_name="张三", meter_addresses=[address(1)], operator="cashier", phone="13800138000",
              national_id=NATIONAL_ID)
    kw[field] = value
    before = counts(ctx.engine)
    with pytest.raises(BillingError) as err:
        accounts.open_account(ctx, **kw)
    assert err.value.code == code and counts(ctx.engine) == before


def test_a_meter_belongs_to_one_open_account_at_a_time(ctx):
    _open(ctx, address(1))
    with pytest.raises(BillingError) as err:
        _open(ctx, address(1), holder="李四")
    assert err.value.code == "meter_in_use"


def test_a_meter_added_later_starts_from_its_own_purchase_count(ctx):
    view = _open(ctx, address(1))
    view = accounts.add_meter(ctx, view.id, address(4), "cashier")
    assert [m.address for m in view.meters] == [address(1), address(4)]
    assert ledger.sell(ctx, address(4), "10", cashier("cashier")).purchase_count == 13


def test_an_old_meters_balance_is_carried_over_once(ctx):
    view = _open(ctx, address(1), address(2))
    moved = transfers.transfer_old_meter_balance(ctx, view.id, address(2), address(1), cashier("cashier"))
    assert (moved.kind, moved.amount, moved.purchase_count) == ("transfer_in", Decimal("5.00"), 4)
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(meter.c.status).where(meter.c.address == address(2))).scalar_one() == "removed"
    with pytest.raises(BillingError) as err:
        transfers.transfer_old_meter_balance(ctx, view.id, address(2), address(1), actor("admin"), amount="5",
                                             reason="again")
    assert err.value.code == "already_transferred"


def test_a_balance_typed_in_for_a_dead_meter_needs_a_reason(ctx):
    view = _open(ctx, address(1))
    with pytest.raises(BillingError) as err:
        transfers.transfer_old_meter_balance(ctx, view.id, "202501010001", address(1), actor("admin"), amount="12.30")
    assert err.value.code == "reason_required"
    moved = transfers.transfer_old_meter_balance(ctx, view.id, "202501010001", address(1), actor("admin"),
                                                 amount="12.30", reason="old meter burnt, balance from its last card")
    assert moved.amount == Decimal("12.30")


def test_closing_an_account_trips_its_meters_first(ctx):
    view = _open(ctx, address(1))
    closing = accounts.close_account(ctx, view.id, cashier("cashier"), reason="moved out")
    assert closing.status == "closing"
    with ctx.engine.connect() as conn:
        last = conn.execute(sa.select(command.c.kind, command.c.batch_id).order_by(command.c.id.desc())
                            .limit(1)).one()
    assert (last.kind, last.batch_id) == ("trip", f"close-{view.id}")
    with pytest.raises(BillingError) as err:
        ledger.sell(ctx, address(1), "10", cashier("cashier"))
    assert err.value.code == "account_closed"


# --- tariffs ------------------------------------------------------------------------------------

def test_a_tariff_change_is_a_new_version_and_the_old_one_stays(ctx):
    tid = tariffs.create_tariff(ctx, "TOU", "tou", "admin",
                                prices={"sharp": "1.2", "peak": "0.9", "flat": "0.6", "valley": "0.3"},
                                segments=[("00:00", "valley"), ("08:00", "peak"), ("18:00", "sharp"), (1320, 2)],
                                valid_from=ctx.now() - dt.timedelta(days=10))
    tariffs.add_tariff_version(ctx, tid, "admin", prices={"sharp": "1.3", "peak": "0.9", "flat": "0.6",
                                                           "valley": "0.3"},
                               segments=[(0, 3), (480, 1)], valid_from=ctx.now() + dt.timedelta(days=1))
    listed = [t for t in tariffs.tariff_list(ctx) if t["id"] == tid][0]
    assert [v["version_no"] for v in listed["versions"]] == [1, 2]
    assert listed["versions"][0]["body"].prices[0] == Decimal("1.2000")
    pushed = tariffs.push_tariff(ctx, tid, "admin", meter_addresses=[address(1)])
    with ctx.engine.connect() as conn:
        payload = conn.execute(sa.select(command.c.payload).where(command.c.batch_id == pushed.batch_id)).scalar_one()
    assert '"prices": [12000, 9000, 6000, 3000]' in payload, "the version in force now, not the future one"


@pytest.mark.parametrize("mode, body, code", [
    ("tou", {"prices": {"sharp": 1, "peak": 1, "flat": 1, "valley": 1},
             "segments": [(i * 60, 1) for i in range(15)]}, "segments_invalid"),
    ("tou", {"prices": {"sharp": 1, "peak": 1, "flat": 1, "valley": 1},
             "segments": [(60, 1), (30, 2)]}, "segment_start_invalid"),
    ("tiered", {"tiers": [(100, "0.5"), (200, "0.6"), (300, "0.7"), (400, "0.8"), (None, "0.9")]}, "tiers_invalid"),
    ("tiered", {"tiers": [(100, "0.5"), (200, "0.6")]}, "tier_last_unbounded"),
    ("flat", {"prices": {"flat": "0.12345"}}, "price_invalid"),
    ("flat", {"prices": {"flat": "-1"}}, "price_invalid"),
    ("weird", {"prices": {"flat": "1"}}, "tariff_mode_invalid"),
])
def test_a_bad_tariff_is_refused_with_its_reason(ctx, mode, body, code):
    with pytest.raises(BillingError) as err:
        tariffs.create_tariff(ctx, f"bad {mode}", mode, "admin", **body)
    assert err.value.code == code


def test_pushing_a_tariff_queues_one_set_tariff_per_meter_under_one_batch(ctx):
    _open(ctx, address(1), address(2))
    tid = tariffs.create_tariff(ctx, "Tiered", "tiered", "admin",
                                tiers=[(200, "0.56"), (400, "0.61"), (None, "0.86")],
                                valid_from=ctx.now() - dt.timedelta(hours=1))
    batch = tariffs.assign_tariff(ctx, [address(1), address(2)], tid, "admin")
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(command.c.kind, command.c.meter_id).where(command.c.batch_id == batch)).all()
        assigned = conn.execute(sa.select(sa.func.count()).select_from(meter_tariff)
                                .where(meter_tariff.c.tariff_id == tid)).scalar_one()
    assert len(rows) == 2 and {r.kind for r in rows} == {"tariff"} and assigned == 2
    again = tariffs.push_tariff(ctx, tid, "admin")
    assert again.commands == 2 and again.batch_id != batch


def test_the_pii_key_decides_who_can_read_a_national_id(ctx):
    view = _open(ctx, address(1))
    assert accounts.reveal_national_id(ctx, view.id, "manager") == NATIONAL_ID
    other = make_ctx_with_key(ctx, bytes(32))
    assert accounts.get_account(other, view.id).national_id_masked == "***"


def make_ctx_with_key(ctx, key):
    from billing.context import BillingContext
    return BillingContext(ctx.engine, key, clock=ctx.clock)



def test_one_request_id_sent_for_two_meters_at_the_same_moment_sells_once(ctx):
    _open(ctx, address(1))
    _open(ctx, address(4), holder="李四")
    start = threading.Barrier(2)
    outcomes = []

    def client(n):
        start.wait()
        try:
            outcomes.append(ledger.sell(ctx, address(n), "5", cashier("api"), request_id="twice").meter_address)
        except BillingError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=client, args=(n,)) for n in (1, 4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes, key=len) in ([address(1), "request_id_reused"], [address(4), "request_id_reused"])
    assert counts(ctx.engine)[0] == 1


def test_a_receipt_has_every_field_the_receipt_sheet_prints(ctx):
    from billing.views import receipt
    from dashboard.components.receipt import ReceiptData, receipt_sheet
    _open(ctx, address(1))
    sale = ledger.sell(ctx, address(1), "123.45", cashier("cashier"))
    data = receipt(ctx, sale.receipt_no)
    assert data["amount_in_words"] == "壹佰贰拾叁元肆角伍分" and data["holder"] == "张*"
    assert data["issued_at"] == ctx.now() + dt.timedelta(hours=8) and data["room"] == "A-101"
    assert len(receipt_sheet(ReceiptData(**data), "zh").children) == 3
