"""The report centre's pages on the demo site, through the dashboard's own callbacks as the browser calls them:
the hub links every report, a report runs from its filters (hostile ones said in the operator's language, nothing
run), its export is an XLSX written to the operation log, and a cashier closes their own day (an analyst cannot)."""
from __future__ import annotations

import base64
import datetime as dt
import io
import json

import openpyxl
import pytest
import sqlalchemy as sa

from dashboard.ids import ReportCentre as RC, Settlement as ST
from reports.registry import REPORTS
from storage.schema import audit_log, closed_day

from tests.webclient import signed_in_client, start_demo_runtime


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    runtime = start_demo_runtime(tmp_path_factory.mktemp("reports"))
    yield runtime
    runtime.stop()


def _today(rt) -> str:
    ctx = rt.billing
    return ctx.local(ctx.now()).date().isoformat()


def _query(client, rt, **form):
    values = {f"{RC.QUERY}.n_clicks": 1, f"{RC.NAME}.data": form.pop("name", "sales"),
              f"{RC.FROM}.value": form.pop("first", _today(rt)), f"{RC.TO}.value": form.pop("last", _today(rt))}
    values.update({f"{getattr(RC, k.upper())}.value": v for k, v in form.items()})
    return client.callback("report.query", values)


def test_the_hub_links_every_report_and_the_records_and_logs(rt):
    page = signed_in_client(rt, "manager").page("/reports")
    text = page.text.replace("\\u002f", "/")
    assert page.status == 200
    for name in REPORTS:
        assert f"/reports/view?name={name}" in text
    for path in ("/reports/settlement", "/records", "/audit", "/alarms/history"):
        assert f'"{path}"' in text


def test_a_report_runs_from_its_filters_and_says_what_it_cannot_read(rt):
    client = signed_in_client(rt, "analyst")
    week_ago = (dt.date.fromisoformat(_today(rt)) - dt.timedelta(days=6)).isoformat()
    r = _query(client, rt, group="channel", first=week_ago)          # the demo's last week: sales at any hour
    assert r.status == 200
    out = r.json()["response"]
    grid = json.dumps(out[RC.GRID_BOX])
    assert '"channel"' in grid and "demo" in grid                     # the demo's sales, as their own channel
    assert out[RC.APPLIED]["data"]["raw"]["group"] == "channel"
    r = _query(client, rt, first="2026-13-01")
    body = json.dumps(r.json()["response"][RC.RESULT], ensure_ascii=False)
    assert "2026-13-01" in body and "text-danger" in body and RC.APPLIED not in r.json()["response"]
    zh = signed_in_client(rt, "analyst")
    zh.get("/lang/zh?next=/reports", follow=False, headers={"Sec-Fetch-Site": "none"})   # typed in
    body = json.dumps(_query(zh, rt, first="2026-12-09", last="2026-12-01").json()["response"][RC.RESULT],
                      ensure_ascii=False)
    assert "起始日期" in body and "晚于" in body


def test_the_export_is_a_workbook_and_is_written_to_the_operation_log(rt):
    client = signed_in_client(rt, "manager")
    applied = {"name": "sales", "raw": {"from": _today(rt), "to": _today(rt), "by": "day"}}
    r = client.callback("report.export_file", {f"{RC.EXPORT}.n_clicks": 1, f"{RC.APPLIED}.data": applied})
    assert r.status == 200
    download = r.json()["response"][RC.DOWNLOAD]["data"]
    ws = openpyxl.load_workbook(io.BytesIO(base64.b64decode(download["content"]))).active
    assert ws["A1"].value == "Sales report" and ws["A4"].value == _today(rt) and ws.freeze_panes == "A4"
    with rt.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.operator).where(audit_log.c.action == "report.export")).all()
    assert ("manager",) in logged


def test_a_worker_may_neither_open_nor_run_a_report(rt):
    client = signed_in_client(rt, "worker")
    assert _query(client, rt).status == 403


def test_the_demo_starts_with_its_cashiers_past_days_closed(rt):
    with rt.engine.connect() as conn:
        days = conn.execute(sa.select(closed_day.c.day).where(closed_day.c.operator == "demo")).scalars().all()
    today = rt.billing.local(rt.billing.now()).date()
    assert days and all(d < today for d in days)


def test_a_cashier_closes_their_own_day_and_an_analyst_cannot_close_one(rt):
    values = {f"{ST.CLOSE}.n_clicks": 1, f"{ST.DAY}.value": _today(rt), f"{ST.CLOSE_WHO}.value": "cashier"}
    assert signed_in_client(rt, "analyst").callback("settlement.close_day", values).status == 403
    r = signed_in_client(rt, "cashier").callback("settlement.close_day", values)
    assert r.status == 200 and "text-success" in json.dumps(r.json()["response"][ST.RESULT])
    r = signed_in_client(rt, "cashier").callback("settlement.close_day", values)
    assert "text-danger" in json.dumps(r.json()["response"][ST.RESULT])         # never twice
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(closed_day.c.closed_by).where(closed_day.c.operator == "cashier")
                            ).scalars().all() == ["cashier"]
    page = signed_in_client(rt, "manager").page("/reports/settlement")
    assert page.status == 200 and "report.signature" not in page.text and "Received by" in page.text
