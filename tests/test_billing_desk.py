"""The cashier pages' read models (billing.desk over storage.desk) on both engines: finding a meter by number,
room or QR code, records by filter and their audited export, openings and closings, batches, QR labels;
and the parsing of the tariff form."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import accounts, desk, ledger, qr
from billing.tariffs import validate_prices
from dashboard.components.tariffs import parse_segments, parse_tiers
from storage.schema import audit_log, command, ledger_entry

from tests.billing_support import NATIONAL_ID, Clock, address, cashier, flat_tariff, load_site, make_ctx, prepaid_site, \
    write_reading

QR_KEY = b"k" * 32


@pytest.fixture
def ctx(any_engine, fixed_now):
    clock = Clock(fixed_now)
    load_site(any_engine, prepaid_site(15020), fixed_now)
    c = make_ctx(any_engine, clock)
    flat_tariff(c)
    for n in (1, 2, 3, 4):
        write_reading(any_engine, address(n), balance="100.00", purchase_count=3,
                      ts=fixed_now - dt.timedelta(minutes=5))
    return c


def _open(ctx, *addresses, holder="张三"):
    return accounts.open_account(ctx, holder_name=holder, meter_addresses=list(addresses), operator="cashier",
                                 phone="13800138000", national_id=NATIONAL_ID)


def _confirm_all(ctx) -> None:
    """What the dispatcher does when meters acknowledge (no field here)."""
    with ctx.engine.begin() as conn:
        conn.execute(ledger_entry.update().where(ledger_entry.c.state == "pending")
                     .values(state="confirmed", confirmed_at=ctx.now()))
        conn.execute(command.update().where(command.c.state == "queued").values(state="acked"))


def test_a_meter_is_found_by_number_room_part_of_either_or_qr_code(ctx):
    assert [m["address"] for m in desk.find_meters(ctx, address(2))] == [address(2)]
    assert [m["address"] for m in desk.find_meters(ctx, "a-102")] == [address(2)]  # room A-102, any case
    assert [m["address"] for m in desk.find_meters(ctx, "A-10")] == [address(n) for n in (1, 2, 3, 4)]
    assert desk.find_meters(ctx, "B-999") == [] and desk.find_meters(ctx, "  ") == []
    token = qr.sign(QR_KEY, "meter", address(3))
    assert [m["address"] for m in desk.find_meters(ctx, qr.url("http://site", token) + "?lang=zh", QR_KEY)] == \
        [address(3)]
    view = _open(ctx, address(1), address(4))
    account_token = qr.sign(QR_KEY, "account", view.id)
    assert [m["address"] for m in desk.find_meters(ctx, account_token, QR_KEY)] == [address(1), address(4)]
    with pytest.raises(qr.BadToken):
        desk.find_meters(ctx, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), QR_KEY)
    with pytest.raises(qr.BadToken):
        desk.find_meters(ctx, "http://site/c/not-a-token", QR_KEY)


def test_records_follow_every_filter_and_the_site_day(ctx, fixed_now):
    _open(ctx, address(1))
    _open(ctx, address(2), holder="李四")
    sale = ledger.sell(ctx, address(1), "50.00", cashier("alice"))
    ctx.clock.advance(hours=20)       # 08:00 UTC + 20 h = 04:00 UTC: noon of the next site day (UTC+8)
    ledger.sell(ctx, address(2), "30.00", cashier("bob"))
    ledger.refund(ctx, address(1), "10.00", cashier("bob"), reason="moved")
    _confirm_all(ctx)
    ledger.reverse_entry(ctx, sale.receipt_no, cashier("alice"), "wrong meter")
    all_rows = desk.records(ctx, **desk.record_filters(ctx))
    assert [r["kind"] for r in all_rows] == ["reversal", "refund", "sale", "sale"]
    assert all_rows[0]["reverses"] == sale.receipt_no and all_rows[0]["holder"] == "张*"
    assert all_rows[0]["command_state"] == "queued" and all_rows[1]["command_state"] == "acked"
    pick = lambda **f: [(r["kind"], r["amount"]) for r in desk.records(ctx, **desk.record_filters(ctx, **f))]  # noqa
    assert pick(kinds=["sale"]) == [("sale", Decimal("30.00")), ("sale", Decimal("50.00"))]
    assert pick(operator="bob") == [("refund", Decimal("-10.00")), ("sale", Decimal("30.00"))]
    assert pick(text="a-102") == [("sale", Decimal("30.00"))]
    assert pick(text=sale.receipt_no) == [("sale", Decimal("50.00"))]
    assert pick(building="Elsewhere") == [] and len(pick(building="Dorm A")) == 4
    first_day = ctx.local(fixed_now).date()
    assert pick(first_day=first_day, last_day=first_day) == [("sale", Decimal("50.00"))]
    assert len(pick(first_day=first_day + dt.timedelta(days=1))) == 3


def test_an_export_returns_the_rows_in_the_order_shown_and_is_logged(ctx):
    _open(ctx, address(1))
    ids = [ledger.sell(ctx, address(1), f"{n}.00", cashier("alice")).id for n in (10, 20, 30)]
    rows = desk.export_records(ctx, [ids[2], ids[0]], "analyst", shown={"kinds": ["sale"]}, source="10.0.0.7")
    assert [r["amount"] for r in rows] == [Decimal("30.00"), Decimal("10.00")]
    with ctx.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log).where(audit_log.c.action == "billing.records_export")) \
            .mappings().one()
    assert logged["operator"] == "analyst" and logged["source"] == "10.0.0.7"
    assert json.loads(logged["after"]) == {"rows": 2, "shown": {"kinds": ["sale"]}}


def test_openings_and_closings_are_listed_by_event_with_their_meters(ctx):
    kept = _open(ctx, address(1), address(2))
    gone = _open(ctx, address(3), holder="王五")
    with ctx.engine.begin() as conn:  # as the closing steps leave it
        from storage.schema import account
        conn.execute(account.update().where(account.c.id == gone.id).values(
            status="closed", closed_at=ctx.now(), closed_by="bob"))
    opened = desk.account_events(ctx, "opened")
    assert [(r["id"], r["meters"]) for r in opened] == [(gone.id, [address(3)]), (kept.id, [address(1), address(2)])]
    assert opened[0]["phone"] == "138****8000"
    closed = desk.account_events(ctx, "closed", operator="bob")
    assert [r["id"] for r in closed] == [gone.id] and desk.account_events(ctx, "closed", operator="alice") == []
    assert [r["id"] for r in desk.account_events(ctx, "opened", text=address(2))] == [kept.id]
    assert desk.account_operators(ctx) == ["bob", "cashier"]


def test_a_batch_reports_its_commands_per_state(ctx):
    view = _open(ctx, address(1))
    status = desk.batch_status(ctx, view.batch_id)
    assert status["counts"] == {"queued": len(status["commands"])} and not status["done"]
    _confirm_all(ctx)
    status = desk.batch_status(ctx, view.batch_id)
    assert status["done"] and set(status["counts"]) == {"acked"}
    assert {c["meter_address"] for c in status["commands"]} == {address(1)}


def test_a_label_sheet_has_one_verified_label_per_meter_and_is_logged(ctx):
    labels = desk.label_sheet(ctx, QR_KEY, "http://site/", "Dorm A", "cashier")
    assert [x["address"] for x in labels] == [address(n) for n in (1, 2, 3, 4)]
    assert all(qr.verify(QR_KEY, x["token"]).key == x["address"] and x["url"] == f"http://site/c/{x['token']}"
               and x["png"].startswith(b"\x89PNG") for x in labels)
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(audit_log.c.target).where(audit_log.c.action == "billing.qr_labels")) \
            .scalar_one() == "building:Dorm A"


def test_the_tariff_form_parses_segments_and_tiers_for_billing_to_check():
    segments = parse_segments("00:00 谷\n08:00 Peak\n\n18：00 尖\n22:00 低谷", "zh")
    assert segments == [("00:00", "valley"), ("08:00", "peak"), ("18:00", "sharp"), ("22:00", "低谷")]
    body = validate_prices("tou", {"sharp": "1", "peak": "0.8", "flat": "0.6", "valley": "0.3"}, segments[:3])
    assert body.segments == ((0, 3), (480, 1), (1080, 0))
    tiers = parse_tiers(["200", "400", "", ""], ["0.56", "0.61", "0.86", ""])
    assert tiers == [(200, "0.56"), (400, "0.61"), (None, "0.86")]
    assert validate_prices("tiered", tiers=tiers).tiers[-1] == (None, Decimal("0.8600"))
    assert parse_tiers(["lots", ""], ["0.5", "0.6"]) == [("lots", "0.5"), (None, "0.6")]
