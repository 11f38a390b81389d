"""The one gate for money on a meter (billing.credit) on both engines: each path as each role, the hoarding limit and
the amount rules on every credit, entered transfers and their second operator, one carry-over per old meter,
retired unknown meters, live meters read rather than typed, reasons. A refusal leaves the ledger's sum, its
entries and the queued commands as they were."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, settlement, transfers
from billing.credit import Actor
from billing.errors import BillingError
from billing.settings import set_hoarding_limit, set_transfer_approval_above
from operators.service import DEFAULT_ROLE_PERMISSIONS, ROLES, Accounts
from storage.outbox import meter_transaction
from storage.schema import audit_log, command, ledger_entry, retired_meter, transfer_request

from tests.billing_support import (NATIONAL_ID, Clock, actor, address, counts, flat_tariff, load_site, make_ctx,
                                   meter_id, prepaid_site, write_reading)

ADMIN, MANAGER, CASHIER = actor("admin"), actor("manager"), actor("cashier")
BOSS = actor("admin", "boss")            # a second administrator, to ask for what ADMIN approves
UNKNOWN = "209901010001"                 # a meter number the site never knew
READINGS = {1: ("100.00", 3), 2: ("5.00", 7), 3: ("0.00", 0), 4: ("20.00", 12), 5: ("30.00", 2), 6: ("10.00", 1),
            7: ("40.00", 5), 8: ("50.00", 4)}


@pytest.fixture
def ctx(any_engine, fixed_now):
    """Meters 1..8 read 5 minutes ago and online, except 5: lost, last read three days ago (a dead meter)."""
    load_site(any_engine, prepaid_site(15020, balances=[0] * 8, counts=[0] * 8), fixed_now)
    c = make_ctx(any_engine, Clock(fixed_now))
    flat_tariff(c)
    for n, (balance, count) in READINGS.items():
        dead = n == 5
        write_reading(any_engine, address(n), balance=balance, purchase_count=count,
                      ts=fixed_now - (dt.timedelta(days=3) if dead else dt.timedelta(minutes=5)),
                      comm_state="lost" if dead else "online")
    return c


def _open(ctx, *numbers: int) -> int:
    return accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(n) for n in numbers],
                                 operator="cashier", national_id=NATIONAL_ID).id


def _money(engine) -> tuple:
    """What a refusal must leave as it was: the ledger's sum, its entries and the commands queued."""
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ledger_entry.c.amount), 0))).scalar_one()
    return (Decimal(total),) + counts(engine)


def _denials(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                            .where(audit_log.c.action == "permission.denied")).scalar_one()


def _confirm(ctx, receipt: str) -> None:
    """As if the meter had acknowledged the entry's command."""
    with ctx.engine.begin() as conn:
        conn.execute(ledger_entry.update().where(ledger_entry.c.receipt_no == receipt)
                     .values(state="confirmed", confirmed_at=ctx.now()))


def _refused(ctx, code: str, action) -> BillingError:
    before = _money(ctx.engine)
    with pytest.raises(BillingError) as err:
        action()
    assert err.value.code == code, err.value.message("en")
    assert _money(ctx.engine) == before, "a refusal created or moved money"
    return err.value


# --- each path, each role -------------------------------------------------------------------------
# (permission, setup(ctx) -> action(who)); the setup runs as an administrator, the action as each role. A path
# that needs something new for each try (a confirmed entry to reverse) returns Fresh(prepare), prepare() -> action.
class Fresh:
    def __init__(self, prepare):
        self.prepare = prepare

def _sale(ctx):
    _open(ctx, 1)
    return lambda who: ledger.sell(ctx, address(1), "10.00", who)


def _refund(ctx):
    _open(ctx, 1)
    return lambda who: ledger.refund(ctx, address(1), "5.00", who, reason="customer moves out")


def _reversal_of_a_sale(ctx):
    _open(ctx, 1)

    def prepare():
        sale = ledger.sell(ctx, address(1), "10.00", ADMIN)
        _confirm(ctx, sale.receipt_no)
        return lambda who: ledger.reverse_entry(ctx, sale.receipt_no, who, "sold to the wrong room")
    return Fresh(prepare)


