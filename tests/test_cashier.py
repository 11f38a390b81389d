"""The cashier pages against a running demo site. Through the callback endpoint as the browser calls it:
selling (receipt, command followed until the meter acknowledges, purchase count on the simulated meter),
refusals in both languages that write nothing, permissions, reversal, finding a meter by room or QR
code, opening and closing accounts, sales records and their export, QR labels, customer cards,
tariffs and payment API clients. In Chromium (the system's; in CI a missing Chromium fails): every page
in both languages without a console error, a sale whose receipt is printed, the customer card saved as
a PNG. One runtime for the module (one day of history)."""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import struct
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing import accounts as billing_accounts
from billing import ledger, qr
from billing.errors import BillingError
from billing.ledger import get_entry, meter_balance
from billing.tariffs import tariff_list
from operators.service import demo_password
from core.formatting import format_money as money
from dashboard.i18n import t
from storage.schema import account, account_meter, audit_log, command, ledger_entry, meter, meter_state, room
from tests.billing_support import NATIONAL_ID, cashier
from tests.webclient import WebClient, base_url, start_demo_runtime

DEMO = demo_password()
SETTLED = ("acked", "failed", "expired")
PAGES = {"/sell": "cashier.heading", "/accounts": "accounts.heading", "/records": "records.heading",
         "/tariffs": "tariffs.heading", "/qr": "qr.heading", "/admin/api-clients": "api_clients.heading"}


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("cashier"))
    deadline = time.time() + 60
    while time.time() < deadline and not runtime.health()["last_poll"]:
        time.sleep(0.2)
    runtime.accounts.add_operator("cashier-zh", None, "kassen-passwort-1", ["cashier"], by="test", source="test",
                                  language="zh", must_change_password=False)
    yield runtime
    runtime.stop()


def _client(rt, username: str, password: str = DEMO) -> WebClient:
    client = WebClient(base_url(rt))
    r = client.login(username, password)
    assert r.status == 302, (username, r.status)
    return client


@pytest.fixture(scope="module")
def desk(rt):
    """Two cashiers: one working in English, one in Chinese."""
    return {"en": _client(rt, "cashier"), "zh": _client(rt, "cashier-zh", "kassen-passwort-1")}


_taken: set[str] = set()


def _meter(rt, *, low_balance: bool = True, single: bool = False, funded: bool = False) -> dict:
    """A demo room meter with an open account, online and read, that no other test used (funded: money on it)."""
    with rt.engine.connect() as conn:
        q = (sa.select(meter.c.address, meter.c.id, account_meter.c.account_id, meter_state.c.balance)
             .join_from(meter, account_meter, sa.and_(account_meter.c.meter_id == meter.c.id,
                                                      account_meter.c.removed_at.is_(None)))
             .join(account, account.c.id == account_meter.c.account_id)
             .join(meter_state, meter_state.c.meter_id == meter.c.id)
             .where(account.c.status == "open", meter_state.c.comm_state == "online",
                    meter_state.c.balance.is_not(None), meter_state.c.balance < (500 if low_balance else 100000),
                    meter_state.c.balance > (1 if funded else -1))
             .order_by(meter.c.address))
        rows = [dict(r) for r in conn.execute(q).mappings()]
        if single:
            sizes = dict(conn.execute(sa.select(account_meter.c.account_id, sa.func.count())
                                      .where(account_meter.c.removed_at.is_(None))
                                      .group_by(account_meter.c.account_id)).all())
            rows = [r for r in rows if sizes[r["account_id"]] == 1]
    row = next(r for r in rows if r["address"] not in _taken)
    _taken.add(row["address"])
    return row


def _counts(rt) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one())


def _audit(rt, action: str) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).where(audit_log.c.action == action)
                                              .order_by(audit_log.c.id)).mappings()]


def _settled(rt, receipt_no: str, timeout: float = 30) -> ledger.EntryView:
    deadline = time.time() + timeout
    while True:
        entry = get_entry(rt.billing, receipt_no)
        if entry.command_state in SETTLED or time.time() > deadline:
            return entry
        rt.dispatcher.kick()
        time.sleep(0.2)


def _response(r) -> dict:
    assert r.status == 200, (r.status, r.text[:500])
    return r.json()["response"]


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _component(node, ident: str) -> dict | None:
    """The props of the component with this id in a callback's answer."""
    if isinstance(node, dict):
        props = node.get("props")
        if isinstance(props, dict) and props.get("id") == ident:
            return props
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = _component(child, ident)
            if found is not None:
                return found
    return None


def _receipt_no(response: dict) -> str:
    m = re.search(r'"data-receipt": "([A-Z][0-9]{8}-[0-9]{6})"', _text(response))
    assert m, _text(response)[:500]
    return m.group(1)


def _sell(client, address: str, amount: str, request_id: str | None = None):
    return client.callback("sell.sell", {"sell-sell.n_clicks": 1, "sell-meter.data": address,
                                         "sell-amount.value": amount, "sell-request.data": request_id})


# ---------------------------------------------------------------------------------------------
# selling

def test_a_cashier_sells_50_yuan_and_the_meter_counts_the_purchase(rt, desk):
    m = _meter(rt)
    field_meter = rt.field_thread.field.meter(m["address"])
    count_before = field_meter.purchase_count
    found = _response(desk["zh"].callback("sell.find", {"sell-find.n_clicks": 1, "sell-search.value": m["address"]}))
    assert found["sell-meter"]["data"] == m["address"]
    card = _text(_response(desk["zh"].callback("sell.card", {"sell-meter.data": m["address"]})))
    assert m["address"] in card and "户主" in card

    body = _response(_sell(desk["zh"], m["address"], "50.00", "desk-test-fifty"))
    shown = _text(body["sell-result"])
    assert "伍拾元整" in shown and "¥50.00" in shown and "售电收据" in shown and shown.count("伍拾元整") == 3
    receipt_no = _receipt_no(body)
    watch = body["sell-watch"]["data"]
    assert watch["receipt"] == receipt_no and body["sell-amount"]["value"] == ""

    entry = _settled(rt, receipt_no)
    assert entry.command_state == "acked" and entry.state == "confirmed"
    assert field_meter.purchase_count == count_before + 1 == entry.purchase_count
    followed = _response(desk["zh"].callback("sell.follow", {"sell-tick.n_intervals": 1, "sell-watch.data": watch}))
    assert '"data-state": "acked"' in _text(followed) and followed["sell-tick"]["disabled"] is True
    assert money(entry.balance_after) in _text(followed["sell-result"])
    logged = [a for a in _audit(rt, "billing.sale") if receipt_no in (a["after"] or "")]
    assert logged and logged[0]["operator"] == "cashier-zh" and logged[0]["source"] == "127.0.0.1"


