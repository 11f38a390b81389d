"""The reports API over a real WSGI server (waitress) on loopback: GET /api/v1/reports/<name> with the token
scope `reports`, the documented row shapes (sales, energy), the scopes kept apart (a payment client cannot read
reports, a report client cannot sell), hostile parameters answered 400 in the client's language."""
from __future__ import annotations

import datetime as dt
import threading
import urllib.parse
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from billing import ledger
from billing.api import SCOPES, create_api_client, ensure_api_client, openapi_document
from dashboard.app import create_app
from dashboard.auth import install_auth
from energy.rollups import EnergyRollups
from operators.service import Accounts
from reports.api import ReportsApi
from reports.registry import ReportEnv
from storage.schema import api_client, ledger_entry, meter
from storage.timeseries import append_readings

from tests.billing_support import address, cashier
from tests.reports_support import report_site, settle_queued
from tests.webclient import json_call

QR_KEY = b"q" * 32


class Api:
    def __init__(self, base: str, tokens: dict, ctx):
        self.base, self.tokens, self.ctx = base, tokens, ctx

    def get(self, path: str, client: str = "reports", lang: str | None = None, **query):
        return self.call("GET", path + ("?" + urllib.parse.urlencode(query) if query else ""), client=client,
                         lang=lang)

    def call(self, method: str, path: str, body=None, client: str = "reports", lang: str | None = None):
        headers = {"Authorization": f"Bearer {self.tokens[client]}"}
        if lang:
            headers["Accept-Language"] = lang
        return json_call(self.base + path, method, body, headers)


@pytest.fixture
def api(duck_engine, fixed_now):
    from waitress import create_server
    ctx = report_site(duck_engine, fixed_now, port=15060)
    tokens = {"reports": create_api_client(ctx, "bi-tool", "admin", scopes=["reports"]),
              "payment": create_api_client(ctx, "wechat-pay", "admin", scopes=["payment"]),
              "control": create_api_client(ctx, "scada", "admin", scopes=["control"])}
    app = create_app(lambda: {"status": "ok"}, services=SimpleNamespace(billing=ctx, qr_key=QR_KEY))
    operators = Accounts(duck_engine, clock=ctx.clock)
    operators.seed()
    install_auth(app, operators, b"s" * 32)     # the dashboard's login guard is on: the API must pass it
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    th = threading.Thread(target=lambda: _run(server), daemon=True)
    th.start()
    yield Api(f"http://127.0.0.1:{server.effective_port}/api/v1", tokens, ctx)
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    th.join(5)


def _run(server) -> None:
    try:
        server.run()
    except OSError:     # the listening socket closed under select() at shutdown
        pass


def _day(ctx, delta: int = 0) -> str:
    return (ctx.local(ctx.now()).date() + dt.timedelta(days=delta)).isoformat()


def test_a_report_client_reads_the_sales_rows_in_the_documented_shape(api):
    ctx = api.ctx
    ledger.sell(ctx, address(1), "50.00", cashier())
    settle_queued(ctx, "acked")
    ledger.refund(ctx, address(2), "3.25", cashier(), reason="moved out")
    status, body = api.get("/reports/sales", **{"from": _day(ctx), "to": _day(ctx, 1), "by": "day"})
    assert status == 200
    assert [set(r) for r in body["rows"]] == [{"period", "sales", "refunds", "reversals", "net", "count"}] * 2
    today = body["rows"][0]
    assert today == {"period": _day(ctx), "sales": "50.00", "refunds": "-3.25", "reversals": "0.00",
                     "net": "46.75", "count": 2}
    assert body["rows"][1]["net"] == "0.00" and body["rows"][1]["count"] == 0
    status, body = api.get("/reports/sales", **{"from": _day(ctx), "to": _day(ctx), "by": "month",
                                                "group": "operator"})
    assert status == 200 and body["rows"] == [{"period": _day(ctx)[:7], "operator": "cashier", "sales": "50.00",
                                               "refunds": "-3.25", "reversals": "0.00", "net": "46.75",
                                               "count": 2}]


def test_the_energy_report_answers_per_floor_and_day_as_documented(api):
    ctx = api.ctx
    with ctx.engine.connect() as conn:
        ids = list(conn.execute(sa.select(meter.c.id).order_by(meter.c.address)).scalars())
    start = dt.datetime(2026, 11, 30, 16, 0)      # 2026-12-01 00:00 in the site's zone (+08:00)
    frames = [pd.DataFrame({"ts": pd.date_range(start, periods=97, freq="30min"), "meter_id": mid,
                            "energy_total": 100.0 + 0.25 * (i + 1) * np.arange(97), "power_total": 1.0})
              for i, mid in enumerate(ids)]
    with ctx.engine.begin() as conn:
        append_readings(conn, pd.concat(frames, ignore_index=True))
    EnergyRollups(ctx.engine, ctx.tz, clock=lambda: dt.datetime(2026, 12, 3)).rebuild()
    status, body = api.get("/reports/energy", **{"from": "2026-12-01", "to": "2026-12-02", "by": "day",
                                                 "group": "floor", "building": "Dorm A"})
    assert status == 200, body
    assert body["rows"] == [
        {"period": "2026-12-01", "building": "Dorm A", "floor": 1, "energy_kwh": 120.0, "estimated": False},
        {"period": "2026-12-02", "building": "Dorm A", "floor": 1, "energy_kwh": 120.0, "estimated": False}]
    status, body = api.get("/reports/energy", **{"from": "2026-12-01", "to": "2026-12-01", "group": "site"})
    assert status == 200 and body["rows"] == [{"period": "2026-12-01", "energy_kwh": 120.0, "estimated": False}]


