"""Report files: every export opened with openpyxl (title, filters, header, widths, number formats, totals, frozen
header, Chinese intact), a formula-looking name written as text in XLSX and CSV, the export in the operation log,
and `app.py report` writing xlsx, csv and json from the command line (and refusing what it cannot read)."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from billing import ledger
from reports.registry import REPORTS, ReportEnv
from reports.render import export_report
from storage.engine import dispose
from storage.schema import audit_log

from tests.billing_support import actor, address
from tests.reports_support import report_site, settle_queued

ROOT = Path(__file__).resolve().parent.parent
FORMULA = "=HYPERLINK(\"http://x\",\"y\")"


@pytest.fixture
def env(duck_engine, fixed_now):
    """Sales by three operators on 2026-11-21 (site time): one named like a formula, one in Chinese."""
    ctx = report_site(duck_engine, fixed_now, port=15080)
    for who, amount in ((FORMULA, "12.30"), ("王芳", "45.00"), ("-minus", "7.05"), ("王芳", "0.65")):
        ledger.sell(ctx, address(1), amount, actor("cashier", who))
    settle_queued(ctx, "acked")
    return ReportEnv(ctx)


RANGE = {"from": "2026-11-21", "to": "2026-11-22", "group": "operator"}


def _book(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data))


def test_the_sales_workbook_has_title_filters_header_formats_totals_and_a_frozen_header(env):
    data, name = export_report(env, "sales", RANGE, "xlsx", operator="analyst", lang="zh")
    assert name.startswith("sales-") and name.endswith(".xlsx")
    ws = _book(data).active
    assert ws.title == "售电报表" and ws["A1"].value == "售电报表" and ws["A1"].font.b
    assert "起始日期: 2026-11-21" in ws["A2"].value and "截止日期: 2026-11-22" in ws["A2"].value
    assert "分组: operator" in ws["A2"].value and "UTC+08:00" in ws["A2"].value
    header = [c.value for c in ws[3]]
    assert header[:7] == ["周期", "操作员", "售电（元）", "退费（元）", "冲正（元）", "净额（元）", "笔数"]
    assert ws.freeze_panes == "A4"
    assert ws.column_dimensions["A"].width == 17 and ws.column_dimensions["C"].width == 12
    rows = {r[1].value: r for r in ws.iter_rows(min_row=4) if r[0].value != "合计"}
    assert set(rows) == {FORMULA, "王芳", "-minus"}
    assert rows["王芳"][2].value == Decimal("45.65") or rows["王芳"][2].value == 45.65
    assert rows["王芳"][2].number_format == "0.00" and rows["王芳"][6].value == 2
    totals = list(ws.iter_rows(min_row=ws.max_row))[0]
    assert totals[0].value == "合计" and totals[0].font.b
    assert float(totals[2].value) == 65.00 and totals[2].number_format == "0.00" and totals[6].value == 4


def test_a_formula_looking_name_is_text_in_the_workbook_and_neutralised_in_csv(env):
    ws = _book(export_report(env, "sales", RANGE, "xlsx", operator="analyst")[0]).active
    cell = next(r[1] for r in ws.iter_rows(min_row=4) if r[1].value == FORMULA)
    assert cell.data_type == "s" and cell.quotePrefix
    minus = next(r[1] for r in ws.iter_rows(min_row=4) if r[1].value == "-minus")
    assert minus.data_type == "s"
    text = export_report(env, "sales", RANGE, "csv", operator="analyst")[0].decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["period", "operator", "sales"]
    names = {r[1] for r in rows[1:-1]}
    assert names == {"'" + FORMULA, "王芳", "'-minus"}
    assert rows[-1][0] == "Total" and rows[-1][2] == "65.00"
    assert not any(c.startswith(("=", "+", "@")) for r in rows for c in r)


def test_json_export_and_every_report_opens_in_openpyxl(env):
    body = json.loads(export_report(env, "sales", RANGE, "json", operator="analyst")[0])
    assert body["report"] == "sales" and body["filters"]["from"] == "2026-11-21"
    assert {r["operator"]: r["net"] for r in body["rows"]} == {FORMULA: "12.30", "王芳": "45.65", "-minus": "7.05"}
    assert body["totals"]["net"] == "65.00"
    params = {"settlement": {"from": "2026-11-21", "to": "2026-11-21"},
              "alarm-history": {"from": "2026-11-21", "to": "2026-11-21"},
              "energy": {"from": "2026-11-21", "to": "2026-11-21"},
              "readings": {"from": "2026-11-21", "to": "2026-11-21", "meter": address(1)},
              "instrument-energy": {"from": "2026-11-21", "to": "2026-11-21", "meter": address(1)},
              "sales": {"from": "2026-11-21", "to": "2026-11-21"},
              "line-loss": {"from": "2026-11-21", "to": "2026-11-21"},
              "power-quality": {"from": "2026-11-21", "to": "2026-11-21"},
              "line-loss-meters": {"from": "2026-11-21", "to": "2026-11-21"},
              "power-quality-stats": {"from": "2026-11-21", "to": "2026-11-21"}}
    for name, spec in REPORTS.items():
        ws = _book(export_report(env, name, params.get(name, {}), "xlsx", operator="analyst")[0]).active
        assert ws["A1"].value and ws.freeze_panes == "A4", name
        assert [c.value for c in ws[3]][:len(spec.columns)] and ws.max_row >= 3, name
    with env.ctx.engine.connect() as conn:
        logged = conn.execute(sa.select(audit_log.c.target, audit_log.c.after)
                              .where(audit_log.c.action == "report.export")).all()
    assert {t for t, _ in logged} >= {f"report:{n}" for n in REPORTS}
    assert json.loads(logged[0][1])["format"] == "json"


def _cli(tmp_path, db: str, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "site.toml"
    config.write_text(f'[database]\nurl = "duckdb:///{db}"\n[site]\ntimezone = "+08:00"\n', encoding="utf-8")
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "--config", str(config), "report", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_command_line_writes_xlsx_csv_and_json_and_refuses_what_it_cannot_read(env, tmp_path):
    db = str(tmp_path / "test.duckdb")     # the duck_engine fixture's file
    dispose(env.ctx.engine)     # DuckDB: one process holds the file at a time
    out = tmp_path / "sales.xlsx"
    done = _cli(tmp_path, db, "sales", "--from", "2026-11-21", "--to", "2026-11-21", "--group", "operator",
                "--format", "xlsx", "--out", str(out), "--lang", "zh")
    assert done.returncode == 0, done.stderr
    ws = _book(out.read_bytes()).active
    assert ws["A1"].value == "售电报表" and "王芳" in [r[1].value for r in ws.iter_rows(min_row=4)]
    done = _cli(tmp_path, db, "sales", "--from", "2026-11-21", "--to", "2026-11-21", "--format", "csv")
    assert done.returncode == 0 and done.stdout.lstrip("\ufeff").splitlines()[1].startswith("2026-11-21,65.00")
    done = _cli(tmp_path, db, "lost-meters", "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["rows"] == []
    done = _cli(tmp_path, db, "sales", "--from", "2026-11-22", "--to", "2026-11-21", "--format", "json")
    assert done.returncode == 2 and "2026-11-22" in done.stderr and done.stdout == ""
    done = _cli(tmp_path, db, "sales", "--from", "2026-11-21", "--to", "2026-11-21", "--format", "xlsx")
    assert done.returncode == 2 and "--out" in done.stderr
    done = _cli(tmp_path, db, "payroll", "--format", "csv", "--lang", "zh")
    assert done.returncode == 2 and "没有报表" in done.stderr


def test_report_rows_from_a_frame_hold_plain_python_values_with_none_for_what_is_missing():
    """reports.registry.frame_rows (every frame-backed report, converted a column at a time): NaN, NaT and NA
    are None; numpy numbers, booleans and times are Python's."""
    import datetime as dt

    import pandas as pd

    from reports.registry import frame_rows
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-11-21 08:00", None]), "kwh": [1.5, float("nan")],
                          "count": [3, 4], "floor": pd.array([2, None], dtype="Int64"), "ok": [True, False],
                          "name": ["王芳", None]})
    rows = frame_rows(frame)
    assert rows == [{"ts": dt.datetime(2026, 11, 21, 8, 0), "kwh": 1.5, "count": 3, "floor": 2, "ok": True,
                     "name": "王芳"},
                    {"ts": None, "kwh": None, "count": 4, "floor": None, "ok": False, "name": None}]
    assert [type(v) for v in rows[0].values()] == [dt.datetime, float, int, int, bool, str]
    assert frame_rows(frame.iloc[:0]) == []
