"""GET /api/v1/reports/line-loss over a real WSGI server (waitress) on loopback, on the demo site's topology (four
transformer areas of 120 room meters, a master meter and a terminal each) with midnight registers of known
answers: the documented rows per area and day or month, and refusals (a bad token, a client without the reports
scope, bad dates) as JSON in the client's language."""
from __future__ import annotations

import datetime as dt
import threading
import urllib.parse
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa

from billing.api import create_api_client, openapi_document
from dashboard.app import create_app
from reports.api import ReportsApi
from reports.registry import ReportEnv
from reports.render import export_report
from simulator.site import demo_site
from storage.schema import area_meter, meter, transformer_area
from storage.timeseries import append_readings

from tests.billing_support import Clock, load_site, make_ctx
from tests.webclient import json_call

NOW = dt.datetime(2026, 11, 21, 8, 0)
# Each area's master meter counts this much a day for its 120 room meters' 1 kWh each:
# Area B1 126 (loss 6/126, qualified), B2 144 (24/144, high), B3 110 (negative), B4 as B1 but one room meter
# has no reading at the second midnight (both days around it not computable).
MASTER_PER_DAY = {"Area B1": 126.0, "Area B2": 144.0, "Area B3": 110.0, "Area B4": 126.0}
SILENT_METER = "202611210361"   # a room meter of Building 4


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0)) - dt.timedelta(hours=8)


@pytest.fixture
def site(duck_engine):
    load_site(duck_engine, demo_site(base_port=15300), NOW)
    with duck_engine.connect() as conn:
        meters = pd.DataFrame(conn.execute(
            sa.select(meter.c.id, meter.c.address, meter.c.profile, transformer_area.c.name.label("area"))
            .join(area_meter, area_meter.c.meter_id == meter.c.id)
            .join(transformer_area, transformer_area.c.id == area_meter.c.area_id)).mappings().all())
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(4)]
    frames = []
    for i, day in enumerate(days):
        per_day = meters["area"].map(MASTER_PER_DAY).where(meters["profile"] == "eastron-sdm630", 1.0)
        frames.append(pd.DataFrame({"ts": _midnight(day), "meter_id": meters["id"],
                                    "energy_total": 1000.0 + i * per_day, "address": meters["address"]}))
    readings = pd.concat(frames, ignore_index=True)
    readings = readings[~((readings["address"] == SILENT_METER) & (readings["ts"] == _midnight(days[1])))]
    with duck_engine.begin() as conn:
        append_readings(conn, readings.drop(columns="address"))
    return make_ctx(duck_engine, Clock(NOW))


class Api:
    def __init__(self, base: str, tokens: dict):
        self.base, self.tokens = base, tokens

    def get(self, path: str, client: str = "reports", lang: str | None = None, token: str | None = None, **query):
        headers = {"Authorization": f"Bearer {token or self.tokens[client]}"}
        if lang:
            headers["Accept-Language"] = lang
        return json_call(self.base + path + "?" + urllib.parse.urlencode(query), "GET", None, headers)


@pytest.fixture
def api(site):
    from waitress import create_server
    tokens = {"reports": create_api_client(site, "bi-tool", "admin", scopes=["reports"]),
              "payment": create_api_client(site, "wechat-pay", "admin", scopes=["payment"])}
    app = create_app(lambda: {"status": "ok"}, services=SimpleNamespace(billing=site, qr_key=b"q" * 32))
    server = create_server(app.server, host="127.0.0.1", port=0, threads=2)
    th = threading.Thread(target=lambda: _run(server), daemon=True)
    th.start()
    yield Api(f"http://127.0.0.1:{server.effective_port}/api/v1", tokens)
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    th.join(5)


def _run(server) -> None:
    try:
        server.run()
    except OSError:     # the listening socket closed under select() at shutdown
        pass


def test_the_line_loss_rows_per_area_and_day_are_the_documented_ones(api):
    status, body = api.get("/reports/line-loss", **{"from": "2026-11-01", "to": "2026-11-02", "by": "day"})
    assert status == 200, body
    assert {tuple(sorted(r)) for r in body["rows"]} == {("area", "class", "interpolated", "loss_kwh", "loss_rate",
                                                         "missing_meters", "period", "sales_kwh", "supply_kwh")}
    got = [(r["period"], r["area"], r["supply_kwh"], r["sales_kwh"], r["loss_kwh"], r["loss_rate"], r["class"],
            r["missing_meters"]) for r in body["rows"]]
    rows = []
    for day in ("2026-11-01", "2026-11-02"):
        rows += [(day, "Area B1", 126.0, 120.0, 6.0, 0.0476, "qualified", ""),
                 (day, "Area B2", 144.0, 120.0, 24.0, 0.1667, "high", ""),
                 (day, "Area B3", 110.0, 120.0, -10.0, -0.0909, "negative", ""),
                 (day, "Area B4", None, None, None, None, "not_computable", SILENT_METER)]
    assert got == rows


