"""The overview and the meters page against a running demo site: the callback endpoint as the browser
calls it, and Chromium (the system's; in CI a missing Chromium fails) for the live map, the side panel
and the XLSX export. One runtime for the module (one day of history, polls only when a test asks)."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import time

import pytest
import sqlalchemy as sa

from collectors.oneshot import build_command_frame
from core.formatting import format_money as money
from dashboard.overview_data import local_day_bounds
from storage.audit import entries
from storage.meters import EXPORT_ACTION, meter_table
from storage.overview import meter_detail, meter_states_frame, sales_between
from storage.schema import meter
from storage.topology import poll_targets
from tests.webclient import WebClient, base_url, start_demo_runtime

DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "wattline-demo")


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    rt = start_demo_runtime(tmp_path_factory.mktemp("overview"))
    deadline = time.time() + 60
    while time.time() < deadline and not rt.health()["last_poll"]:
        time.sleep(0.2)
    yield rt
    rt.stop()


@pytest.fixture
def page(rt, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    page = context.new_page()
    page.goto(base_url(rt) + "/login")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    yield page
    context.close()


def _normal_room_meter(rt) -> dict:
    """A room meter whose tile is 'opened, normal' (opened here if the demo opened none)."""
    with rt.engine.begin() as conn:
        states = meter_states_frame(conn)
        rooms = states[states["room_id"].notna()]
        normal = rooms[rooms["state"] == "normal"]
        if normal.empty:  # no account opened by the demo: open one whose meter is fine otherwise
            ok = rooms[(rooms["comm_state"] == "online") & rooms["prepaid_enabled"].eq(True)
                       & ~rooms["arrears"].eq(True) & ~rooms["alarm1"].eq(True)]
            conn.execute(meter.update().where(meter.c.id == int(ok.iloc[-1]["meter_id"])).values(status="opened"))
            normal = ok.iloc[[-1]]
        chosen = normal.iloc[-1]
        target = next(t for t in poll_targets(conn) if t["meter_id"] == int(chosen["meter_id"]))
    return target


def _tile(page, meter_id: int):
    return page.locator(f".ov-tile[data-meter='{meter_id}']")


# ---------------------------------------------------------------------------------------------
# The callback endpoint, as the browser calls it

def test_a_tick_after_one_meter_changed_answers_a_patch_of_that_tile_only(rt):
    client = WebClient(base_url(rt))
    assert client.login("manager", DEMO_PASSWORD).status == 302
    assert client.page("/").status == 200  # the layout builds with the live map
    tick = {"ov-interval.n_intervals": 1, "ov-filter-building.value": "*", "ov-filter-floor.value": "*",
            "ov-search.value": ""}
    body = client.callback("overview.refresh", tick).json()["response"]
    store = body["ov-tiles-store"]["data"]
    assert len(body["ov-map"]["buildings"]) == 4  # a browser with no store gets the whole map

    target = _normal_room_meter(rt)  # may open a meter: let the next tick settle that first
    body = client.callback("overview.refresh", {**tick, "ov-tiles-store.data": store}).json()["response"]
    store = body.get("ov-tiles-store", {}).get("data", store)
    with rt.engine.begin() as conn:
        conn.execute(sa.text("UPDATE meter_state SET arrears = TRUE, updated_at = updated_at + INTERVAL 1 SECOND "
                             "WHERE meter_id = :m"), {"m": target["meter_id"]})
    r = client.callback("overview.refresh", {**tick, "ov-tiles-store.data": store})
    assert r.status == 200, r.text[:300]
    ops = r.json()["response"]["ov-map"]["buildings"]["operations"]
    assert len(ops) == 1 and ops[0]["operation"] == "Assign"
    assert ops[0]["params"]["value"][0] == target["meter_id"] and ops[0]["params"]["value"][3] == "A"
    with rt.engine.begin() as conn:  # put it back for the browser tests
        conn.execute(sa.text("UPDATE meter_state SET arrears = FALSE, updated_at = updated_at + INTERVAL 1 SECOND "
                             "WHERE meter_id = :m"), {"m": target["meter_id"]})


def test_an_operator_without_meter_export_is_refused_the_export(rt):
    client = WebClient(base_url(rt))
    assert client.login("cashier", DEMO_PASSWORD).status == 302  # may view meters, may not export them
    r = client.callback("meters.export", {"meters-export-request.data": {"ids": [1, 2], "filter": {}}})
    assert r.status == 403 and r.json()["permission"] == "meter.export"
    with rt.engine.connect() as conn:
        assert all(e["operator"] != "cashier" for e in entries(conn, action=EXPORT_ACTION))


# ---------------------------------------------------------------------------------------------
# Chromium

def test_the_tile_of_a_tripped_meter_turns_to_arrears(rt, page):
    target = _normal_room_meter(rt)
    rt.collector.run_cycle()
    page.goto(base_url(rt) + "/")
    tile = _tile(page, target["meter_id"])
    tile.wait_for()
    assert "st-normal" in tile.get_attribute("class")
    # a remote trip in the secure frame, sent the way the dispatcher sends it (the runtime's field I/O)
    field_meter = rt.field_thread.field.meter(target["meter_address"])
    frame, _ = build_command_frame(target["meter_address"], rt.master_key.bytes, "relay", action="trip",
                                   seq=field_meter.command_seq + 1)
    poll_target = next(t for t in rt.collector.targets() if t.meter_id == target["meter_id"])
    answer = rt.field_io.send_frame(poll_target, frame)
    assert answer.result.name == "APPLIED", answer
    rt.collector.run_cycle()
    page.wait_for_selector(f".ov-tile[data-meter='{target['meter_id']}'].st-arrears", timeout=20000)
    assert "Arrears" in tile.get_attribute("aria-label")
    assert page.locator("#ov-legend-count-arrears").inner_text() != ""


def test_clicking_a_tile_opens_the_panel_with_the_balance(rt, page):
    page.goto(base_url(rt) + "/")
    first = page.locator(".ov-tile").first
    first.wait_for()
    meter_id = int(first.get_attribute("data-meter"))
    first.click()
    page.wait_for_selector("#ov-panel-balance")
    with rt.engine.connect() as conn:
        detail = meter_detail(conn, meter_id)
    assert page.locator("#ov-panel-balance").inner_text() == money(detail["balance"])
    assert detail["address"] in page.locator("#ov-panel").inner_text()
    page.wait_for_selector("#ov-panel-curve .main-svg")


def test_todays_sales_show_the_net_and_their_tooltip_the_gross_refunds_and_reversals(rt, page):
    page.goto(base_url(rt) + "/")
    value = page.locator("#ov-kpi-sales")
    value.wait_for()
    with rt.engine.connect() as conn:
        sales = sales_between(conn, *local_day_bounds(dt.datetime.now(dt.UTC).replace(tzinfo=None), rt.billing.tz))
    assert value.inner_text() == money(sales["net"])
    value.focus()                                   # the keyboard reaches it and shows the tooltip, as a hover does
    tip = page.locator("#ov-kpi-sales-tip")
    tip.wait_for()
    assert money(sales["sale"]) in tip.inner_text() and "refunds" in tip.inner_text()
    assert "reversals" in tip.inner_text() and money(sales["net"]) in tip.inner_text()


def test_the_map_is_one_tab_stop_and_arrows_walk_its_tiles(rt, page):
    page.goto(base_url(rt) + "/")
    tiles = page.locator(".ov-tile")
    tiles.first.wait_for()
    assert page.locator('.ov-tile[tabindex="0"]').count() == 1, "one tile of the map is in the tab order"
    focused = lambda: page.evaluate(  # noqa: E731
        "() => document.activeElement && document.activeElement.getAttribute('data-meter')")
    order = page.evaluate("() => Array.from(document.querySelectorAll('.ov-tile')).map(t => t.dataset.meter)")
    tiles.first.focus()
    page.keyboard.press("ArrowRight")
    assert focused() == order[1]
    page.keyboard.press("ArrowLeft")
    assert focused() == order[0]
    page.keyboard.press("End")
    last_of_row = page.evaluate("() => document.querySelector('.ov-tiles').lastElementChild.dataset.meter")
    assert focused() == last_of_row
    page.keyboard.press("ArrowDown")
    second_row = page.evaluate("() => Array.from(document.querySelectorAll('.ov-tiles')[1].children)"
                               ".map(t => t.dataset.meter)")
    assert focused() in second_row
    assert page.locator('.ov-tile[tabindex="0"]').count() == 1
    page.keyboard.press("Enter")                     # picks the focused tile
    page.wait_for_selector("#ov-panel-balance")
    page.keyboard.press("Tab")                       # one Tab leaves the map, whatever its size
    assert page.evaluate("() => !document.activeElement.classList.contains('ov-tile')")


def test_the_meters_grid_exports_the_rows_its_filter_shows(rt, page):
    from openpyxl import load_workbook
    page.goto(base_url(rt) + "/meters")
    page.wait_for_selector(".ag-row")
    page.locator("input[aria-label='Room Filter Input']").fill("b2-3")
    page.wait_for_function("""() => {
        const cell = document.querySelector(".ag-center-cols-container .ag-row[row-index='0'] [col-id='room']");
        return cell !== null && cell.textContent.startsWith("B2-3");
    }""")
    with page.expect_download() as download:
        page.click("#meters-export")
    path = download.value.path()
    rows = list(load_workbook(io.BytesIO(open(path, "rb").read())).active.iter_rows(values_only=True))
    with rt.engine.connect() as conn:
        table = meter_table(conn)
        log = entries(conn, action=EXPORT_ACTION)
    expected = table[table["room"].fillna("").str.lower().str.contains("b2-3")]["address"].tolist()
    assert len(expected) == 20 and [r[0] for r in rows[1:]] == expected
    assert log[0]["operator"] == "manager" and json.loads(log[0]["after"])["rows"] == 20
    assert page.locator("#meters-message").inner_text() == "Exported 20 rows."


def test_the_meters_grid_shows_money_and_energy_as_the_server_writes_them(rt, page):
    from core.formatting import format_energy
    from storage.schema import meter_state
    with rt.engine.connect() as conn:
        shown = meter_table(conn).dropna(subset=["balance_fen"]).head(2)
        kept = {int(r.meter_id): conn.execute(sa.select(meter_state.c.balance).where(
            meter_state.c.meter_id == int(r.meter_id))).scalar_one() for r in shown.itertuples()}
    credit, debt = shown.itertuples()
    balances = {"1234.50": "¥1,234.50", "-1234.50": "−¥1,234.50"}
    # the demo's fast state poll (every 20 s) writes the meters' real balances back: none from here to the end
    interval = next(j.interval_s for j in rt.jobs.status() if j.name == "state_poll")
    rt.jobs.reschedule("state_poll", 3600)
    rt.jobs.run("state_poll")          # waits for a run in progress; the next is an hour away
    try:
        with rt.engine.begin() as conn:
            for r, balance in zip((credit, debt), balances):
                conn.execute(meter_state.update().where(meter_state.c.meter_id == int(r.meter_id))
                             .values(balance=balance))
        page.set_viewport_size({"width": 1920, "height": 900})   # every column drawn (AG Grid draws what fits)
        page.goto(base_url(rt) + "/meters")
        page.wait_for_selector(".ag-row")
        for r, text in zip((credit, debt), balances.values()):
            page.locator("input[aria-label='Meter number Filter Input']").fill(r.address)
            page.wait_for_function("""(address) => {
                const cell = document.querySelector(".ag-row[row-index='0'] [col-id='address']");
                return cell !== null && cell.textContent === address;
            }""", arg=r.address)
            row = ".ag-center-cols-container .ag-row[row-index='0']"
            assert page.locator(f"{row} [col-id='balance_fen']").inner_text() == text
            assert page.locator(f"{row} [col-id='energy_kwh']").inner_text() == format_energy(r.energy_total,
                                                                                                unit=False)
    finally:
        with rt.engine.begin() as conn:
            for meter_id, balance in kept.items():
                conn.execute(meter_state.update().where(meter_state.c.meter_id == meter_id).values(balance=balance))
        rt.jobs.reschedule("state_poll", interval)