def _reversal_of_a_refund(ctx):
    _open(ctx, 1)

    def prepare():
        back = ledger.refund(ctx, address(1), "5.00", ADMIN, reason="asked by the customer")
        _confirm(ctx, back.receipt_no)
        return lambda who: ledger.reverse_entry(ctx, back.receipt_no, who, "refunded by mistake")
    return Fresh(prepare)


def _transfer_read(ctx):
    account_id = _open(ctx, 1)
    return lambda who: transfers.transfer_old_meter_balance(ctx, account_id, address(2), address(1), who)


def _transfer_entered(ctx):
    account_id = _open(ctx, 1)
    return lambda who: transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), who,
                                                            amount="50.00", reason="old meter burnt")


def _approval(ctx):
    account_id = _open(ctx, 1)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), BOSS, amount="150.00",
                                                 reason="old meter burnt; photo of its display")
    return lambda who: transfers.approve_transfer(ctx, asked.id, who)


def _settle_by_hand(ctx):
    account_id = _open(ctx, 7)
    accounts.close_account(ctx, account_id, ADMIN, reason="moved out")
    with ctx.engine.begin() as conn:      # the meter never answered its trip
        conn.execute(command.update().where(command.c.batch_id == f"close-{account_id}").values(state="failed"))
    return lambda who: accounts.settle_meter_by_hand(ctx, account_id, address(7), who, amount="40.00",
                                                     reason="meter burnt; display read 40.00")


def _close(ctx):
    account_id = _open(ctx, 7)
    return lambda who: accounts.close_account(ctx, account_id, who, reason="moved out")


PATHS = {
    "sale": ("sale.create", _sale),
    "refund": ("sale.refund", _refund),
    "reversal of a sale": ("sale.reverse", _reversal_of_a_sale),
    "reversal of a refund": ("sale.reverse", _reversal_of_a_refund),
    "transfer read": ("account.open", _transfer_read),
    "transfer entered": ("transfer.entered", _transfer_entered),
    "approval": ("transfer.entered", _approval),
    "settle by hand": ("account.close", _settle_by_hand),
    "close": ("account.close", _close),
}


@pytest.mark.parametrize("path", PATHS)
def test_each_money_path_is_refused_to_every_role_without_its_permission_and_done_by_one_with_it(ctx, path):
    permission, setup = PATHS[path]
    made = setup(ctx)
    fresh = made.prepare if isinstance(made, Fresh) else lambda: made
    holders = [r for r in ROLES if permission in DEFAULT_ROLE_PERMISSIONS[r]]
    assert "admin" in holders and len(holders) >= 2
    for role in ROLES:
        if role in holders:
            continue
        act = fresh()
        denied = _denials(ctx.engine)
        err = _refused(ctx, "permission_denied", lambda: act(actor(role)))
        assert err.params["permission"] == permission and _denials(ctx.engine) == denied + 1, role
    act = fresh()
    before = _money(ctx.engine)
    act(actor(next(r for r in holders if r != "admin")))
    assert _money(ctx.engine) != before or path == "close"


def test_an_api_clients_scope_sells_and_does_nothing_else(ctx):
    _open(ctx, 1)
    client = Actor("api:wechat-pay", frozenset({"sale.create"}), address="10.0.0.8", channel="api")
    assert ledger.sell(ctx, address(1), "10.00", client).state == "pending"
    _refused(ctx, "permission_denied", lambda: ledger.refund(ctx, address(1), "5.00", client, reason="x"))


def test_the_system_closes_but_never_sells_and_a_service_refuses_a_plain_name(ctx):
    _open(ctx, 1)
    _refused(ctx, "permission_denied", lambda: ledger.sell(ctx, address(1), "10.00", Actor.for_system("cashier")))
    with pytest.raises(TypeError):
        ledger.sell(ctx, address(1), "10.00", "cashier")


# --- the amount rules and the hoarding limit on every credit ------------------------------------------

