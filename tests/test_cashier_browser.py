"""The cashier pages in Chromium (the system's; in CI a missing Chromium fails): every page in both languages
without a console error, a sale whose receipt is printed, and the customer card saved as a PNG."""
from __future__ import annotations

import os
import shutil
import struct
import time

import pytest

from core.operators import demo_password
from dashboard.i18n import t
from tests.webclient import base_url, start_demo_runtime

DEMO = demo_password()
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PAGES = {"/sell": "cashier.heading", "/accounts": "accounts.heading", "/records": "records.heading",
         "/tariffs": "tariffs.heading", "/qr": "qr.heading", "/admin/api-clients": "api_clients.heading"}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must run browser tests: chromium is not installed (.ci/run installs it)")
        pytest.skip("no chromium on this machine")
    return path


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("cashier-browser"))
    deadline = time.time() + 60
    while time.time() < deadline and not runtime.health()["last_poll"]:
        time.sleep(0.2)
    yield runtime
    runtime.stop()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=ARGS)
        yield b
        b.close()


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
        page.goto(f"{base_url(rt)}/lang/zh?next=/sell")
        page.fill("#sell-search", "B3-207")
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
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1200, 680)
        assert download.value.suggested_filename.startswith("customer-card-")
        assert page.get_attribute("#acc-card-img", "data-token")
        assert page.errors == []
    finally:
        ctx.close()
