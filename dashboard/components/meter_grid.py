"""The meters page: the AG Grid (columns, rows, texts in the operator's language) and its XLSX export.

Rows carry money as integer fen (`balance_fen`): the grid sorts on it and shows and filters it
in yuan; the workbook writes exact Decimals. Times are the site's local time.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from core.clock import FORMATS, site_time, zone_label
from core.formatting import energy_value  # the register's 0.01 kWh; None when never read
from core.money import from_fen
from core.workbook import DATETIME, MONEY, ExportWorkbook
from dashboard.components.grid import NUMBER_COLUMN, grid_locale
from dashboard.i18n import t
from dashboard.ids import Meters as ID

COLUMNS = ("address", "building", "floor", "room", "gateway", "bus", "unit", "state", "balance", "energy",
           "relay", "last_seen", "profile")
ENERGY = "#,##0.00"  # kWh in the workbook: a number, shown to the register's two decimals


def column_defs(lang: str, may_control: bool = False) -> list[dict]:
    """The grid's columns; `may_control` (relay.command or relay.batch) adds a link to /control?meter= on each row
    of a meter that takes remote control (not a column of the export, which writes COLUMNS from the database)."""
    head = {c: t(f"meters.col_{c}", lang) for c in COLUMNS}
    control = [{
        "colId": "control", "headerName": t("meters.col_control", lang), "minWidth": 90, "maxWidth": 110,
        "valueGetter": {"function": f"params.data.controllable ? '[' + {json.dumps(t('meters.control_link', lang))}"
                                    " + '](/control?meter=' + params.data.address + ')' : null"},
        "cellRenderer": "markdown", "sortable": False, "filter": False, "floatingFilter": False,
        "suppressHeaderMenuButton": True, "cellClass": "mg-control",
    }] if may_control else []
    return [
        {"field": "address", "headerName": head["address"], "pinned": "left", "minWidth": 140},
        *control,
        {"field": "building", "headerName": head["building"], "minWidth": 110},
        {"field": "floor", "headerName": head["floor"], "minWidth": 80, **NUMBER_COLUMN},
        {"field": "room", "headerName": head["room"], "minWidth": 100},
        {"field": "gateway", "headerName": head["gateway"], "minWidth": 100},
        {"field": "bus_no", "headerName": head["bus"], "minWidth": 70, **NUMBER_COLUMN},
        {"field": "unit", "headerName": head["unit"], "minWidth": 70, **NUMBER_COLUMN},
        {"field": "state_label", "headerName": head["state"], "minWidth": 150,
         "cellClass": {"function": "'mg-state st-' + params.data.state"}},
        {"field": "balance_fen", "headerName": head["balance"], "minWidth": 110, **NUMBER_COLUMN,
         "valueFormatter": {"function": "wlMoney(params.value)"},   # assets/formatting.js: format_money's text
         "filterValueGetter": {"function": "params.data.balance_fen == null ? null : params.data.balance_fen / 100"}},
        {"field": "energy_kwh", "headerName": head["energy"], "minWidth": 120, **NUMBER_COLUMN,
         "valueFormatter": {"function": "wlEnergy(params.value)"}},
        {"field": "relay", "headerName": head["relay"], "minWidth": 80},
        {"field": "last_seen", "headerName": head["last_seen"], "minWidth": 165, "cellDataType": "text"},
        {"field": "profile", "headerName": head["profile"], "minWidth": 130},
    ]


def grid_rows(table: pd.DataFrame, lang: str, zone: dt.tzinfo,
              controllable: Callable[[str], bool] | None = None) -> list[dict]:
    """storage.meters.meter_table as the grid's rowData (JSON-ready: ints, strings, None). `controllable`: which
    profiles take remote control (billing's prepaid profiles), for the row's Control link."""
    if table.empty:
        return []
    states = {s: t(f"overview.state_{s}", lang) for s in table["state"].unique()}
    relay = {True: t("meters.relay_closed", lang), False: t("meters.relay_open", lang)}
    seen = site_time(table["last_seen"], zone).dt.strftime(FORMATS["seconds"])
    out = pd.DataFrame({
        "row_id": table["meter_id"].astype(str),  # AG Grid row ids are strings
        "meter_id": table["meter_id"].astype("int64"),
        "address": table["address"].astype(str),
        "building": table["building"],
        "floor": table["floor"].astype("Int64"),
        "room": table["room"],
        "gateway": table["gateway"],
        "bus_no": table["bus_no"].astype("Int64"),
        "unit": table["unit"].astype("Int64"),
        "state": table["state"],
        "state_label": table["state"].map(states),
        "balance_fen": table["balance_fen"].astype("Int64"),
        "energy_kwh": pd.to_numeric(table["energy_total"], errors="coerce").round(2),
        "relay": pd.Series(pd.array(table["relay_closed"], dtype="boolean")).map(relay),
        "last_seen": seen,
        "profile": table["profile"],
        "controllable": table["profile"].map(controllable) if controllable is not None else False,
    })
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict("records")


def meters_page(rows: list[dict], lang: str, *, may_export: bool = True, may_control: bool = False) -> dbc.Container:
    """The grid; Export to Excel only for an operator who may export (meter.export); a Control link on each row
    only for one who may send relay commands (relay.command or relay.batch)."""
    return dbc.Container([
        html.Div([
            html.H1(t("meters.heading", lang), className="h4 mb-0 me-auto"),
            dbc.Button(t("meters.refresh", lang), id=ID.REFRESH, color="secondary", outline=True, size="sm",
                       className="me-2"),
            dbc.Button(t("meters.export", lang), id=ID.EXPORT, color="primary", size="sm") if may_export else None,
        ], className="d-flex flex-wrap align-items-center gap-2 mb-2"),
        html.P(t("meters.intro", lang), className="text-muted small mb-2"),
        html.Div(id=ID.MESSAGE, role="status", className="small mb-2"),
        dag.AgGrid(
            id=ID.GRID, rowData=rows, columnDefs=column_defs(lang, may_control),
            defaultColDef={"sortable": True, "filter": True, "floatingFilter": True, "resizable": True},
            getRowId="params.data.row_id", columnSize="responsiveSizeToFit",
            dashGridOptions={"localeText": grid_locale(lang), "animateRows": False, "enableCellTextSelection": True},
            style={"height": "72vh", "width": "100%"}, className="ag-theme-quartz",
        ),
        dcc.Store(id=ID.EXPORT_REQUEST),
        dcc.Download(id=ID.DOWNLOAD),
    ], fluid=True, id=ID.PAGE)


def meters_workbook(rows: pd.DataFrame, lang: str, zone: dt.tzinfo) -> ExportWorkbook:
    """The exported rows (storage.meters.export_meters) as a workbook: headers in the operator's language,
    balance as an exact number in yuan, energy as a number in kWh, last reading as an Excel date-time in
    site time. Streamed (write-only mode: memory stays flat however many rows)."""
    book = ExportWorkbook()
    headers = [t(f"meters.col_{c}", lang) for c in COLUMNS]
    seen_at = COLUMNS.index("last_seen")
    headers[seen_at] = t("clock.column", lang, name=headers[seen_at], zone=zone_label(zone))
    ws = book.add_sheet(t("meters.sheet", lang), headers,
                        widths=(15, 14, 7, 12, 12, 6, 6, 18, 12, 13, 10, 20, 16),
                        formats={8: MONEY, 9: ENERGY, 11: DATETIME},
                        freeze="B2")
    states = {s: t(f"overview.state_{s}", lang) for s in rows["state"].unique()} if not rows.empty else {}
    seen = site_time(rows["last_seen"], zone).tolist() if not rows.empty else []
    for r, last in zip(rows.to_dict("records"), seen):
        fen = r["balance_fen"]
        balance = None if fen is None or pd.isna(fen) else from_fen(int(fen))
        ws.append([
            r["address"], r["building"], _int(r["floor"]), r["room"], r["gateway"], _int(r["bus_no"]),
            _int(r["unit"]), states[r["state"]], balance, energy_value(r["energy_total"]), _relay(r["relay_closed"], lang),
            None if pd.isna(last) else last.to_pydatetime(), r["profile"],
        ])
    return book


def _int(v):
    return None if v is None or pd.isna(v) else int(v)


def _relay(v, lang: str):
    if v is None or pd.isna(v):
        return None
    return t("meters.relay_closed" if bool(v) else "meters.relay_open", lang)
