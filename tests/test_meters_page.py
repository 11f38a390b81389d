"""Meters page without a browser: the grid's rows, the export's rows and operation-log entry (both
engines), the workbook. The browser half is in tests/test_overview_browser.py."""
from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from core.config import site_zone
from dashboard.components.meter_grid import column_defs, grid_locale, grid_rows, meters_workbook
from storage.audit import entries
from storage.meters import EXPORT_ACTION, export_meters, meter_table
from storage.schema import meter
from tests.test_overview import NOW, _meter_state, _site

ZONE = site_zone("+08:00")


def _table():
    return pd.DataFrame({
        "meter_id": [1, 2], "address": ["202611210001", "202611218001"], "building": ["Building 1", None],
        "floor": pd.array([3, None], dtype="Int64"), "room": ["B1-301", None], "gateway": ["GW-A", "GW-A"],
        "bus_no": [1, 1], "unit": [1, 2], "profile": ["acrel-ddsy1352", "eastron-sdm630"],
        "state": ["arrears", "lost"], "balance_fen": pd.array([-150, None], dtype="Int64"),
        "energy_total": [1234.5678, None], "relay_closed": pd.array([False, None], dtype="boolean"),
        "last_seen": pd.to_datetime(["2026-11-21 08:00:00", None]),
    })


def test_grid_rows_carry_fen_local_times_and_texts_in_the_operators_language():
    rows = grid_rows(_table(), "zh", ZONE)
    assert rows[0]["balance_fen"] == -150 and rows[0]["relay"] == "拉闸" and rows[0]["state_label"] == "欠费（拉闸）"
    assert rows[0]["last_seen"] == "2026-11-21 16:00:00" and rows[0]["floor"] == 3 and rows[0]["row_id"] == "1"
    assert rows[1]["balance_fen"] is None and rows[1]["relay"] is None and rows[1]["last_seen"] is None
    assert rows[0]["energy_kwh"] == 1234.57 and rows[1]["energy_kwh"] is None
    json.dumps(rows)  # what Dash sends must be plain JSON


def test_the_grid_shows_yuan_but_sorts_and_filters_on_exact_fen():
    balance = next(c for c in column_defs("en") if c["field"] == "balance_fen")
    assert balance["valueFormatter"]["function"] == "wlMoney(params.value)"   # fen in, "¥1,234.50" out
    assert "/ 100" in balance["filterValueGetter"]["function"]
    assert {c["headerName"] for c in column_defs("zh")} >= {"表号", "楼栋", "房间", "剩余金额（元）"}


def test_ag_grid_texts_come_from_the_catalog():
    assert grid_locale("zh")["contains"] == "包含" and grid_locale("en")["contains"] == "Contains"
    assert set(grid_locale("zh")) == set(grid_locale("en"))


def test_the_workbook_holds_exact_money_and_site_times():
    from openpyxl import load_workbook
    ws = load_workbook(io.BytesIO(meters_workbook(_table(), "en", ZONE).to_bytes())).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "Meter number" and rows[0][8] == "Balance (¥)" and rows[0][9] == "Energy register (kWh)"
    assert rows[1][0] == "202611210001" and rows[1][7] == "Arrears (tripped)" and rows[1][10] == "Open"
    assert Decimal(str(rows[1][8])) == Decimal("-1.50") and ws["I2"].number_format == "0.00"
    assert rows[1][11] == dt.datetime(2026, 11, 21, 16, 0) and rows[2][8] is None and rows[2][11] is None


def test_the_grid_and_the_workbook_show_each_meters_energy_register_in_kwh():
    energy = next(c for c in column_defs("zh") if c["field"] == "energy_kwh")
    assert energy["headerName"] == "总电量（kWh）" and energy["filter"] == "agNumberColumnFilter"
    from openpyxl import load_workbook
    ws = load_workbook(io.BytesIO(meters_workbook(_table(), "en", ZONE).to_bytes())).active
    assert ws["J2"].value == 1234.57 and isinstance(ws["J2"].value, float) and ws["J2"].number_format == "#,##0.00"
    assert ws["J3"].value is None


def test_the_meter_table_lists_every_meter_in_service_with_its_wiring(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids, **{"202611210002": {"arrears": True, "balance_fen": 1999, "energy_total": 321.25}})
    with any_engine.begin() as conn:
        conn.execute(meter.update().where(meter.c.address == "202611210004").values(status="removed"))
        df = meter_table(conn).set_index("address")
    assert len(df) == 4 and "202611210004" not in df.index
    assert df.loc["202611210002", "state"] == "arrears" and int(df.loc["202611210002", "balance_fen"]) == 1999
    assert df.loc["202611218001", "gateway"] == "GW-B" and int(df.loc["202611218001", "unit"]) == 3
    assert df.loc["202611210002", "energy_total"] == 321.25 and pd.isna(df.loc["202611210001", "energy_total"])


def test_an_export_returns_the_shown_rows_in_order_and_logs_who_took_them(any_engine):
    ids = _site(any_engine)
    _meter_state(any_engine, ids)
    shown = [ids["202611210003"], ids["202611210001"], 999999, ids["202611210003"]]  # unknown id, repeated id
    with any_engine.begin() as conn:
        rows = export_meters(conn, shown, operator="manager", ts=NOW, source="127.0.0.1",
                             shown={"filter": {"room": {"filterType": "text", "type": "contains", "filter": "B1"}}})
    assert rows["address"].tolist() == ["202611210003", "202611210001"]
    with any_engine.connect() as conn:
        log = entries(conn, action=EXPORT_ACTION)
    assert len(log) == 1 and log[0]["operator"] == "manager" and log[0]["source"] == "127.0.0.1"
    after = json.loads(log[0]["after"])
    assert after["rows"] == 2 and after["filter"]["room"]["filter"] == "B1"


def test_an_export_that_fails_leaves_no_log_entry(any_engine):
    _site(any_engine)
    try:
        with any_engine.begin() as conn:
            export_meters(conn, [1], operator="manager", ts=NOW, source=None)
            raise RuntimeError("the workbook could not be written")
    except RuntimeError:
        pass
    with any_engine.connect() as conn:
        assert entries(conn, action=EXPORT_ACTION) == []
        assert conn.execute(sa.select(sa.func.count()).select_from(meter)).scalar_one() == 5