def test_a_sale_submitted_twice_is_made_once(rt, desk):
    m = _meter(rt)
    before = _counts(rt)
    first = _receipt_no(_response(_sell(desk["en"], m["address"], "20", "desk-test-twice")))
    second = _receipt_no(_response(_sell(desk["en"], m["address"], "20", "desk-test-twice")))
    assert first == second and _counts(rt)[0] == before[0] + 1
    _settled(rt, first)


@pytest.fixture(scope="module")
def closing_meter(rt):
    """A meter whose (one-meter) account was closed: trip, closing refund, closed."""
    m = _meter(rt, single=True)
    billing_accounts.close_account(rt.billing, m["account_id"], cashier("test"), reason="moved out")
    deadline = time.time() + 30
    while billing_accounts.get_account(rt.billing, m["account_id"]).status != "closed" and time.time() < deadline:
        rt.dispatcher.kick()
        time.sleep(0.2)
    return m


def _refusals(rt, closing_meter) -> list[tuple]:
    """(label, callback, values, the same call made on the service) of each refusal the desk must show."""
    m = _meter(rt)
    address = m["address"]
    known = meter_balance(rt.billing, address)
    too_much = str(Decimal("1000.00") - known.projected + Decimal("1.00"))
    refund_too_much = str(known.refundable + Decimal("100.00"))
    sale = lambda a, amount: (lambda: ledger.sell(rt.billing, a, amount, cashier("x")))  # noqa: E731
    return [
        ("zero", "sell.sell", {"sell-meter.data": address, "sell-amount.value": "0"}, sale(address, "0")),
        ("negative", "sell.sell", {"sell-meter.data": address, "sell-amount.value": "-5"}, sale(address, "-5")),
        ("not a number", "sell.sell", {"sell-meter.data": address, "sell-amount.value": "abc"}, sale(address, "abc")),
        ("three decimals", "sell.sell", {"sell-meter.data": address, "sell-amount.value": "1.234"},
         sale(address, "1.234")),
        ("hoarding limit", "sell.sell", {"sell-meter.data": address, "sell-amount.value": too_much},
         sale(address, too_much)),
        ("unknown meter", "sell.sell", {"sell-meter.data": "999999999999", "sell-amount.value": "10"},
         sale("999999999999", "10")),
        ("closed account", "sell.sell", {"sell-meter.data": closing_meter["address"], "sell-amount.value": "10"},
         sale(closing_meter["address"], "10")),
        ("refund above balance", "sell.refund",
         {"sell-meter.data": address, "sell-refund-amount.value": refund_too_much, "sell-refund-reason.value": "x"},
         lambda: ledger.refund(rt.billing, address, refund_too_much, cashier("x"), reason="x")),
    ]


def test_each_refusal_shows_its_reason_in_the_cashiers_language_and_writes_nothing(rt, desk, closing_meter):
    cases = _refusals(rt, closing_meter)
    before = _counts(rt)
    for label, name, values, service in cases:
        with pytest.raises(BillingError) as refused:
            service()
        click = "sell-sell.n_clicks" if name == "sell.sell" else "sell-refund.n_clicks"
        for lang, client in desk.items():
            body = _response(client.callback(name, {click: 1, **values}))
            shown = _text(body["sell-result"])
            assert refused.value.message(lang) in shown, (label, lang, shown[:400])
            assert f'"data-code": "{refused.value.code}"' in shown and body["sell-watch"]["data"] is None
    assert {c[0] for c in cases} >= {"zero", "hoarding limit", "closed account", "refund above balance"}
    assert _counts(rt) == before, "a refused action wrote a ledger entry or a command"


def test_the_desk_words_each_money_mistake_as_a_cashier_would_in_both_languages(rt, desk):
    address = _meter(rt)["address"]
    refund = {"sell-refund.n_clicks": 1, "sell-meter.data": address}
    cases = [
        ("sell.sell", {"sell-sell.n_clicks": 1, "sell-meter.data": address, "sell-amount.value": None},
         "amount_missing", {}),
        ("sell.sell", {"sell-sell.n_clicks": 1, "sell-meter.data": address, "sell-amount.value": "50,5"},
         "amount_decimal_comma", {"value": "50,5"}),
        ("sell.refund", {**refund, "sell-refund-amount.value": "-5", "sell-refund-reason.value": "moved out"},
         "refund_amount_negative", {"amount": "-5"}),
        ("sell.refund", {**refund, "sell-refund-amount.value": "5", "sell-refund-reason.value": ""},
         "reason_required", {}),
        ("sell.refund", {**refund, "sell-refund-amount.value": "", "sell-refund-reason.value": None},
         "refund_fields_missing", {}),
        ("sell.reverse", {"sell-reverse.n_clicks": 1, "sell-reverse-receipt.value": "",
                          "sell-reverse-reason.value": ""}, "reversal_fields_missing", {}),
    ]
    before = _counts(rt)
    for name, values, code, params in cases:
        for lang, client in desk.items():
            shown = _text(_response(client.callback(name, values))["sell-result"])
            assert f'"data-code": "{code}"' in shown and t(f"billing.error.{code}", lang, **params) in shown, shown
            assert "None" not in shown
    assert _counts(rt) == before


def test_an_operator_without_sale_create_gets_403_from_the_sell_callback(rt):
    analyst = _client(rt, "analyst")
    m = _meter(rt)
    before = _counts(rt)
    r = _sell(analyst, m["address"], "50.00")
    assert r.status == 403 and r.json()["permission"] == "sale.create" and r.json()["callback"] == "sell.sell"
    assert _counts(rt) == before
    assert _audit(rt, "permission.denied")[-1]["target"] == "callback sell.sell"


