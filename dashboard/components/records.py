"""Sales records (/records, 售电记录): the query form, the AG Grid of ledger entries and the XLSX workbook of
the rows the grid shows. Pure builders; component ids come from dashboard.ids.Records."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from billing.desk import SALES_KINDS
from billing.money import to_fen
from core.clock import show_local, zone_label
from core.formatting import format_money
from core.workbook import DATETIME, MONEY, ExportWorkbook
from dashboard.components.audit_text import source_label
from dashboard.components.cashier import field
from dashboard.components.grid import NUMBER_COLUMN, grid_locale
from dashboard.i18n import t
from dashboard.ids import Records as ID


KINDS = ("sale", "refund", "reversal", "transfer_in", "closing_refund")
DEFAULT_KINDS = list(SALES_KINDS)        # their total is the overview's sales of the day
COLUMNS = ("created_at", "receipt_no", "kind", "amount", "meter_address", "room", "building", "holder", "operator",
           "state", "command_state", "reverses", "reason", "source")


def grid_rows(records: list[dict], lang: str) -> list[dict]:
    """billing.desk.records as rowData: money as integer fen, times as text in site time, codes in words."""
    return [{"id": r["id"], "created_at": show_local(r["created_at"]),
             "receipt_no": r["receipt_no"], "kind": t(f"billing.kind.{r['kind']}", lang),
             "amount_fen": to_fen(r["amount"]), "meter_address": r["meter_address"], "room": r["room"] or "",
             "building": r["building"] or "", "holder": r["holder"], "operator": r["operator"],
             "state": t(f"cashier.state.{r['state']}", lang),
             "command_state": t(f"cashier.state.{r['command_state']}", lang) if r["command_state"] else "",
             "reverses": r["reverses"] or "", "reason": r["reason"] or "", "source": source_label(r["source"], lang)}
            for r in records]


def summary(records: list[dict], totals: dict, lang: str, limit: int) -> str:
    """How many entries are shown, and the net money of all that match (billing.desk.record_totals)."""
    text = t("records.summary", lang, n=len(records), total=format_money(totals.get("net", Decimal("0.00"))))
    return text + (" " + t("records.truncated", lang, n=limit) if len(records) >= limit else "")


def column_defs(lang: str) -> list[dict]:
    head = {c: t(f"records.col_{c}", lang) for c in COLUMNS}
    defs = []
    for c in COLUMNS:
        d = {"field": c, "headerName": head[c], "minWidth": 110}
        if c == "amount":
            d = {"field": "amount_fen", "headerName": head[c], "minWidth": 100, **NUMBER_COLUMN,
                 "valueFormatter": {"function": "wlMoney(params.value)"},   # assets/formatting.js: format_money's text
                 "filterValueGetter": {"function": "params.data.amount_fen / 100"}}
        elif c == "created_at":
            d.update(minWidth=160, sort="desc")
        elif c in ("receipt_no", "meter_address"):
            d.update(minWidth=150)
        defs.append(d)
    return defs


def records_page(rows: list[dict], counted: str, applied: dict, buildings: list[str], operators: list[str],
                 lang: str, *, may_export: bool = True) -> dbc.Container:
    """The query form and grid; Export to Excel only for an operator who may export (report.export)."""
    kinds = [{"label": t(f"billing.kind.{k}", lang), "value": k} for k in KINDS]
    form = dbc.Row([
        field(t("records.from", lang), dbc.Input(id=ID.FROM, type="date", value=applied.get("from")), ID.FROM,
              xs=6, md=2),
        field(t("records.to", lang), dbc.Input(id=ID.TO, type="date", value=applied.get("to")), ID.TO, xs=6, md=2),
        field(t("records.operator", lang), dcc.Dropdown(id=ID.OPERATOR, options=operators,
                                                       placeholder=t("records.any", lang)), ID.OPERATOR, xs=6, md=2),
        field(t("records.building", lang), dcc.Dropdown(id=ID.BUILDING, options=buildings,
                                                       placeholder=t("records.any", lang)), ID.BUILDING, xs=6, md=2),
        field(t("records.text", lang), dbc.Input(id=ID.TEXT, type="search", autoComplete="off",
                                                placeholder=t("records.text_placeholder", lang)),
              ID.TEXT, xs=12, md=4),
        dbc.Col(dbc.Checklist(id=ID.KINDS, options=kinds, value=applied.get("kinds") or DEFAULT_KINDS, inline=True),
                xs=12, md=8, className="pt-1"),
        dbc.Col([dbc.Button(t("records.search", lang), id=ID.SEARCH, color="primary", className="me-2"),
                 dbc.Button(t("records.export", lang), id=ID.EXPORT, color="outline-secondary")
                 if may_export else None],
                xs=12, md=4, className="d-flex justify-content-md-end align-items-start"),
    ], className="g-2 mb-2")
    grid = dag.AgGrid(
        id=ID.GRID, rowData=rows, columnDefs=column_defs(lang), getRowId="params.data.id",
        defaultColDef={"sortable": True, "filter": True, "resizable": True},
        columnSize="autoSize",
        dashGridOptions={"localeText": grid_locale(lang), "animateRows": False, "enableCellTextSelection": True,
                         "pagination": True, "paginationPageSize": 100},
        style={"height": "66vh", "width": "100%"}, className="ag-theme-quartz")
    return dbc.Container([
        html.H1(t("records.heading", lang), className="h4"),
        form,
        html.Div(id=ID.RESULT, role="status", className="small"),
        html.P(counted, id=ID.COUNT, className="text-muted small mb-1"),
        grid,
        dcc.Store(id=ID.APPLIED, data=applied),
        dcc.Store(id=ID.EXPORT_REQUEST),
        dcc.Download(id=ID.DOWNLOAD),
    ], fluid=True, id=ID.PAGE)


def records_workbook(records: list[dict], shown: dict, lang: str, zone: dt.tzinfo) -> ExportWorkbook:
    """The exported rows as a workbook: headers in the operator's language, amounts as exact numbers (yuan),
    times as Excel date-times in site time (billing.desk gives them so; the header names the zone); a second
    sheet names the query."""
    book = ExportWorkbook()
    headers = [t(f"records.col_{c}", lang) for c in COLUMNS]
    headers[0] = t("clock.column", lang, name=headers[0], zone=zone_label(zone))
    ws = book.add_sheet(t("records.sheet", lang), headers,
                        widths=(20, 18, 12, 11, 15, 10, 12, 8, 12, 10, 10, 18, 24, 8),
                        formats={0: DATETIME, 3: MONEY})
    for r in records:
        ws.append([r["created_at"], r["receipt_no"], t(f"billing.kind.{r['kind']}", lang), r["amount"],
                   r["meter_address"], r["room"] or "", r["building"] or "", r["holder"], r["operator"],
                   t(f"cashier.state.{r['state']}", lang),
                   t(f"cashier.state.{r['command_state']}", lang) if r["command_state"] else "",
                   r["reverses"] or "", r["reason"] or "", source_label(r["source"], lang)])
    meta = book.add_sheet(t("records.query_sheet", lang))
    for key in ("from", "to", "kinds", "operator", "building", "text"):
        value = shown.get(key)
        if isinstance(value, list):
            value = ", ".join(t(f"billing.kind.{k}", lang) for k in value if k in KINDS)
        meta.append([t(f"records.{key}", lang), value or t("records.any", lang)])
    meta.append([t("records.rows", lang), len(records)])
    return book


def default_range(today: dt.date, days: int = 7) -> dict:
    return {"from": (today - dt.timedelta(days=days - 1)).isoformat(), "to": today.isoformat(),
            "kinds": list(DEFAULT_KINDS)}