def test_invented_old_meter_numbers_cannot_pile_money_onto_a_meter(ctx):
    """The demo's hole: entered transfers from numbers the site does not know, again and again."""
    account_id = _open(ctx, 1)                         # 100.00 on the meter, hoarding limit 1000.00
    _refused(ctx, "permission_denied", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, "209901010002", address(1), CASHIER, amount="100000.00", reason="old meter"))
    _refused(ctx, "above_hoarding_limit", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, "209901010002", address(1), ADMIN, amount="99999.00", reason="old meter"))
    for n in range(3, 6):
        asked = transfers.transfer_old_meter_balance(ctx, account_id, f"20990101000{n}", address(1), BOSS,
                                                     amount="400.00", reason="old meter burnt")
        assert asked.state == "awaiting_approval"
    transfers.approve_transfer(ctx, transfers.transfers_awaiting(ctx)[-1].id, MANAGER)
    transfers.approve_transfer(ctx, transfers.transfers_awaiting(ctx)[-1].id, MANAGER)
    last = transfers.transfers_awaiting(ctx)[-1].id
    _refused(ctx, "above_hoarding_limit", lambda: transfers.approve_transfer(ctx, last, MANAGER))
    with ctx.engine.connect() as conn:
        on_meter = conn.execute(sa.select(sa.func.sum(ledger_entry.c.amount)).where(
            ledger_entry.c.meter_id == meter_id(ctx.engine, address(1)))).scalar_one()
    assert Decimal("100.00") + on_meter <= Decimal("1000.00")


@pytest.mark.parametrize("path", ["sale", "transfer entered", "transfer read", "reversal of a refund", "approval"])
def test_no_credit_path_passes_the_hoarding_limit(ctx, path):
    account_id = _open(ctx, 1, 8)                     # 100.00 and 50.00 on the meters
    if path == "reversal of a refund":
        back = ledger.refund(ctx, address(1), "60.00", ADMIN, reason="asked by the customer")
        _confirm(ctx, back.receipt_no)                # 40.00 left
        set_hoarding_limit(ctx, "99.99", "admin")
        _refused(ctx, "above_hoarding_limit", lambda: ledger.reverse_entry(ctx, back.receipt_no, ADMIN, "mistake"))
        return
    if path == "approval":
        asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), BOSS, amount="150.00",
                                                     reason="old meter burnt")
        ledger.sell(ctx, address(1), "800.00", ADMIN)  # the balance grew while the request waited
        _refused(ctx, "above_hoarding_limit", lambda: transfers.approve_transfer(ctx, asked.id, MANAGER))
        assert transfers.transfers_awaiting(ctx)[0].id == asked.id, "still waiting: it may be rejected"
        return
    set_hoarding_limit(ctx, "140.00", "admin")
    attempts = {
        "sale": lambda: ledger.sell(ctx, address(1), "40.01", ADMIN),
        "transfer entered": lambda: transfers.transfer_old_meter_balance(
            ctx, account_id, UNKNOWN, address(1), ADMIN, amount="40.01", reason="old meter burnt"),
        "transfer read": lambda: transfers.transfer_old_meter_balance(ctx, account_id, address(8), address(1), ADMIN),
    }
    err = _refused(ctx, "above_hoarding_limit", attempts[path])
    assert err.params["most"] == Decimal("40.00")


@pytest.mark.parametrize("typed, code", [
    ("100000.01", "amount_too_large"), ("1e30", "amount_exponent"), ("1E+28", "amount_exponent"),
    (10 ** 40, "amount_too_large"), ("50,5", "amount_decimal_comma"), ("٥", "amount_not_a_number"),
    (12.5, "amount_not_a_number"), (None, "amount_missing"),
])
def test_bad_amounts_are_refused_by_the_sale_and_the_entered_transfer_alike(ctx, typed, code):
    account_id = _open(ctx, 1)
    _refused(ctx, code, lambda: ledger.sell(ctx, address(1), typed, ADMIN))
    _refused(ctx, code, lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, UNKNOWN, address(1), ADMIN, entered=True, amount=typed, reason="old meter burnt"))


# --- entered transfers and their second operator ---------------------------------------------------

def test_an_entered_balance_up_to_the_approval_amount_is_carried_over_at_once(ctx):
    account_id = _open(ctx, 1)
    moved = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="100.00",
                                                 reason="old meter burnt")
    assert (moved.kind, moved.amount, moved.state, moved.command_state) == (
        "transfer_in", Decimal("100.00"), "pending", "queued")


def test_an_entered_balance_above_the_approval_amount_waits_and_queues_nothing(ctx):
    account_id = _open(ctx, 1)
    before = _money(ctx.engine)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="100.01",
                                                 reason="old meter burnt")
    assert (asked.state, asked.amount, asked.requested_by, asked.old_known) == (
        "awaiting_approval", Decimal("100.01"), "admin", False)
    assert _money(ctx.engine) == before
    assert [r.id for r in transfers.transfers_awaiting(ctx)] == [asked.id]