def test_a_sale_is_reversed_through_the_page(rt, desk):
    m = _meter(rt)
    sale = _settled(rt, ledger.sell(rt.billing, m["address"], "30.00", cashier()).receipt_no)
    assert sale.state == "confirmed"
    body = _response(desk["en"].callback("sell.reverse", {"sell-reverse.n_clicks": 1,
                                                         "sell-reverse-receipt.value": sale.receipt_no,
                                                         "sell-reverse-reason.value": "wrong meter"}))
    shown = _text(body["sell-result"])
    assert t("receipt.kind.reversal_of_sale", "en") in shown and sale.receipt_no in shown   # the money, positive:
    assert "叁拾元整" in shown and "¥30.00" in shown and "负" not in shown and "¥-" not in shown  # back to the customer
    reversal = _settled(rt, _receipt_no(body))
    assert reversal.kind == "reversal" and reversal.amount == Decimal("-30.00") and reversal.state == "confirmed"
    assert reversal.reverses_receipt_no == sale.receipt_no
    again = _response(desk["en"].callback("sell.reverse", {"sell-reverse.n_clicks": 1,
                                                          "sell-reverse-receipt.value": sale.receipt_no,
                                                          "sell-reverse-reason.value": "twice"}))
    assert '"data-code": "already_reversed"' in _text(again)


def test_a_meter_is_found_by_room_by_its_qr_url_and_a_forged_code_is_refused(rt, desk):
    with rt.engine.connect() as conn:
        address = conn.execute(sa.select(meter.c.address).join(room, room.c.id == meter.c.room_id)
                               .where(room.c.name == "B2-315")).scalar_one()
    find = lambda text: _response(desk["en"].callback(  # noqa: E731
        "sell.find", {"sell-find.n_clicks": 1, "sell-search.value": text}))
    assert find("b2-315")["sell-meter"]["data"] == address
    link = qr.url(base_url(rt), qr.sign(rt.qr_key, "meter", address))
    assert find(link)["sell-meter"]["data"] == address
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    body = find(forged)
    assert body["sell-meter"]["data"] is None and t("cashier.qr_invalid", "en") in _text(body)
    several = find("B2-31")
    assert several["sell-meter"]["data"] is None and _text(several).count('"type": "sell-pick"') == 10
    opened = desk["en"].page("/sell", search=f"?meter={address}").text  # the account page's links
    assert "sell-meter-card" in opened and f'"id":"sell-meter","data":"{address}"' in opened


# ---------------------------------------------------------------------------------------------
# accounts

def _not_opened_meter(rt) -> dict:
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(meter.c.address, meter.c.room_id).join(meter_state, meter_state.c.meter_id
                                                                            == meter.c.id)
                           .where(meter.c.status == "not_opened", meter.c.profile == "acrel-ddsy1352",
                                  meter_state.c.purchase_count.is_not(None),
                                  meter.c.id.not_in(sa.select(account_meter.c.meter_id)))  # never in an account
                           .order_by(meter.c.address)).mappings().first()
    return dict(row)


def test_an_account_is_opened_through_the_page(rt, desk):
    m = _not_opened_meter(rt)
    client = desk["zh"]
    options = _response(client.callback("accounts.room_meters", {"acc-room.value": m["room_id"]}))
    assert m["address"] in options["acc-room-meters"]["value"]
    before = _counts(rt)
    bad = _response(client.callback("accounts.open", {
        "acc-open.n_clicks": 1, "acc-room.value": m["room_id"], "acc-room-meters.value": [m["address"]],
        "acc-holder.value": "李测试", "acc-national-id.value": "110105194912310021"}))
    assert t("billing.error.national_id_invalid", "zh") in _text(bad) and _counts(rt) == before

    body = _response(client.callback("accounts.open", {
        "acc-open.n_clicks": 1, "acc-room.value": m["room_id"], "acc-room-meters.value": [m["address"]],
        "acc-holder.value": "李测试", "acc-phone.value": "13800001111", "acc-national-id.value": NATIONAL_ID}))
    shown = _text(body["acc-open-result"])
    account_id = body["acc-selected"]["data"]
    assert "开户收据" in shown and "李*" in shown and m["address"] in shown and body["acc-holder"]["value"] == ""
    view = billing_accounts.get_account(rt.billing, account_id)
    assert view.status == "open" and [x.address for x in view.meters] == [m["address"]]
    detail = _text(_response(client.callback("accounts.detail", {"acc-selected.data": account_id})))
    assert view.national_id_masked in detail and NATIONAL_ID not in detail and "138****1111" in detail
    assert _audit(rt, "billing.open_account")[-1]["source"] == "127.0.0.1"
    events = _response(client.callback("accounts.events", {"acc-ev-search.n_clicks": 1, "acc-ev-kind.value": "opened",
                                                           "acc-ev-text.value": m["address"]}))
    assert [r["id"] for r in events["acc-ev-grid"]["rowData"]] == [account_id]


def test_an_account_is_closed_through_the_page_with_its_closing_refund(rt, desk):
    m = _meter(rt, single=True)
    balance = meter_balance(rt.billing, m["address"]).balance
    body = _response(desk["en"].callback("accounts.close", {"acc-close-confirm.submit_n_clicks": 1,
                                                           "acc-selected.data": m["account_id"],
                                                           "acc-close-reason.value": "moved out"}))
    assert t("accounts.closing_started", "en", id=m["account_id"]) in _text(body)
    deadline = time.time() + 30
    while billing_accounts.get_account(rt.billing, m["account_id"]).status != "closed" and time.time() < deadline:
        rt.dispatcher.kick()
        time.sleep(0.2)
    followed = _text(_response(desk["en"].callback("accounts.follow", {"acc-tick.n_intervals": 1,
                                                                       "acc-selected.data": m["account_id"]})))
    assert '"data-state": "closed"' in followed and '"data-state": "settled"' in followed
    refunds = [e for e in ledger.account_entries(rt.billing, m["account_id"]) if e.kind == "closing_refund"]
    assert len(refunds) == 1 and refunds[0].state == "confirmed" and -refunds[0].amount >= balance - Decimal("5")
    assert t("billing.kind.closing_refund", "en") in followed
    closed = _response(desk["en"].callback("accounts.events", {"acc-ev-search.n_clicks": 1,
                                                               "acc-ev-kind.value": "closed"}))
    assert m["account_id"] in [r["id"] for r in closed["acc-ev-grid"]["rowData"]]


