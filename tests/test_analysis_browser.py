"""The analysis pages in Chromium against the running demo site (one day of history, rollups built at its start):
an analyst lands on the managers' dashboard, opens the energy analysis, reads its total, drills from the site into a
building by clicking its bar and back by the breadcrumb, exports the XLSX (opened with openpyxl, in the operation
log), then reads one meter's reading history and a master meter's register difference. One walk: Chromium is the
suite's slowest part."""
from __future__ import annotations

import io
import time

import openpyxl
import pytest

from energy.history import metered_devices
from storage.audit import entries
from tests.phone_fit import phone_problems
from tests.webclient import base_url, browser_signed_in, start_demo_runtime


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("analysis-browser"))
    yield runtime
    runtime.stop()


def _bar_click(page, graph: str) -> None:
    """Click the middle of the first bar drawn in a dcc.Graph (Plotly turns it into clickData)."""
    bar = page.locator(f"#{graph} .bars .point path").first
    bar.wait_for()
    box = bar.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_an_analyst_reads_drills_and_exports_energy_and_reads_a_meters_history(rt, browser):
    context, page = browser_signed_in(browser, rt, "analyst", locale="en-US")
    try:
        assert page.url.endswith("/dashboard")                    # managers and analysts land here
        page.locator("#mdash-share .js-plotly-plot").wait_for(timeout=60000)   # a busy machine: the first page
        assert page.locator("#mdash-page .js-plotly-plot").count() == 6

        page.goto(base_url(rt) + "/analysis/energy")
        total = page.locator("#aen-total")
        total.wait_for()
        assert "kWh" in total.inner_text() and not total.inner_text().startswith("Total 0.00")
        page.locator("#aen-grid .ag-floating-bottom", has_text="Total").wait_for()   # totals pinned under the grid
        first_building = sorted({d["building"] for d in metered_devices(rt.engine) if d.get("room")})[0]

        _bar_click(page, "aen-chart")                              # site -> the building of the first bar
        page.locator("#aen-crumbs button").first.wait_for()
        assert page.locator("#aen-crumbs").inner_text().startswith(f"Site › {first_building}")
        page.locator("#aen-grid .ag-center-cols-container", has_text="Floor").first.wait_for()
        page.locator("#aen-crumbs button", has_text="Site").click()  # and back
        page.locator("#aen-crumbs button").wait_for(state="detached")

        with page.expect_download() as download:
            page.click("#aen-export")
        book = openpyxl.load_workbook(io.BytesIO(open(download.value.path(), "rb").read()))
        sheet = book["Energy analysis"]
        header = [c.value for c in sheet[1]]
        assert header[1] == "Place" and header[2] == "Total (kWh)"
        last = [c.value for c in list(sheet.iter_rows())[-1]]
        assert last[0] == "Total" and last[2] > 0
        assert sheet.cell(row=2, column=3).number_format == "0.00"
        deadline = time.time() + 5
        while time.time() < deadline and not entries(rt.engine.connect(), "analysis.energy_export"):
            time.sleep(0.1)

        room_meter = next(d["address"] for d in metered_devices(rt.engine) if d.get("room"))
        page.goto(base_url(rt) + f"/analysis/history?meter={room_meter}")
        page.click("#ahist-query")
        page.locator("#ahist-summary span").first.wait_for()
        assert f"of meter {room_meter}" in page.locator("#ahist-summary").inner_text()
        page.locator("#ahist-grid .ag-center-cols-container .ag-row").first.wait_for()

        page.goto(base_url(rt) + "/analysis/insights")            # the tabs: one chart a tab
        page.locator("#ains-load .scatterlayer .trace").first.wait_for()
        page.get_by_role("tab", name="Month and year").click()
        page.locator("#ains-periods-note", has_text="A year earlier").wait_for()   # says last year has no data
        assert "no readings" in page.locator("#ains-periods-note").inner_text()
        page.goto(base_url(rt) + "/analysis/anomalies")
        page.locator("#aano-grid .ag-root").wait_for()
        page.fill("#aano-z", "50,5")                                # hostile: refused in words, nothing run
        page.click("#aano-query")
        page.locator("#aano-result", has_text="from 1 to 20").wait_for()

        master = next(d["address"] for d in metered_devices(rt.engine) if not d.get("room"))
        page.goto(base_url(rt) + f"/analysis/instrument?meter={master}")
        page.click("#ainst-query")
        page.locator("#ainst-energy").wait_for()
        assert "CT ratio" in page.locator("#ainst-body").inner_text()
        page.set_viewport_size({"width": 390, "height": 844})   # on a phone the registers stack, none cut off
        assert phone_problems(page, "/analysis/instrument", "#ainst-body table") == []
    finally:
        context.close()
    with rt.engine.connect() as conn:
        assert entries(conn, "analysis.energy_export")[0]["operator"] == "analyst"
