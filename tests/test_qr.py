"""QR identity: signed tokens (forged or altered ones refused), PNG codes, the customer's page on both engines."""
from __future__ import annotations

import datetime as dt
import struct
import zlib
from types import SimpleNamespace

import pytest
from flask import Flask
from markupsafe import escape

from billing import accounts, ledger, qr
from dashboard.i18n import t
from dashboard.selfservice import customer_pages

from tests.billing_support import NATIONAL_ID, Clock, address, cashier, flat_tariff, load_site, make_ctx, prepaid_site, \
    write_reading

KEY = bytes(range(100, 132))
PUBLIC_URL = "https://energy.example.edu"


def test_a_signed_token_names_its_account_or_meter():
    assert qr.verify(KEY, qr.sign(KEY, "account", 42)) == qr.QrSubject("account", "42")
    assert qr.verify(KEY, qr.sign(KEY, "meter", "202611210001")) == qr.QrSubject("meter", "202611210001")


@pytest.mark.parametrize("forge", [
    lambda t: "a43" + t[3:],                                    # another account, same signature
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),           # signature altered
    lambda t: t.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA",       # made-up signature
    lambda t: qr.sign(b"another site's key 32 bytes long", "account", 42),
    lambda t: "a42",                                            # no signature
    lambda t: "../../etc/passwd",
    lambda t: "",
])
def test_a_forged_or_altered_token_is_refused(forge):
    token = qr.sign(KEY, "account", 42)
    with pytest.raises(qr.BadToken):
        qr.verify(KEY, forge(token))