def test_the_approval_amount_is_a_setting_and_zero_sends_every_entered_balance_for_approval(ctx):
    account_id = _open(ctx, 1)
    set_transfer_approval_above(ctx, "0", "admin")
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="0.01",
                                                 reason="old meter burnt")
    assert asked.state == "awaiting_approval"


def test_the_operator_who_asked_cannot_approve_or_reject_it(ctx):
    account_id = _open(ctx, 1)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="150.00",
                                                 reason="old meter burnt")
    _refused(ctx, "approval_by_requester", lambda: transfers.approve_transfer(ctx, asked.id, ADMIN))
    _refused(ctx, "approval_by_requester", lambda: transfers.reject_transfer(ctx, asked.id, ADMIN, reason="oops"))
    assert transfers.get_transfer_request(ctx, asked.id).state == "awaiting_approval"


@pytest.mark.parametrize("request_id, code", [(None, "transfer_request_missing"), ("abc", "transfer_request_missing"),
                                                ("٣", "transfer_request_missing"), (10 ** 40, "transfer_request_unknown"),
                                                (999, "transfer_request_unknown")])
def test_approving_a_request_that_is_not_there_says_so(ctx, request_id, code):
    _refused(ctx, code, lambda: transfers.approve_transfer(ctx, request_id, MANAGER))


def test_a_second_operator_approves_and_then_the_transfer_and_its_recharge_are_queued_once(ctx):
    account_id = _open(ctx, 1)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="150.00",
                                                 reason="old meter burnt")
    before = _money(ctx.engine)
    moved = transfers.approve_transfer(ctx, asked.id, MANAGER, note="photo of the display checked")
    assert (moved.kind, moved.amount, moved.operator, moved.purchase_count) == (
        "transfer_in", Decimal("150.00"), "manager", 4)
    assert _money(ctx.engine) == (before[0] + Decimal("150.00"), before[1] + 1, before[2] + 1)
    decided = transfers.get_transfer_request(ctx, asked.id)
    assert (decided.state, decided.decided_by, decided.receipt_no) == ("approved", "manager", moved.receipt_no)
    _refused(ctx, "transfer_request_decided", lambda: transfers.approve_transfer(ctx, asked.id, BOSS))
    with ctx.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.operator, audit_log.c.after)
                              .where(audit_log.c.action == "billing.transfer_approved")).one()
    assert logged.operator == "manager" and moved.receipt_no in logged.after


def test_a_rejected_request_needs_a_reason_queues_nothing_and_frees_the_old_meter(ctx):
    account_id = _open(ctx, 1)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="150.00",
                                                 reason="old meter burnt")
    _refused(ctx, "reason_required", lambda: transfers.reject_transfer(ctx, asked.id, MANAGER, reason="  "))
    before = _money(ctx.engine)
    rejected = transfers.reject_transfer(ctx, asked.id, MANAGER, reason="the customer's card says 15.00")
    assert (rejected.state, rejected.decision_note) == ("rejected", "the customer's card says 15.00")
    assert _money(ctx.engine) == before and transfers.transfers_awaiting(ctx) == []
    again = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="15.00",
                                                 reason="the customer's card")
    assert again.amount == Decimal("15.00")


def test_a_request_already_waiting_for_an_old_meter_blocks_a_second_one(ctx):
    account_id = _open(ctx, 1)
    asked = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="150.00",
                                                 reason="old meter burnt")
    err = _refused(ctx, "transfer_awaiting_approval", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, UNKNOWN, address(1), BOSS, amount="20.00", reason="old meter burnt"))
    assert err.params["request"] == asked.id


