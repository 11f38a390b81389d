"""Receipts: three copies, the amount in figures and in Chinese capitals, both languages; the receipts of real
ledger entries (billing.views.receipt) print the money that moved, positive, under a title saying which way."""
from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import dash
import pytest
from dash import html
from waitress import create_server

from billing import accounts, ledger
from billing.views import receipt
from dashboard.components.receipt import COPIES, ReceiptData, receipt_sheet
from dashboard.i18n import missing_keys
from storage import billing as store
from storage.engine import dispose, open_engine
from storage.migrations import migrate
from storage.schema import command

from tests.billing_support import NATIONAL_ID, Clock, address, cashier, flat_tariff, load_site, make_ctx, \
    prepaid_site, write_reading
from tests.component_text import component_text


def _receipt(**kw):
    base = dict(receipt_no="S20261121-000042", kind="sale", amount=Decimal("123.45"),
                amount_in_words="壹佰贰拾叁元肆角伍分", issued_at=datetime(2026, 11, 21, 9, 30),
                operator="cashier", meter_address="202611210001", room="B1-101", building="Building 1",
                holder="张*", balance_after=Decimal("150.00"), purchase_count=8)
    base.update(kw)
    return ReceiptData(**base)


_text = component_text

@pytest.mark.parametrize("lang, copy_names", [("en", ["Customer copy", "Finance copy", "Archive copy"]),
                                              ("zh", ["第一联 用户联", "第二联 财务联", "第三联 存根联"])])
def test_a_receipt_prints_three_named_copies(lang, copy_names):
    sheet = receipt_sheet(_receipt(), lang)
    assert len(sheet.children) == len(COPIES) == 3
    text = _text(sheet)
    for name in copy_names:
        assert name in text


def test_each_copy_shows_the_amount_in_figures_and_in_words_and_the_balance_after():
    text = _text(receipt_sheet(_receipt(), "zh"))
    assert text.count("¥123.45") == 3 and text.count("壹佰贰拾叁元肆角伍分") == 3
    assert text.count("¥150.00") == 3 and "202611210001" in text and "B1-101" in text


def test_a_reversal_receipt_names_the_receipt_it_reverses():
    text = _text(receipt_sheet(_receipt(kind="reversal", title="reversal_of_sale", reverses="S20261121-000041"),
                               "en"))
    assert "Sale reversal receipt" in text and "S20261121-000041" in text


def test_receipt_texts_exist_in_both_languages():
    assert missing_keys() == {}



# ---------------------------------------------------------------------------------------------
# receipts of real entries: a meter with 100.00 on it, a sale of 50.00 and a refund of 10.00, both confirmed
@pytest.fixture
def desk(tmp_path, fixed_now):
    engine = open_engine(f"duckdb:///{tmp_path / 'receipts.duckdb'}")
    migrate(engine)
    load_site(engine, prepaid_site(15020), fixed_now)
    ctx = make_ctx(engine, Clock(fixed_now))
    flat_tariff(ctx)
    write_reading(engine, address(1), balance="100.00", purchase_count=3, ts=fixed_now)
    view = accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(1)], operator="c",
                                 national_id=NATIONAL_ID)
    sale = _confirmed(ctx, ledger.sell(ctx, address(1), "50.00", cashier("c")))
    refund = _confirmed(ctx, ledger.refund(ctx, address(1), "10.00", cashier("c"), reason="moving rooms"))
    yield ctx, view.id, sale, refund
    dispose(engine)


def _confirmed(ctx, entry):
    with ctx.engine.begin() as conn:
        store.settle_entry(conn, entry.id, "confirmed", confirmed_at=ctx.now())
    return entry


def _printed(ctx, receipt_no: str, lang: str) -> str:
    return _text(receipt_sheet(ReceiptData(**receipt(ctx, receipt_no)), lang))


def _prints_positive(text: str, title: str, moved: str, figure: str, words: str) -> bool:
    """Each of the three copies has the title, the line saying which way the money went and the amount in figures
    and in capitals; no minus sign anywhere."""
    return (all(text.count(part) == 3 for part in (title, moved, figure, words))
            and "¥-" not in text and "-¥" not in text and "负" not in text)


@pytest.mark.parametrize("lang, title, moved", [
    ("en", "Refund receipt", "Taken back from the meter, paid to the customer"),
    ("zh", "退费收据", "从电表扣回，退还用户")])