def test_the_qr_code_is_a_valid_png_of_the_customer_url():
    url = qr.url("http://wattline.example/", qr.sign(KEY, "meter", "202611210001"))
    assert url.startswith("http://wattline.example/c/m202611210001.")
    data = qr.png(url, scale=4)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    modules = len(qr.matrix(url))
    assert width == height == modules * 4 and (depth, color) == (1, 0)
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == height * (1 + (width + 7) // 8)
    assert qr.svg(url).startswith("<svg")


@pytest.fixture
def page(any_engine, fixed_now):
    clock = Clock(fixed_now)
    load_site(any_engine, prepaid_site(15020), fixed_now)
    ctx = make_ctx(any_engine, clock)
    flat_tariff(ctx)
    write_reading(any_engine, address(1), balance="88.50", purchase_count=3, ts=fixed_now - dt.timedelta(minutes=5))
    view = accounts.open_account(ctx, holder_name="王小明", meter_addresses=[address(1)], operator="cashier",
                                 national_id=NATIONAL_ID)
    ledger.sell(ctx, address(1), "20.00", cashier("cashier"))
    app = Flask(__name__)
    app.config["WATTLINE_SERVICES"] = SimpleNamespace(public_url=PUBLIC_URL)
    app.register_blueprint(customer_pages(ctx, KEY))
    return app.test_client(), view


def test_the_customer_page_shows_balance_and_purchases_without_login(page):
    client, view = page
    resp = client.get(f"/c/{qr.sign(KEY, 'account', view.id)}?lang=zh")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "我的用电" in text and "王**" in text and "王小明" not in text
    assert "¥88.50" in text and "¥20.00" in text and "处理中" in text and "近 30 天每日用电" in text
    assert "<svg" in text and "<script" not in text and "width=device-width" in text
    english = client.get(f"/c/{qr.sign(KEY, 'meter', address(1))}?lang=en").get_data(as_text=True)
    assert "My electricity" in english and address(1) in english


def test_the_low_balance_notice_follows_the_sites_own_alarm_amounts(page, any_engine, fixed_now):
    from billing.settings import set_meter_limits
    client, view = page
    url = f"/c/{qr.sign(KEY, 'account', view.id)}"
    assert 'id="low-balance"' not in client.get(f"{url}?lang=en").get_data(as_text=True)  # 88.50 above 20.00
    ctx = make_ctx(any_engine, Clock(fixed_now))
    set_meter_limits(ctx, "admin", alarm1="100.00", alarm2="50.00")      # a site that warns early
    text = client.get(f"{url}?lang=en").get_data(as_text=True)
    assert t("alarm.customer.low", "en", amount="¥100.00") in text
    set_meter_limits(ctx, "admin", alarm2="90.00")
    text = client.get(f"{url}?lang=zh").get_data(as_text=True)
    assert str(escape(t("alarm.customer.very_low", "zh", amount="¥90.00"))) in text and 'class="balance low"' in text


def test_the_customer_page_refuses_a_forged_token(page):
    client, view = page
    token = qr.sign(KEY, "account", view.id)
    resp = client.get(f"/c/a{view.id + 1}.{token.split('.')[1]}", headers={"Accept-Language": "zh-CN"})
    assert resp.status_code == 404 and "二维码无效" in resp.get_data(as_text=True)
    assert "88.50" not in resp.get_data(as_text=True)
    assert client.get(f"/c/{token}/qr.png").data[:4] == b"\x89PNG"
    assert client.get("/c/a1.forged/qr.png").status_code == 404


def test_the_qr_code_leads_to_the_configured_address_whatever_host_the_request_names(page):
    client, view = page
    token = qr.sign(KEY, "account", view.id)
    forged = client.get(f"/c/{token}/qr.png", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert forged.status_code == 200
    assert forged.data == qr.png(qr.url(PUBLIC_URL, token))
    assert forged.data != qr.png(qr.url("http://evil.example/", token))


def test_without_a_configured_public_address_no_qr_code_is_made(page):
    client, view = page
    client.application.config["WATTLINE_SERVICES"] = SimpleNamespace(public_url=None)
    resp = client.get(f"/c/{qr.sign(KEY, 'account', view.id)}/qr.png", headers={"Accept-Language": "zh-CN"})
    assert resp.status_code == 503 and "[site] public_url" in resp.get_data(as_text=True)
    assert resp.data[:4] != b"\x89PNG"


def _axis_days(text: str) -> list[str]:
    import re
    return re.findall(r'class="day">([^<]+)</text>', text)


def test_the_daily_use_bars_are_dated_under_the_axis_in_the_visitors_language(page, fixed_now):
    client, view = page
    token = qr.sign(KEY, "account", view.id)
    today = (fixed_now + dt.timedelta(hours=8)).date()            # the billing context's zone: UTC+8
    first = today - dt.timedelta(days=29)
    english = _axis_days(client.get(f"/c/{token}?lang=en").get_data(as_text=True))
    chinese = _axis_days(client.get(f"/c/{token}?lang=zh").get_data(as_text=True))
    assert english[0] == f"{first:%b} {first.day}" and english[-1] == f"{today:%b} {today.day}"
    assert chinese[0] == f"{first.month}月{first.day}日" and chinese[-1] == f"{today.month}月{today.day}日"
    assert len(english) == len(chinese) == 5                       # every seventh day and the last: no overlap


def test_the_customer_address_without_a_code_says_what_the_page_is_for_in_the_visitors_language(page):
    client, _view = page
    for lang, accept in (("zh", "zh-CN,zh;q=0.9"), ("en", "en-GB")):
        resp = client.get("/c/", headers={"Accept-Language": accept})
        text = resp.get_data(as_text=True)
        assert resp.status_code == 404 and resp.mimetype == "text/html"
        assert all(str(escape(t(f"billing.customer.{key}", lang))) in text for key in ("no_token", "no_token_help"))
        assert 'id="lang-switch"' in text and "Error loading layout" not in text
    assert client.get("/c").headers["Location"].endswith("/c/")


@pytest.mark.parametrize("path", ["/c/not-a-code", "/c/a1.short", "/c/m2026112100.xxxxxxxxxxxxxxxxxxxxxx"])
def test_a_malformed_code_gets_the_friendly_page_saying_to_scan_again(page, path):
    client, _view = page
    resp = client.get(path + "?lang=zh")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 404 and t("billing.customer.bad_token", "zh") in text
    assert t("billing.customer.scan_again", "zh") in text and 'href="?lang=en"' in text