@pytest.mark.parametrize("amount", ["50.00", "150.00"])
def test_two_requests_for_one_old_meter_at_the_same_moment_carry_its_balance_once(ctx, amount):
    """Onto two accounts' meters (two different meter locks): only the old meter's key keeps them apart."""
    first, second = _open(ctx, 1), _open(ctx, 8)
    start = threading.Barrier(2)
    outcomes: list = []

    def ask(account_id, onto):
        start.wait()
        try:
            outcomes.append(transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(onto), ADMIN,
                                                                 amount=amount, reason="old meter burnt"))
        except BillingError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=ask, args=(first, 1)), threading.Thread(target=ask, args=(second, 8))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    codes = [o for o in outcomes if isinstance(o, str)]
    assert len(outcomes) == 2 and len(codes) == 1, outcomes
    assert codes[0] in ("already_transferred", "transfer_awaiting_approval")
    with ctx.engine.connect() as conn:
        transfers_in = conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)
                                    .where(ledger_entry.c.transfer_from == UNKNOWN)).scalar_one()
        requests = conn.execute(sa.select(sa.func.count()).select_from(transfer_request)).scalar_one()
        claims = conn.execute(sa.select(sa.func.count()).select_from(retired_meter)).scalar_one()
    assert (transfers_in + requests, claims) == (1, 1)


def test_a_transfer_the_new_meter_never_took_frees_the_old_meter_for_another_try(ctx):
    """Decided: a failed or expired transfer_in moved no money, so its balance may be carried over again."""
    account_id = _open(ctx, 1)
    moved = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="50.00",
                                                 reason="old meter burnt")
    _refused(ctx, "already_transferred", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, UNKNOWN, address(1), ADMIN, amount="50.00", reason="again"))
    with meter_transaction(ctx.engine, meter_id(ctx.engine, address(1))) as conn:
        cmd = dict(conn.execute(sa.select(command).where(command.c.ledger_entry_id == moved.id)).mappings().one())
        settlement.settle_command(ctx, conn, cmd, "expired", "expired", None, ctx.now())
    assert ledger.get_entry(ctx, moved.receipt_no).state == "failed"
    again = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="50.00",
                                                 reason="old meter burnt; first transfer expired")
    assert (again.amount, again.purchase_count) == (Decimal("50.00"), 4)


# --- old meters: retired when unknown, read when they answer --------------------------------------------

def test_an_old_meter_unknown_to_the_site_is_recorded_as_retired_with_its_entered_balance(ctx):
    account_id = _open(ctx, 1)
    moved = transfers.transfer_old_meter_balance(ctx, account_id, UNKNOWN, address(1), ADMIN, amount="42.50",
                                                 reason="old meter from the previous supplier")
    [retired] = transfers.retired_meters(ctx, unknown_only=True)
    assert (retired["address"], retired["meter_id"], retired["status"], retired["balance"], retired["entered"]) == (
        UNKNOWN, None, "retired", Decimal("42.50"), True)
    assert retired["ledger_entry_id"] == moved.id and retired["operator"] == "admin"
    _refused(ctx, "meter_unknown", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, "2099-0101", address(1), ADMIN, amount="5", reason="old meter"))


def test_a_balance_read_from_an_old_meter_of_the_site_retires_it_in_the_same_record(ctx):
    account_id = _open(ctx, 1, 2)
    transfers.transfer_old_meter_balance(ctx, account_id, address(2), address(1), CASHIER)
    [retired] = transfers.retired_meters(ctx)
    assert (retired["address"], retired["meter_id"], retired["entered"], retired["balance"]) == (
        address(2), meter_id(ctx.engine, address(2)), False, Decimal("5.00"))


def test_an_old_meter_whose_balance_was_carried_over_is_removed_so_its_money_cannot_be_used_twice(ctx):
    account_id = _open(ctx, 1)                 # meter 6 (10.00) belongs to no account
    transfers.transfer_old_meter_balance(ctx, account_id, address(6), address(1), CASHIER)
    _refused(ctx, "meter_removed", lambda: _open(ctx, 6))


@pytest.mark.parametrize("old, balance", [(3, "0.00"), (6, "10.00")])
def test_an_old_meter_that_answers_has_its_balance_read_not_typed_in(ctx, old, balance):
    account_id = _open(ctx, 1)
    err = _refused(ctx, "old_meter_answers", lambda: transfers.transfer_old_meter_balance(
        ctx, account_id, address(old), address(1), ADMIN, amount="50.00", reason="it is dead, trust me"))
    assert err.params["balance"] == Decimal(balance)


def test_a_dead_old_meter_of_the_site_may_have_its_balance_typed_in(ctx):
    account_id = _open(ctx, 1)
    moved = transfers.transfer_old_meter_balance(ctx, account_id, address(5), address(1), ADMIN, amount="28.40",
                                                 reason="meter 5 dead since Tuesday; display read 28.40")
    assert moved.amount == Decimal("28.40")
    [retired] = transfers.retired_meters(ctx)
    assert (retired["meter_id"], retired["entered"]) == (meter_id(ctx.engine, address(5)), True)