def test_a_payment_client_is_refused_at_the_reports_and_a_report_client_cannot_sell(api):
    for client in ("payment", "control"):
        status, body = api.get("/reports/sales", client=client, **{"from": _day(api.ctx), "to": _day(api.ctx)})
        assert status == 403 and body["code"] == "scope_missing" and "reports" in body["message"]
    status, body = api.get("/reports/sales", client="payment", lang="zh-CN",
                           **{"from": _day(api.ctx), "to": _day(api.ctx)})
    assert status == 403 and any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])
    before = _entries(api.ctx)
    status, body = api.call("POST", "/sales", {"meter_address": address(1), "amount": "10.00", "request_id": "r-1"})
    assert status == 403 and body["code"] == "permission_denied"
    assert _entries(api.ctx) == before


def _entries(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)).scalar_one()


@pytest.mark.parametrize("query, code", [
    ({"from": "2026-11-32", "to": "2026-12-01"}, "day_invalid"),
    ({"from": "２０２６-11-01", "to": "2026-12-01"}, "day_invalid"),
    ({"from": "2026/11/01", "to": "2026-12-01"}, "day_invalid"),
    ({"from": "=1+1", "to": "2026-12-01"}, "day_invalid"),
    ({"from": "2026-12-02", "to": "2026-12-01"}, "range_reversed"),
    ({"from": "1900-01-01", "to": "1900-01-02"}, "day_out_of_range"),
    ({"from": "2026-12-01"}, "range_missing"),
    ({"from": "2026-01-01", "to": "2026-12-31", "by": "hour"}, "range_too_long"),
    ({"from": "2026-12-01", "to": "2026-12-01", "by": "week"}, "by_invalid"),
    ({"from": "2026-12-01", "to": "2026-12-01", "group": "room; DROP TABLE"}, "group_invalid"),
    ({"from": "2026-12-01", "to": "2026-12-01", "building": "A\x00B"}, "text_invalid"),
    ({"from": "2026-12-01", "to": "2026-12-01", "building": "x" * 500}, "text_invalid"),
    ({"from": "2026-12-01", "to": "2026-12-01", "channel": "cash"}, "channel_invalid"),
    ({"from": "2026-12-01", "to": "2026-12-01", "amount": "50,5"}, "parameter_unknown"),
])
def test_hostile_sales_parameters_answer_400_with_a_message_in_the_clients_language(api, query, code):
    status, body = api.get("/reports/sales", **query)
    assert (status, body["code"]) == (400, code)
    status_zh, body_zh = api.get("/reports/sales", lang="zh", **query)
    assert (status_zh, body_zh["code"]) == (400, code) and body_zh["message"] != body["message"]


def test_hostile_parameters_of_other_reports_and_an_unknown_report(api):
    status, body = api.get("/reports/energy", **{"from": "2026-12-01", "to": "2026-12-01", "floor": "５"})
    assert (status, body["code"]) == (400, "floor_invalid")
    status, body = api.get("/reports/energy", **{"from": "2026-12-01", "to": "2026-12-01", "floor": "3"})
    assert (status, body["code"]) == (400, "place_needs_building")
    status, body = api.get("/reports/readings", **{"from": "2026-12-01", "to": "2026-12-01", "meter": "@SUM(A1)"})
    assert (status, body["code"]) == (400, "meter_invalid")
    status, body = api.get("/reports/readings", **{"from": "2026-12-01", "to": "2026-12-01"})
    assert (status, body["code"]) == (400, "parameter_missing")
    status, body = api.get("/reports/payroll", **{"from": "2026-12-01", "to": "2026-12-01"})
    assert (status, body["code"]) == (404, "report_unknown") and "sales" in body["message"]
    status, body = api.get("/reports/lost-meters")
    assert status == 200 and body == {"rows": []}


def test_the_openapi_description_documents_the_reports_and_their_scope(api):
    doc = openapi_document([ReportsApi(ReportEnv(api.ctx))])
    path = doc["paths"]["/reports/{name}"]["get"]
    assert "sales" in path["parameters"][0]["schema"]["enum"] and "energy" in path["parameters"][0]["schema"]["enum"]
    assert "scope reports" in path["summary"] and "`reports`" in doc["info"]["description"]
    status, served = json_call(api.base + "/openapi.json")
    assert status == 200 and "/reports/{name}" in served["paths"]


def test_the_demo_client_holds_every_scope_reports_included(api):
    ensure_api_client(api.ctx, "demo-payment-client", "d" * 32, "demo")
    with api.ctx.engine.connect() as conn:
        scopes = conn.execute(sa.select(api_client.c.scopes).where(api_client.c.name == "demo-payment-client")).scalar()
    assert set(scopes.split()) == set(SCOPES) >= {"payment", "control", "reports"}
    status, _body = api.call("GET", "/reports/lost-gateways", client="reports")
    assert status == 200
