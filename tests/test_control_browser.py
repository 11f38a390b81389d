"""The control room in Chromium (the system's; in CI a missing Chromium fails) against the running demo site, its
simulator on loopback and its dispatcher: an operator filters the control page, ticks two meters, presses Trip, reads
the confirmation (the action and the count), is told a reason is required, gives one, sends, opens the batch view
and watches both meters settle as confirmed by the relay read back; then one meter is closed again from the meters
grid's Control link, whose column stays out of the grid's XLSX export; both pages at 390 px wide."""
from __future__ import annotations

import io
import time

import pytest
import sqlalchemy as sa

from billing import control
from billing.errors import BillingError
from dashboard.components.control import confirm_text, selected_text
from dashboard.i18n import t
from operators.service import demo_password
from storage.schema import command
from tests.phone_fit import phone_problems
from tests.webclient import base_url, browser_signed_in, start_demo_runtime

DEMO = demo_password()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("control-browser"))
    deadline = time.time() + 60
    while time.time() < deadline and not runtime.health()["last_poll"]:
        time.sleep(0.2)
    yield runtime
    runtime.stop()


def _signed_in(browser, rt, username: str, width: int = 1366):
    return browser_signed_in(browser, rt, username, width=width, locale="en-US")


def _two_closed_meters_on_one_floor(rt):
    """Two meters the dispatcher can trip without a warning (relay closed, no keep power, online), on one floor,
    and how many meters that floor lists."""
    df = control.live_meters(rt.billing)
    ok = df[df["relay_closed"].eq(True) & ~df["keep_power"].fillna(False).astype(bool) & df["comm_state"].eq("online")]
    for (building, floor), group in ok.groupby(["building", "floor"], sort=False):
        if len(group) >= 2:
            listed = int(((df["building"] == building) & (df["floor"] == floor)).sum())
            return building, int(floor), group.iloc[:2], listed
    raise AssertionError("the demo has no floor with two closed meters")


def _choose(page, dropdown: str, option: str) -> None:
    page.click(dropdown)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def _displayed_rows(page, grid: str, count: int) -> None:
    page.wait_for_function("([grid, n]) => { const api = window.dash_ag_grid && dash_ag_grid.getApi(grid);"
                           " return !!api && api.getDisplayedRowCount() === n; }", arg=[grid, count])


def _commands(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one()


def _settled_in_batch_view(page, addresses, state: str = "confirmed") -> None:
    """Follow the queued message's link to the batch view; wait (it reads the database every 2 s) for `state`."""
    page.locator("#control-message [data-batch] a").click()
    page.wait_for_url("**/control/batch?id=ctl-*")
    rows = ", ".join(f"#control-batch-body tr[data-meter='{a}'][data-state='{state}']" for a in addresses)
    try:
        page.wait_for_function("([rows, n]) => document.querySelectorAll(rows).length === n",
                               arg=[rows, len(addresses)], timeout=60000)
    except Exception as exc:  # say what the batch view shows instead
        raise AssertionError(page.inner_text("#control-batch-body")) from exc
    assert t(f"control.state.{state}", "en") in page.inner_text(f"#control-batch-body tr[data-meter='{addresses[0]}']")


def test_an_operator_trips_two_meters_from_the_control_page_and_closes_one_from_the_meters_grid(rt, browser):
    building, floor, chosen, listed = _two_closed_meters_on_one_floor(rt)
    addresses = list(chosen["address"])
    field = rt.field_thread.field
    context, page = _signed_in(browser, rt, "operator")
    try:
        # filter to one floor, tick two meters by hand
        page.goto(base_url(rt) + "/control")
        page.wait_for_selector("#control-grid .ag-row")
        _choose(page, "#control-building", building)
        _choose(page, "#control-floor", str(floor))
        _displayed_rows(page, "control-grid", listed)
        for meter_id in chosen["meter_id"]:
            page.locator(f"#control-grid .ag-center-cols-container .ag-row[row-id='{int(meter_id)}'] "
                         "input.ag-checkbox-input").click()
        page.wait_for_selector(f"#control-count:text-is('{selected_text(2, 'en')}')")

        # Trip: the confirmation names it and the count; Send without a reason is refused in the dialog
        commands = _commands(rt)
        page.get_by_role("button", name=t("control.action.trip", "en"), exact=True).click()
        page.wait_for_selector(f"#control-confirm-body:has-text('{confirm_text('trip', 2, 'en')}')")
        page.click("#control-send")
        refusal = page.wait_for_selector("#control-confirm-body [data-code='reason_required']")
        assert refusal.inner_text() == BillingError("reason_required").message("en")
        assert page.locator("#control-reason.is-invalid").count() == 1 and _commands(rt) == commands

        page.fill("#control-reason", "Wiring inspection on this floor")
        page.click("#control-send")
        page.wait_for_selector("#control-message [data-batch]")
        assert _commands(rt) == commands + 2
        _settled_in_batch_view(page, addresses)
        trip_batch = page.url
        assert [field.meter(a).relay_closed for a in addresses] == [False, False]
    finally:
        context.close()

    # one meter from the meters grid (an admin: relay commands and the export), the export without the link
    context, page = _signed_in(browser, rt, "admin")
    try:
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector("#meters-grid .ag-row")
        page.locator("#meters-grid .ag-floating-filter input[type=text]").first.fill(addresses[0])
        _displayed_rows(page, "meters-grid", 1)
        with page.expect_download() as download:
            page.click("#meters-export")
        from openpyxl import load_workbook
        sheet = load_workbook(io.BytesIO(open(download.value.path(), "rb").read()), read_only=True).active
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert len(rows) == 2 and rows[1][0] == addresses[0]
        assert t("meters.col_control", "en") not in rows[0] and t("meters.control_link", "en") not in rows[1]

        page.locator("#meters-grid .mg-control a").first.click()
        page.wait_for_url(f"**/control?meter={addresses[0]}")
        page.wait_for_selector(f"#control-count:text-is('{selected_text(1, 'en')}')")
        assert addresses[0] in page.inner_text("#control-linked")
        _displayed_rows(page, "control-grid", 1)
        page.get_by_role("button", name=t("control.action.close", "en"), exact=True).click()
        page.wait_for_selector(f"#control-confirm-body:has-text('{confirm_text('close', 1, 'en')}')")
        page.click("#control-send")
        page.wait_for_selector("#control-message [data-batch]")
        _settled_in_batch_view(page, addresses[:1])
        assert field.meter(addresses[0]).relay_closed and not field.meter(addresses[1]).relay_closed

        # a phone: the link column and the one-meter control page fit 390 px without sideways scrolling; the
        # batches list and a batch's meters (nine columns) stack, none cut off in its box
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/meters", f"/control?meter={addresses[0]}"):
            page.goto(base_url(rt) + path)
            page.wait_for_selector(".ag-row")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert phone_problems(page, "/control batches", "#control-batches table") == []
        page.goto(trip_batch)
        page.wait_for_selector(f"#control-batch-body tr[data-meter='{addresses[1]}']")
        assert phone_problems(page, trip_batch, "#control-batch-body table") == []
    finally:
        context.close()