# --- reasons, and every missing field named -------------------------------------------------------------

@pytest.mark.parametrize("path, code", [
    ("refund without a reason", "reason_required"),
    ("refund with nothing filled in", "refund_fields_missing"),
    ("refund without an amount", "amount_missing"),
    ("reversal with nothing filled in", "reversal_fields_missing"),
    ("reversal without a receipt", "receipt_missing"),
    ("reversal without a reason", "reason_required"),
    ("closing without a reason", "reason_required"),
    ("entered transfer without a reason", "reason_required"),
    ("entered transfer with nothing filled in", "transfer_fields_missing"),
    ("settlement by hand without a reason", "reason_required"),
    ("settlement by hand with nothing filled in", "settle_fields_missing"),
])
def test_an_action_that_moves_money_or_cuts_power_needs_a_reason_in_the_service(ctx, path, code):
    account_id = _open(ctx, 1)
    sale = ledger.sell(ctx, address(1), "10.00", ADMIN)
    _confirm(ctx, sale.receipt_no)
    entered = lambda amount, reason: lambda: transfers.transfer_old_meter_balance(  # noqa: E731
        ctx, account_id, UNKNOWN, address(1), ADMIN, entered=True, amount=amount, reason=reason)
    by_hand = lambda amount, reason: lambda: accounts.settle_meter_by_hand(  # noqa: E731
        ctx, account_id, address(1), ADMIN, amount=amount, reason=reason)
    attempts = {
        "refund without a reason": lambda: ledger.refund(ctx, address(1), "5.00", ADMIN, reason=" "),
        "refund with nothing filled in": lambda: ledger.refund(ctx, address(1), None, ADMIN, reason=None),
        "refund without an amount": lambda: ledger.refund(ctx, address(1), "", ADMIN, reason="moved out"),
        "reversal with nothing filled in": lambda: ledger.reverse_entry(ctx, "", ADMIN, ""),
        "reversal without a receipt": lambda: ledger.reverse_entry(ctx, " ", ADMIN, "wrong room"),
        "reversal without a reason": lambda: ledger.reverse_entry(ctx, sale.receipt_no, ADMIN, "\t"),
        "closing without a reason": lambda: accounts.close_account(ctx, account_id, ADMIN, reason=None),
        "entered transfer without a reason": entered("12.00", ""),
        "entered transfer with nothing filled in": entered("", ""),
        "settlement by hand without a reason": by_hand("5.00", ""),
        "settlement by hand with nothing filled in": by_hand("", None),
    }
    err = _refused(ctx, code, attempts[path])
    assert err.message("en") != err.message("zh") and "None" not in err.message("en")
    assert accounts.get_account(ctx, account_id).status == "open"


def test_the_reason_is_kept_with_the_entry_and_in_the_operation_log(ctx):
    _open(ctx, 1)
    back = ledger.refund(ctx, address(1), "5.00", CASHIER, reason="  customer\nmoves   out ")
    assert back.reason == "customer moves out"
    with ctx.engine.connect() as conn:
        after = conn.execute(sa.select(audit_log.c.after).where(audit_log.c.action == "billing.refund")).scalar_one()
    assert "customer moves out" in after


# --- the permission reaches sites that existed before it ----------------------------------------------

def test_an_existing_site_gets_transfer_entered_for_its_managers_when_upgraded(any_engine, fixed_now):
    from storage import operators as opstore
    from storage.schema import permission, role_permission
    site = Accounts(any_engine, clock=lambda: fixed_now)
    site.seed()
    with any_engine.begin() as conn:      # a site from before the permission existed (DuckDB: two transactions)
        conn.execute(role_permission.delete().where(role_permission.c.permission == "transfer.entered"))
    with any_engine.begin() as conn:
        conn.execute(permission.delete().where(permission.c.name == "transfer.entered"))
    assert "transfer.entered" in site.seed()["permissions"]
    with any_engine.connect() as conn:
        held = opstore.role_permissions(conn)
    assert {r for r, perms in held.items() if "transfer.entered" in perms} == {"admin", "manager"}
