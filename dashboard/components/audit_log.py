"""Builders for the operation-log page (/audit): query form, grid rows, the XLSX workbook."""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.workbook import DATETIME, ExportWorkbook
from dashboard.components.grid import grid_locale
from dashboard.i18n import t

AUDIT_OPERATOR, AUDIT_ACTION = "audit-operator", "audit-action"
AUDIT_SINCE, AUDIT_UNTIL = "audit-since", "audit-until"
AUDIT_SEARCH, AUDIT_RESULT, AUDIT_COUNT = "audit-search", "audit-result", "audit-count"
AUDIT_GRID, AUDIT_APPLIED = "audit-grid", "audit-applied"
AUDIT_EXPORT, AUDIT_DOWNLOAD = "audit-export", "audit-download"

COLUMNS = ("ts", "operator", "action", "target", "before", "after", "source")


class BadFilter(ValueError):
    """A time in the query form that is not a date or a date and time."""


def parse_filters(operator: str | None, action: str | None, since: str | None, until: str | None) -> dict:
    """The query's filters as plain JSON (kept in a dcc.Store so the export repeats the query shown)."""
    def when(text: str | None) -> str | None:
        if not text:
            return None
        try:
            return dt.datetime.fromisoformat(str(text).strip()).replace(tzinfo=None).isoformat(timespec="minutes")
        except ValueError:
            raise BadFilter(str(text)) from None

    return {"operator": operator or None, "action": action or None, "since": when(since), "until": when(until)}


def query_args(filters: dict | None) -> dict:
    """Keyword arguments for Accounts.operation_log from stored filters (checked again: they came
    back from the browser)."""
    f = parse_filters(*(None if not filters else filters.get(k) for k in ("operator", "action", "since", "until")))
    return {"operator": f["operator"] if isinstance(f["operator"], str) else None,
            "action": f["action"] if isinstance(f["action"], str) else None,
            "since": dt.datetime.fromisoformat(f["since"]) if f["since"] else None,
            "until": dt.datetime.fromisoformat(f["until"]) if f["until"] else None}


def grid_rows(entries: list[dict]) -> list[dict]:
    return [{"id": e["id"], "ts": e["ts"].strftime("%Y-%m-%d %H:%M:%S"), "operator": e["operator"],
             "action": e["action"], "target": e["target"] or "", "before": e["before"] or "",
             "after": e["after"] or "", "source": e["source"] or ""} for e in entries]


def action_options(actions: list[str]) -> list[dict]:
    """Each action, and each family of them ("operator." for operator.add, operator.roles ...)."""
    families = sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})
    return [{"label": f"{f}*", "value": f} for f in families] + [{"label": a, "value": a} for a in actions]


def audit_page(rows: list[dict], operators: list[str], actions: list[str], lang: str) -> dbc.Container:
    form = dbc.Row([
        dbc.Col([dbc.Label(t("audit.operator", lang), html_for=AUDIT_OPERATOR),
                 dcc.Dropdown(id=AUDIT_OPERATOR, options=operators, placeholder=t("audit.any", lang))], md=3),
        dbc.Col([dbc.Label(t("audit.action", lang), html_for=AUDIT_ACTION),
                 dcc.Dropdown(id=AUDIT_ACTION, options=action_options(actions), placeholder=t("audit.any", lang))], md=3),
        dbc.Col([dbc.Label(t("audit.since", lang), html_for=AUDIT_SINCE),
                 dbc.Input(id=AUDIT_SINCE, type="datetime-local")], md=2),
        dbc.Col([dbc.Label(t("audit.until", lang), html_for=AUDIT_UNTIL),
                 dbc.Input(id=AUDIT_UNTIL, type="datetime-local")], md=2),
        dbc.Col([dbc.Button(t("audit.search", lang), id=AUDIT_SEARCH, color="primary", className="me-2"),
                 dbc.Button(t("audit.export", lang), id=AUDIT_EXPORT, color="outline-secondary")],
                md=2, className="d-flex align-items-end text-nowrap"),
    ], className="g-2 mb-2")
    grid = dag.AgGrid(
        id=AUDIT_GRID, rowData=grid_rows(rows), getRowId="params.data.id",
        columnDefs=[{"field": c, "headerName": t(f"audit.col_{c}", lang)} for c in COLUMNS],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 110, "wrapText": False},
        columnSize="responsiveSizeToFit",
        dashGridOptions={"pagination": True, "paginationPageSize": 50, "localeText": grid_locale(lang)},
        style={"height": "70vh", "width": "100%"})
    return dbc.Container([
        html.H1(t("audit.heading", lang), className="h4"),
        form,
        html.Div(id=AUDIT_RESULT),
        html.P(t("audit.count", lang, n=len(rows)), id=AUDIT_COUNT, className="text-muted small mb-1"),
        grid,
        dcc.Store(id=AUDIT_APPLIED, data=parse_filters(None, None, None, None)),
        dcc.Download(id=AUDIT_DOWNLOAD),
    ], fluid=True, id="audit-page")


def workbook(entries: list[dict], filters: dict, lang: str) -> ExportWorkbook:
    """The rows as a workbook: a header in the operator's language, times as Excel dates (UTC); a second
    sheet names the filters."""
    book = ExportWorkbook()
    ws = book.add_sheet(t("audit.sheet", lang), [t(f"audit.col_{c}", lang) for c in COLUMNS],
                        widths=(20, 16, 24, 24, 40, 40, 16), formats={0: DATETIME})
    for e in entries:
        ws.append([e["ts"], e["operator"], e["action"], e["target"], e["before"], e["after"], e["source"]])
    meta = book.add_sheet(t("audit.filters_sheet", lang))
    for key in ("operator", "action", "since", "until"):
        meta.append([t(f"audit.{key}", lang), filters.get(key) or t("audit.any", lang)])
    return book