def test_a_month_row_spans_the_range_days_of_that_month(api):
    status, body = api.get("/reports/line-loss", **{"from": "2026-11-01", "to": "2026-11-03", "by": "month"})
    assert status == 200
    assert [(r["period"], r["area"], r["supply_kwh"], r["sales_kwh"], r["class"]) for r in body["rows"]] == [
        ("2026-11", "Area B1", 378.0, 360.0, "qualified"), ("2026-11", "Area B2", 432.0, 360.0, "high"),
        ("2026-11", "Area B3", 330.0, 360.0, "negative"), ("2026-11", "Area B4", 378.0, 360.0, "qualified")]


def test_a_bad_token_is_refused_with_401(api):
    status, body = api.get("/reports/line-loss", token="not-a-token", **{"from": "2026-11-01", "to": "2026-11-01"})
    assert status == 401 and "code" in body


def test_a_client_without_the_reports_scope_is_refused_in_its_language(api):
    status, body = api.get("/reports/line-loss", client="payment", lang="zh-CN",
                           **{"from": "2026-11-01", "to": "2026-11-01"})
    assert (status, body["code"]) == (403, "scope_missing")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])


@pytest.mark.parametrize("query, code", [
    ({"from": "2026-11-31", "to": "2026-12-01"}, "day_invalid"),
    ({"from": "２０２６-11-01", "to": "2026-11-02"}, "day_invalid"),
    ({"from": "2026-11-03", "to": "2026-11-01"}, "range_reversed"),
    ({"from": "2026-11-01"}, "range_missing"),
    ({"from": "2025-01-01", "to": "2026-11-01"}, "range_too_long"),
    ({"from": "2026-11-01", "to": "2026-11-01", "by": "hour"}, "by_invalid"),
    ({"from": "2026-11-01", "to": "2026-11-01", "building": "Building 1"}, "parameter_unknown"),
])
def test_bad_line_loss_parameters_answer_400_in_the_clients_language(api, query, code):
    status, body = api.get("/reports/line-loss", **query)
    assert (status, body["code"]) == (400, code)
    status_zh, body_zh = api.get("/reports/line-loss", lang="zh", **query)
    assert (status_zh, body_zh["code"]) == (400, code) and body_zh["message"] != body["message"]


def test_the_openapi_description_names_the_line_loss_report(site):
    path = openapi_document([ReportsApi(ReportEnv(site))])["paths"]["/reports/{name}"]["get"]
    assert "line-loss" in path["parameters"][0]["schema"]["enum"]
    assert "GET /reports/line-loss" in path["description"] and "not_computable" in path["description"]


def test_the_line_loss_report_exports_as_a_workbook(site):
    data, filename = export_report(ReportEnv(site), "line-loss", {"from": "2026-11-01", "to": "2026-11-01"},
                                   "xlsx", operator="analyst", lang="zh", source="test")
    assert filename.endswith(".xlsx") and data[:2] == b"PK"


def test_the_demo_site_computes_its_areas_line_loss_and_judges_its_power_quality(tmp_path):
    from grid.line_loss import CLASSES, line_loss
    from storage import grid as store
    from tests.webclient import start_demo_runtime
    rt = start_demo_runtime(tmp_path)
    try:
        with rt.engine.connect() as conn:
            areas = store.areas(conn)
        assert list(areas["name"]) == ["Area B1", "Area B2", "Area B3", "Area B4"]
        assert areas["master_address"].str.startswith("20261121800").all() and (areas["ct_ratio"] == 1.0).all()
        assert areas["terminal_address"].str.startswith("20261121900").all()
        today = rt.billing.local(rt.billing.now()).date()
        rows = line_loss(rt.engine, rt.billing.tz, today - dt.timedelta(days=1), today - dt.timedelta(days=1))
        assert list(rows["area"]) == list(areas["name"]) and set(rows["class"]) <= set(CLASSES)
        assert rt.jobs.run("power_quality")
        status = {s.name: s for s in rt.jobs.status()}["power_quality"]
        assert status.last_ok and status.last_error is None
    finally:
        rt.stop()