def test_a_meter_that_cannot_answer_is_settled_by_hand_through_the_page(rt, desk):
    m = _meter(rt, single=True)
    field = rt.field_thread.field
    field.set_meter_offline(m["address"], True)
    expire_after = rt.dispatcher.expire_after
    try:
        billing_accounts.close_account(rt.billing, m["account_id"], cashier("test"), reason="meter dead")
        rt.dispatcher.expire_after = dt.timedelta(seconds=0)
        deadline = time.time() + 30
        while billing_accounts.closing_status(rt.billing, m["account_id"]) != {m["address"]: "refused"}:
            assert time.time() < deadline, billing_accounts.closing_status(rt.billing, m["account_id"])
            rt.dispatcher.kick()
            time.sleep(0.2)
    finally:
        rt.dispatcher.expire_after = expire_after
        field.set_meter_offline(m["address"], False)
    values = {"acc-hand-confirm.submit_n_clicks": 1, "acc-selected.data": m["account_id"],
              "acc-hand-meter.value": m["address"], "acc-hand-amount.value": "12.34", "acc-hand-reason.value": ""}
    before = _counts(rt)
    refused = _text(_response(desk["zh"].callback("accounts.settle_by_hand", values)))
    assert t("billing.error.reason_required", "zh") in refused and _counts(rt) == before
    values["acc-hand-reason.value"] = "meter burnt; display read 12.34"
    body = _text(_response(desk["en"].callback("accounts.settle_by_hand", values)))
    assert t("accounts.by_hand_done", "en", meter=m["address"], amount="¥12.34") in body
    assert billing_accounts.get_account(rt.billing, m["account_id"]).status == "closed"
    refund = next(e for e in ledger.account_entries(rt.billing, m["account_id"]) if e.kind == "closing_refund")
    assert (refund.amount, refund.state) == (Decimal("-12.34"), "confirmed")
    assert refund.receipt_no in body and "壹拾贰元叁角肆分" in body     # its receipt, the amount in 大写 too
    assert _counts(rt) == (before[0] + 1, before[1]), "one ledger entry, no command"
    logged = _audit(rt, "billing.closing_settled_by_hand")
    assert logged[-1]["operator"] == "cashier" and m["address"] in str(logged[-1]["after"])
    followed = _text(_response(desk["en"].callback("accounts.follow", {"acc-tick.n_intervals": 1,
                                                                       "acc-selected.data": m["account_id"]})))
    assert '"data-state": "by_hand"' in followed


def test_an_analyst_may_not_settle_a_meter_by_hand(rt):
    before = _counts(rt)
    r = _client(rt, "analyst").callback("accounts.settle_by_hand", {
        "acc-hand-confirm.submit_n_clicks": 1, "acc-selected.data": 1, "acc-hand-meter.value": "202611210001",
        "acc-hand-amount.value": "1", "acc-hand-reason.value": "x"})
    assert r.status == 403 and _counts(rt) == before


def test_a_meter_is_added_and_old_meters_balances_are_carried_over(rt, desk):
    old = _meter(rt, single=True, funded=True)
    new = _not_opened_meter(rt)["address"]
    client = desk["en"]
    action = lambda name, **values: _response(client.callback(name, {"acc-selected.data": old["account_id"],  # noqa
                                                                     **values}))
    added = action("accounts.add_meter", **{"acc-add.n_clicks": 1, "acc-add-meter.value": new})
    assert t("accounts.meter_added", "en", meter=new) in _text(added) and new in _text(added["acc-detail"])
    assert {o["value"] for o in added["acc-new-meter"]["options"]} == {old["address"], new}

    transfer = {"acc-transfer.n_clicks": 1, "acc-new-meter.value": new, "acc-transfer-mode.value": "entered",
                "acc-old-meter.value": "209912310001", "acc-transfer-amount.value": "12.50",
                "acc-transfer-reason.value": "old meter burnt"}
    before = _counts(rt)
    refused = action("accounts.transfer", **transfer)          # a cashier may carry over only balances read
    assert '"data-code": "permission_denied"' in _text(refused) and _counts(rt) == before
    admin = _client(rt, "admin")
    by_admin = lambda **values: _response(admin.callback("accounts.transfer", {  # noqa: E731
        "acc-selected.data": old["account_id"], **values}))
    no_reason = by_admin(**{**transfer, "acc-transfer-reason.value": ""})
    assert '"data-code": "reason_required"' in _text(no_reason) and _counts(rt) == before
    dead = by_admin(**transfer)
    assert t("receipt.kind.transfer_in", "en") in _text(dead["acc-receipt"]) and "壹拾贰元伍角" in _text(dead)
    entry = _settled(rt, _receipt_no(dead["acc-receipt"]))
    assert (entry.kind, entry.amount, entry.meter_address, entry.state) == ("transfer_in", Decimal("12.50"), new,
                                                                            "confirmed")

    balance = meter_balance(rt.billing, old["address"]).balance
    read = action("accounts.transfer", **{**transfer, "acc-transfer-mode.value": "read",
                                          "acc-old-meter.value": old["address"], "acc-transfer-amount.value": ""})
    assert "acc-receipt" in read, _text(read["acc-action-result"])
    carried = _settled(rt, _receipt_no(read["acc-receipt"]))
    assert carried.amount == balance and carried.state == "confirmed"
    view = billing_accounts.get_account(rt.billing, old["account_id"])
    assert [m.address for m in view.meters] == [new]
    again = action("accounts.transfer", **{**transfer, "acc-transfer-mode.value": "read",
                                           "acc-old-meter.value": old["address"]})
    assert '"data-code": "already_transferred"' in _text(again)


def test_an_entered_balance_above_the_approval_amount_waits_for_a_second_operator_on_the_accounts_page(rt):
    onto = _meter(rt, single=True)
    admin, manager = _client(rt, "admin"), _client(rt, "manager")
    before = _counts(rt)
    asked = _response(admin.callback("accounts.transfer", {
        "acc-selected.data": onto["account_id"], "acc-transfer.n_clicks": 1, "acc-new-meter.value": onto["address"],
        "acc-transfer-mode.value": "entered", "acc-old-meter.value": "209912310777",
        "acc-transfer-amount.value": "150.00", "acc-transfer-reason.value": "old meter burnt; photo of its display"}))
    request = int(re.search(r'"data-request": "([0-9]+)"', _text(asked)).group(1))
    assert "acc-receipt" not in asked or asked["acc-receipt"]["children"] is None
    assert _counts(rt) == before, "nothing is queued before the approval"
    assert "209912310777" in manager.page("/accounts").text      # the manager's accounts page lists it
    own = _response(admin.callback("accounts.approve", {"acc-approve.n_clicks": 1, "acc-approval-pick.value": request}))
    assert '"data-code": "approval_by_requester"' in _text(own) and _counts(rt) == before
    done = _response(manager.callback("accounts.approve", {"acc-approve.n_clicks": 1,
                                                           "acc-approval-pick.value": request,
                                                           "acc-approval-note.value": "photo checked"}))
    receipt_no = re.search(r'"data-receipt": "([A-Z][0-9]{8}-[0-9]{6})"', _text(done)).group(1)
    entry = _settled(rt, receipt_no)
    assert (entry.kind, entry.amount, entry.meter_address, entry.state) == ("transfer_in", Decimal("150.00"),
                                                                            onto["address"], "confirmed")
    assert _counts(rt)[0] == before[0] + 1
    logged = _audit(rt, "billing.transfer_approved")[-1]
    assert logged["operator"] == "manager" and logged["source"] == "127.0.0.1"
    cashier_page = _client(rt, "cashier").callback("accounts.approve", {"acc-approve.n_clicks": 1,
                                                                        "acc-approval-pick.value": request})
    assert cashier_page.status == 403