def test_a_refund_receipt_prints_the_amount_refunded_positive_under_its_own_title(desk, lang, title, moved):
    ctx, _account, _sale, refund = desk
    text = _printed(ctx, refund.receipt_no, lang)
    assert refund.amount == Decimal("-10.00")                     # the ledger keeps the sign of the balance's move
    assert _prints_positive(text, title, moved, "¥10.00", "壹拾元整") and "退电" not in text


@pytest.mark.parametrize("lang, title, moved", [
    ("en", "Sale reversal receipt", "Sale reversed: taken back from the meter, returned to the customer"),
    ("zh", "售电冲正收据", "售电冲正：从电表扣回，退还用户")])
def test_a_sales_reversal_receipt_prints_the_money_returned_to_the_customer(desk, lang, title, moved):
    ctx, _account, sale, _refund = desk
    reversal = ledger.reverse_entry(ctx, sale.receipt_no, cashier("c"), "sold to the wrong meter")
    text = _printed(ctx, reversal.receipt_no, lang)
    assert _prints_positive(text, title, moved, "¥50.00", "伍拾元整") and text.count(sale.receipt_no) == 3


@pytest.mark.parametrize("lang, title, moved", [
    ("en", "Refund reversal receipt", "Refund reversed: paid back by the customer, put back on the meter"),
    ("zh", "退费冲正收据", "退费冲正：用户交回，重新充入电表")])
def test_a_refunds_reversal_receipt_prints_the_money_put_back_on_the_meter(desk, lang, title, moved):
    ctx, _account, _sale, refund = desk
    reversal = ledger.reverse_entry(ctx, refund.receipt_no, cashier("c"), "refunded by mistake")
    text = _printed(ctx, reversal.receipt_no, lang)
    assert reversal.amount == Decimal("10.00")
    assert _prints_positive(text, title, moved, "¥10.00", "壹拾元整") and text.count(refund.receipt_no) == 3


@pytest.mark.parametrize("lang, title, moved", [
    ("en", "Account closing refund receipt", "Account closed: the balance left on the meter, paid to the customer"),
    ("zh", "销户退费收据", "销户：电表剩余金额退还用户")])
def test_a_closing_refund_receipt_prints_the_balance_paid_out_positive(desk, lang, title, moved):
    ctx, account_id, _sale, _refund = desk
    accounts.close_account(ctx, account_id, cashier("c"), reason="moved out")
    with ctx.engine.begin() as conn:      # the meter never answered its trip: the cashier settles it by hand
        conn.execute(command.update().where(command.c.batch_id == f"close-{account_id}").values(state="failed"))
    done = accounts.settle_meter_by_hand(ctx, account_id, address(1), cashier("c"), amount="140.00",
                                         reason="meter burnt; display read 140.00")
    text = _printed(ctx, done.receipt_no, lang)
    assert _prints_positive(text, title, moved, "¥140.00", "壹佰肆拾元整")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_longest_receipt_prints_each_copy_within_its_third_of_an_a4_page(browser, lang):
    """A reversal (the most rows) with a long amount, printed: no copy runs into the next one."""
    app = dash.Dash(__name__, assets_folder=str(Path(__file__).resolve().parent.parent / "assets"),
                    serve_locally=True)
    app.layout = html.Div(receipt_sheet(_receipt(kind="reversal", title="reversal_of_refund", amount=Decimal("9876.54"),
                                                 amount_in_words="玖仟捌佰柒拾陆元伍角肆分",
                                                 reverses="R20261121-000041"), lang))
    server = create_server(app.server, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{server.effective_port}/")
        page.wait_for_selector(".receipt-copy", state="attached")
        page.emulate_media(media="print")
        copies = page.evaluate("""() => [...document.querySelectorAll('.receipt-copy')].map(c => {
            const mm = 96 / 25.4, box = c.getBoundingClientRect();
            const used = c.lastElementChild.getBoundingClientRect().bottom - box.top
                         + parseFloat(getComputedStyle(c).paddingBottom);
            return {height: box.height / mm, used: used / mm};
        })""")
    finally:
        page.close()
        server.close()
    assert len(copies) == 3
    assert all(c["used"] <= c["height"] for c in copies), copies
    assert sum(c["height"] for c in copies) <= 297 - 2 * 8          # A4 less the page's margins