def test_a_meter_replaced_in_place_gets_its_balance_back_through_the_transfer_form(rt, desk):
    m = _meter(rt, single=True)
    assert _settled(rt, _receipt_no(_response(_sell(desk["en"], m["address"], "20")))).state == "confirmed"
    rt.collector.run_cycle()
    balance = meter_balance(rt.billing, m["address"]).balance
    rt.field_thread.field.reset_meter_counter(m["address"])      # the new meter kept the number
    rt.collector.run_cycle()
    form = {"acc-selected.data": m["account_id"], "acc-transfer.n_clicks": 1, "acc-new-meter.value": m["address"],
            "acc-old-meter.value": m["address"], "acc-transfer-mode.value": "read"}
    body = _response(desk["en"].callback("accounts.transfer", form))
    assert "acc-receipt" in body, _text(body["acc-action-result"])
    carried = _settled(rt, _receipt_no(body["acc-receipt"]))
    assert (carried.kind, carried.state, carried.purchase_count) == ("transfer_in", "confirmed", 1)
    assert balance - Decimal("1.00") <= carried.amount <= balance
    sale = _response(_sell(desk["en"], m["address"], "10"))
    assert _settled(rt, _receipt_no(sale)).state == "confirmed", "the meter takes sales again"
    before = _counts(rt)
    again = _response(desk["zh"].callback("accounts.transfer", form))     # a second click, before the next poll
    assert t("billing.error.meter_not_read_since_setup", "zh", meter=m["address"]) in _text(again)
    rt.collector.run_cycle()
    again = _response(desk["zh"].callback("accounts.transfer", form))     # and after it
    assert t("billing.error.meter_not_reset", "zh", meter=m["address"], count=2, expected=2) in _text(again)
    assert _counts(rt) == before, "the balance is carried over once"


def test_the_customer_card_carries_a_signed_code_of_the_account(rt, desk):
    m = _meter(rt)
    body = _response(desk["en"].callback("accounts.card", {"acc-card.n_clicks": 1,
                                                           "acc-selected.data": m["account_id"]}))
    card = body["acc-card-svg"]["data"]
    assert qr.verify(rt.qr_key, card["token"]) == qr.QrSubject("account", str(m["account_id"]))
    holder = billing_accounts.get_account(rt.billing, m["account_id"]).holder_name
    assert card["svg"].startswith("<svg") and holder[0] + "*" in card["svg"] and holder not in card["svg"]
    assert card["filename"].endswith(".png")
    assert _audit(rt, "billing.customer_card")[-1]["target"] == f"account:{m['account_id']}"


# ---------------------------------------------------------------------------------------------
# records, labels

def test_the_records_export_holds_the_rows_the_query_shows(rt, desk):
    from openpyxl import load_workbook
    assert _client(rt, "operator").callback("records.query", {"rec-search.n_clicks": 1}).status == 403  # no report.view
    analyst = _client(rt, "analyst")
    body = _response(analyst.callback("records.query", {"rec-search.n_clicks": 1, "rec-building.value": "Building 1",
                                                        "rec-kinds.value": ["sale", "reversal"]}))
    rows = body["rec-grid"]["rowData"]
    assert rows and {r["building"] for r in rows} == {"Building 1"}
    assert {r["kind"] for r in rows} <= {t("billing.kind.sale", "en"), t("billing.kind.reversal", "en")}
    shown = [r["id"] for r in rows][:25]
    export = _response(analyst.callback("records.export", {"rec-export-request.data": {"ids": shown, "filter": {}},
                                                           "rec-applied.data": body["rec-applied"]["data"]}))
    book = load_workbook(io.BytesIO(base64.b64decode(export["rec-download"]["data"]["content"])))
    sheet = list(book.active.iter_rows(values_only=True))
    assert sheet[0][1] == t("records.col_receipt_no", "en") and len(sheet) == 1 + len(shown)
    receipts = {r["id"]: r["receipt_no"] for r in rows}
    assert [line[1] for line in sheet[1:]] == [receipts[i] for i in shown]
    assert all(isinstance(line[3], (int, float)) for line in sheet[1:]) and all(line[6] == "Building 1"
                                                                               for line in sheet[1:])
    logged = _audit(rt, "billing.records_export")[-1]
    assert logged["operator"] == "analyst" and json.loads(logged["after"])["rows"] == len(shown)


def test_the_label_sheet_holds_one_code_per_meter_of_the_building(rt, desk):
    body = _response(desk["en"].callback("qr.labels", {"qr-show.n_clicks": 1, "qr-building.value": "Building 2"}))
    tokens = re.findall(r'"data-token": "([^"]+)"', _text(body["qr-sheet"]))
    addresses = re.findall(r'"data-address": "([0-9]{12})"', _text(body["qr-sheet"]))
    with rt.engine.connect() as conn:
        expected = set(conn.execute(sa.text(
            "SELECT m.address FROM meter m JOIN room r ON r.id = m.room_id JOIN building b ON b.id = r.building_id "
            "WHERE b.name = 'Building 2' AND m.status <> 'removed'")).scalars())
    assert len(tokens) == len(addresses) == len(expected) and set(addresses) == expected and len(expected) >= 100
    assert [qr.verify(rt.qr_key, tok).key for tok in tokens] == addresses
    assert _text(body["qr-sheet"]).count("data:image/png;base64,") == len(expected)


# ---------------------------------------------------------------------------------------------
# tariffs, API clients

def _save(client, **values):
    base = {"tar-save.n_clicks": 1, "tar-target.value": "new", "tar-mode.value": "flat"}
    return _response(client.callback("tariffs.save", {**base, **values}))


def test_tariffs_are_created_versioned_and_pushed_with_the_batch_states(rt):
    admin = _client(rt, "admin")
    bad = _save(admin, **{"tar-name.value": "Night TOU", "tar-mode.value": "tou", "tar-price-sharp.value": "1.2",
                          "tar-price-peak.value": "0.9", "tar-price-flat.value": "0.6", "tar-price-valley.value": "0.3",
                          "tar-segments.value": "00:00 谷\n08:00 peak\n07:00 flat"})
    assert '"data-code": "segment_start_invalid"' in _text(bad)
    body = _save(admin, **{"tar-name.value": "Night TOU", "tar-mode.value": "tou", "tar-price-sharp.value": "1.2",
                           "tar-price-peak.value": "0.9", "tar-price-flat.value": "0.6", "tar-price-valley.value": "0.3",
                           "tar-segments.value": "00:00 谷\n08:00 peak\n18:00 尖\n22:00 valley"})
    assert t("tariffs.created", "en", name="Night TOU") in _text(body)
    created = next(x for x in tariff_list(rt.billing) if x["name"] == "Night TOU")
    assert created["mode"] == "tou" and created["versions"][0]["body"].segments == ((0, 3), (480, 1), (1080, 0),
                                                                                    (1320, 3))
    first = dict(created["versions"][0])
    _save(admin, **{"tar-target.value": str(created["id"]), "tar-price-sharp.value": "1.3",
                    "tar-price-peak.value": "0.9", "tar-price-flat.value": "0.6", "tar-price-valley.value": "0.3",
                    "tar-segments.value": "00:00 valley\n08:00 peak"})
    versions = next(x for x in tariff_list(rt.billing) if x["id"] == created["id"])["versions"]
    assert [v["version_no"] for v in versions] == [1, 2] and versions[0]["price_sharp"] == first["price_sharp"]

    m = _meter(rt)
    push = _response(admin.callback("tariffs.push", {"tar-push.n_clicks": 1, "tar-push-tariff.value": str(created["id"]),
                                                     "tar-scope.value": "list", "tar-push-meters.value": m["address"],
                                                     "tar-assign.value": True}))
    batch = push["tar-batch"]["data"]
    assert batch.startswith("tariff-") and t("tariffs.pushed", "en", n=1, batch=batch) in _text(push)
    deadline = time.time() + 30
    while time.time() < deadline:
        rt.dispatcher.kick()
        view = _response(admin.callback("tariffs.batch", {"tar-tick.n_intervals": 1, "tar-batch.data": batch}))
        if view["tar-tick"]["disabled"]:
            break
        time.sleep(0.3)
    assert '"data-done": "1"' in _text(view) and "batch-acked" in _text(view)
    operator = _client(rt, "operator")  # may push, may not edit
    assert operator.callback("tariffs.save", {"tar-save.n_clicks": 1}).status == 403
    for action in ("billing.tariff_create", "billing.tariff_version", "billing.tariff_push"):
        assert _audit(rt, action)[-1]["source"] == "127.0.0.1", action


def test_an_api_client_is_created_with_its_token_shown_once_and_revoked(rt):
    admin = _client(rt, "admin")
    body = _response(admin.callback("api_clients.create", {"api-create.n_clicks": 1, "api-name.value": "campus-pay"}))
    token = _component(body, "api-token")["children"]
    address = _meter(rt)["address"]

    def lookup():
        req = urllib.request.Request(f"{base_url(rt)}/api/v1/meters/{address}",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    assert lookup() == 200
    page = admin.page("/admin/api-clients")
    assert "campus-pay" in page.text and token not in page.text
    revoked = _response(admin.callback("api_clients.revoke", {"api-revoke-confirm.submit_n_clicks": 1,
                                                              "api-revoke-name.value": "campus-pay"}))
    assert t("api_clients.revoked", "en", name="campus-pay") in _text(revoked) and lookup() == 401
    assert _client(rt, "cashier").callback("api_clients.create", {"api-create.n_clicks": 1}).status == 403
    assert _audit(rt, "billing.api_client_add")[-1]["source"] == "127.0.0.1"
    assert _audit(rt, "billing.api_client_revoke")[-1]["source"] == "127.0.0.1"


def test_every_new_page_answers_each_role_by_its_permissions(rt):
    paths = {"/sell": "sale.create", "/accounts": "account.open", "/records": "report.view",
             "/tariffs": "tariff.push", "/qr": "account.open", "/admin/api-clients": "api_client.manage"}
    from operators.service import DEFAULT_ROLE_PERMISSIONS
    for role in ("cashier", "analyst", "operator", "worker"):
        client = _client(rt, role)
        for path, permission in paths.items():
            body = client.page(path).text
            denied = "forbidden-page" in body
            assert denied == (permission not in DEFAULT_ROLE_PERMISSIONS[role]), (role, path)


# ---------------------------------------------------------------------------------------------
# Chromium

def _signed_in(rt, browser, username: str, **context):
    ctx = browser.new_context(accept_downloads=True, **context)
    ctx.set_default_timeout(20000)
    page = ctx.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"{page.url}: {e}"))
    page.goto(base_url(rt) + "/login")
    page.fill("#login-username", username)
    page.fill("#login-password", DEMO)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    return ctx, page


def test_every_new_page_renders_in_both_languages_without_console_errors(rt, browser):
    ctx, page = _signed_in(rt, browser, "admin", viewport={"width": 390, "height": 844})
    try:
        for lang in ("en", "zh"):
            page.goto(f"{base_url(rt)}/lang/{lang}?next=/status")
            for path, heading in PAGES.items():
                page.goto(base_url(rt) + path)
                page.wait_for_selector(f"h1:text-is('{t(heading, lang)}')")
                page.wait_for_load_state("networkidle")
        assert page.errors == []
    finally:
        page.goto(f"{base_url(rt)}/lang/en?next=/status")
        ctx.close()


def test_a_sale_in_the_browser_shows_the_receipt_until_acknowledged_and_prints_it(rt, browser):
    ctx, page = _signed_in(rt, browser, "cashier", viewport={"width": 1366, "height": 768})
    page.add_init_script("window.__printed = 0; window.print = function () { window.__printed += 1; };")
    try:
        address = _meter(rt)["address"]
        page.goto(f"{base_url(rt)}/lang/zh?next=/sell")
        page.fill("#sell-search", address)
        page.press("#sell-search", "Enter")
        page.wait_for_selector("#sell-meter-card")
        page.fill("#sell-amount", "50")
        page.click("#sell-sell")
        page.wait_for_selector("#receipt-block")
        assert page.locator("#receipt-sheet .receipt-copy").count() == 3
        assert page.locator("#receipt-sheet").inner_text().count("伍拾元整") == 3
        page.wait_for_selector("#sell-command-state[data-state=acked]")
        assert page.input_value("#sell-amount") == ""
        page.click("#sell-print")
        page.wait_for_function("window.__printed === 1")
        assert page.errors == []
    finally:
        page.goto(f"{base_url(rt)}/lang/en?next=/status")
        ctx.close()


def test_the_customer_card_is_saved_as_a_png(rt, browser, tmp_path):
    ctx, page = _signed_in(rt, browser, "cashier", viewport={"width": 390, "height": 844})
    try:
        page.goto(base_url(rt) + "/accounts")
        page.click("#acc-tabs >> text=" + t("accounts.tab_find", "en"))
        page.fill("#acc-search", "B1-1")
        page.click("#acc-find")
        page.locator("#acc-grid .ag-row").first.click()
        page.wait_for_selector("#acc-detail-card")
        with page.expect_download() as download:
            page.click("#acc-card")
        saved = tmp_path / "card.png"
        download.value.save_as(saved)
        data = saved.read_bytes()
        width, height = struct.unpack(">II", data[16:24])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and width == 1200 and height >= 660
        assert download.value.suggested_filename.startswith("customer-card-")
        assert page.get_attribute("#acc-card-img", "data-token")
        assert page.errors == []
    finally:
        ctx.close()


def test_a_search_that_finds_no_meter_clears_the_previous_meters_card(rt, browser):
    ctx, page = _signed_in(rt, browser, "cashier", viewport={"width": 1366, "height": 768})
    try:
        address = _meter(rt)["address"]
        page.goto(base_url(rt) + "/sell")
        page.fill("#sell-search", address)
        page.press("#sell-search", "Enter")
        page.wait_for_selector(f"#sell-address:text-is('{address}')")
        page.fill("#sell-search", "B9-999")
        page.press("#sell-search", "Enter")
        page.wait_for_selector("#sell-no-match")
        page.wait_for_selector("#sell-no-meter")
        assert page.locator("#sell-meter-card").count() == 0
        page.fill("#sell-amount", "10")
        page.click("#sell-sell")
        page.wait_for_selector(f"#desk-error:has-text('{t('cashier.no_meter', 'en')}')")
        assert page.locator("#sell-meter-card").count() == 0 and page.errors == []
    finally:
        ctx.close()


def test_find_keeps_its_status_filter_after_an_account_was_shown(rt, browser):
    ctx, page = _signed_in(rt, browser, "cashier", viewport={"width": 1366, "height": 768})
    try:
        page.goto(base_url(rt) + "/accounts")
        page.click("#acc-tabs >> text=" + t("accounts.tab_find", "en"))
        page.fill("#acc-search", "B1-1")
        page.click("#acc-find")
        page.locator("#acc-grid .ag-row").first.click()
        page.wait_for_selector("#acc-detail-card")
        page.select_option("#acc-status", "closed")
        page.fill("#acc-search", "")
        page.click("#acc-find")
        page.wait_for_function("(open) => !document.querySelector('#acc-grid').innerText.includes(open)",
                               arg=t("cashier.state.open", "en"))
        states = page.locator("#acc-grid .ag-row [col-id=status]").all_inner_texts()
        assert set(states) <= {t("cashier.state.closed", "en")}
        page.select_option("#acc-status", "open")
        page.click("#acc-find")
        page.wait_for_selector("#acc-grid .ag-row [col-id=status]:text-is('%s')" % t("cashier.state.open", "en"))
        assert set(page.locator("#acc-grid .ag-row [col-id=status]").all_inner_texts()) == {t("cashier.state.open",
                                                                                                 "en")}
        assert page.errors == []
    finally:
        ctx.close()


# ---------------------------------------------------------------------------------------------
# tariffs: versions that could never be in force, prices of 0, renaming, retiring, pushing to nobody
def test_a_version_dated_before_the_one_in_force_is_refused_naming_it_in_both_languages(rt):
    dorm = next(x for x in tariff_list(rt.billing) if x["versions"])
    numbers = [v["version_no"] for v in dorm["versions"]]
    if rt.accounts.operator("admin-zh") is None:
        rt.accounts.add_operator("admin-zh", None, "verwalter-passwort", ["admin"], by="test", source="test",
                                 language="zh", must_change_password=False)
    for lang, client in (("en", _client(rt, "admin")), ("zh", _client(rt, "admin-zh", "verwalter-passwort"))):
        body = _save(client, **{"tar-target.value": str(dorm["id"]), "tar-flat-price.value": "0.70",
                                "tar-price-flat.value": "0.70", "tar-tier-price-0.value": "0.70",
                                "tar-segments.value": "00:00 flat", "tar-valid-from.value": "2020-01-01T00:00"})
        shown = _text(body["tar-save-result"])
        assert '"data-code": "version_never_in_force"' in shown and "2020-01-01 00:00" in shown
        assert (f"version {numbers[-1]}" if lang == "en" else f"版本 {numbers[-1]}") in shown
    after = next(x for x in tariff_list(rt.billing) if x["id"] == dorm["id"])
    assert [v["version_no"] for v in after["versions"]] == numbers


def test_a_tariff_is_renamed_and_retired_on_the_page_and_offered_no_more(rt):
    admin = _client(rt, "admin")
    _save(admin, **{"tar-name.value": "Mistake", "tar-flat-price.value": "0.61"})
    tid = next(x["id"] for x in tariff_list(rt.billing) if x["name"] == "Mistake")
    renamed = _response(admin.callback("tariffs.rename", {"tar-rename.n_clicks": 1, "tar-manage-tariff.value": str(tid),
                                                          "tar-new-name.value": "Mistake 2"}))
    assert t("tariffs.renamed", "en", old="Mistake", name="Mistake 2") in _text(renamed)
    assert {"label": "Mistake 2", "value": str(tid)} in renamed["tar-push-tariff"]["options"]
    retired = _response(admin.callback("tariffs.retire", {"tar-retire-confirm.submit_n_clicks": 1,
                                                          "tar-manage-tariff.value": str(tid)}))
    assert t("tariffs.retired", "en", name="Mistake 2") in _text(retired)
    assert str(tid) not in {o["value"] for key in ("tar-push-tariff", "tar-manage-tariff", "tar-target")
                            for o in retired[key]["options"]}
    assert t("tariffs.retired_badge", "en") in _text(retired["tar-list"])
    accounts_page = admin.page("/accounts").text
    assert "Mistake 2" not in accounts_page and "Mistake 2" in admin.page("/tariffs").text
    assert [r["action"] for r in _audit(rt, "billing.tariff_rename") + _audit(rt, "billing.tariff_retire")] == \
        ["billing.tariff_rename", "billing.tariff_retire"]
    in_use = next(x for x in tariff_list(rt.billing) if x["versions"] and x["id"] != tid and x["retired_at"] is None)
    refused = _response(admin.callback("tariffs.retire", {"tar-retire-confirm.submit_n_clicks": 1,
                                                          "tar-manage-tariff.value": str(in_use["id"])}))
    assert '"data-code": "tariff_in_use"' in _text(refused) or '"data-code": "tariff_is_default"' in _text(refused)
    assert _client(rt, "operator").callback("tariffs.rename", {"tar-rename.n_clicks": 1}).status == 403


def test_pushing_a_tariff_no_meter_bills_by_says_so_and_not_choose_a_meter_for_the_account(rt):
    admin = _client(rt, "admin")
    _save(admin, **{"tar-name.value": "Nobody's", "tar-flat-price.value": "0.62"})
    tid = next(x["id"] for x in tariff_list(rt.billing) if x["name"] == "Nobody's")
    before = _counts(rt)
    body = _response(admin.callback("tariffs.push", {"tar-push.n_clicks": 1, "tar-push-tariff.value": str(tid),
                                                     "tar-scope.value": "tariff"}))
    assert t("billing.error.tariff_no_meters", "en", name="Nobody's") in _text(body["tar-push-result"])
    empty = _response(admin.callback("tariffs.push", {"tar-push.n_clicks": 1, "tar-push-tariff.value": str(tid),
                                                      "tar-scope.value": "list", "tar-push-meters.value": " "}))
    assert t("billing.error.push_meters_missing", "en") in _text(empty["tar-push-result"])
    assert t("billing.error.meters_missing", "en") not in _text(body) + _text(empty) and _counts(rt) == before


def test_a_price_of_0_is_saved_only_after_the_operator_confirms_it_in_the_browser(rt, browser):
    ctx, page = _signed_in(rt, browser, "admin", viewport={"width": 1366, "height": 768})
    dialogs = []
    try:
        page.goto(base_url(rt) + "/tariffs")
        page.fill("#tar-name", "Free trial")
        page.fill("#tar-flat-price", "0")
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.click("#tar-save")
        deadline = time.time() + 10
        while not dialogs and time.time() < deadline:
            page.wait_for_timeout(100)
        assert dialogs == [t("tariffs.zero_confirm", "en", prices=t("tariffs.price_flat", "en"))]
        assert "Free trial" not in {x["name"] for x in tariff_list(rt.billing)}
        page.once("dialog", lambda d: d.accept())
        page.click("#tar-save")
        page.wait_for_selector("#tar-saved")
        assert "Free trial" in {x["name"] for x in tariff_list(rt.billing)}
        page.wait_for_selector("#tar-list >> text=Free trial")
        assert page.errors == []
    finally:
        ctx.close()


def _not_opened_meters(rt, n: int) -> list[str]:
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(meter.c.address).join(meter_state, meter_state.c.meter_id == meter.c.id)
                            .where(meter.c.status == "not_opened", meter.c.profile == "acrel-ddsy1352",
                                   meter_state.c.purchase_count.is_not(None),
                                   meter.c.id.not_in(sa.select(account_meter.c.meter_id)))
                            .order_by(meter.c.address.desc()).limit(n)).scalars().all()
    assert len(rows) == n
    return list(rows)


# The card's PNG drawn again on a canvas: its size and the lowest and rightmost ink inside the 1 px border.
_INK = """async (png) => {
    const img = new Image();
    img.src = "data:image/png;base64," + png;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width; canvas.height = img.height;
    const g = canvas.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, img.width, img.height).data;
    let right = -1, bottom = -1;
    for (let y = 8; y < img.height - 8; y++) {
        for (let x = 8; x < img.width - 8; x++) {
            const i = 4 * (y * img.width + x);
            if (d[i] < 160 || d[i + 1] < 160 || d[i + 2] < 160) { right = Math.max(right, x); bottom = Math.max(bottom, y); }
        }
    }
    return {width: img.width, height: img.height, right: right, bottom: bottom};
}"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_customer_card_png_holds_every_meter_without_clipping_its_last_line(rt, browser, tmp_path, lang):
    meters = _not_opened_meters(rt, 4) if lang == "en" else _not_opened_meters(rt, 5)[-1:]
    view = billing_accounts.open_account(rt.billing, holder_name="欧阳明月" if lang == "zh" else "Alexandra Montgomery",
                                         meter_addresses=meters, operator="admin")
    ctx, page = _signed_in(rt, browser, "admin", viewport={"width": 1366, "height": 768})
    try:
        page.goto(f"{base_url(rt)}/lang/{lang}?next=/accounts")
        page.click("#acc-tabs >> text=" + t("accounts.tab_find", lang))
        page.fill("#acc-search", meters[0])
        page.click("#acc-find")
        page.locator("#acc-grid .ag-row").first.click()
        page.wait_for_selector(f"#acc-detail-card[data-account='{view.id}']")
        with page.expect_download() as download:
            page.click("#acc-card")
        png = download.value.path().read_bytes()
        ink = page.evaluate(_INK, base64.b64encode(png).decode("ascii"))
        assert ink["width"] == 1200 and ink["bottom"] > 0
        assert ink["height"] - ink["bottom"] >= 2 * 16, ink     # white below the last line: nothing cut off
        assert ink["width"] - ink["right"] >= 2 * 12, ink       # and at the right: no line runs off the card
        svg = page.get_attribute("#acc-card-img", "src")
        shown = base64.b64decode(svg.split(",", 1)[1]).decode("utf-8")
        assert all(m in shown for m in meters)
        assert page.errors == []
    finally:
        page.goto(f"{base_url(rt)}/lang/en?next=/status")
        ctx.close()
