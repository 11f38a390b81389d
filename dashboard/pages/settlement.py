"""Cashier day-end settlement and shift handover (/reports/settlement, 日结): one local day's figures per cashier
(billing.day_end), closing a day (a cashier their own with sale.create, anyone's with settlement.close; refused
with a message and audited by the service), and the printable handover sheet with signature lines."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, clientside_callback, dcc, html, no_update
from dash.exceptions import PreventUpdate

from billing.day_end import close_day, settlement_report
from billing.errors import BillingError
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.cashier import field
from dashboard.components.reports import handover_sheet, report_grid
from dashboard.i18n import request_lang, t
from dashboard.ids import Settlement as ID
from dashboard.services import actor, billing, operator_name
from reports.registry import REPORTS

dash.register_page(__name__, path=access.SETTLEMENT.path, title="Wattline", name="settlement")
COLUMNS = REPORTS["settlement"].columns


def _day_view(day, lang: str):
    rows = settlement_report(billing(), day, day)
    return report_grid(ID.GRID, COLUMNS, rows, None, lang), handover_sheet(rows, day, lang, ID.SHEET), rows


def layout(day=None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.SETTLEMENT, lang)
    if denied is not None:
        return denied
    ctx = billing()
    try:
        shown = inputs.day(day) or ctx.local(ctx.now()).date()
    except inputs.BadValue:
        shown = ctx.local(ctx.now()).date()
    grid, sheet, rows = _day_view(shown, lang)
    me = operator_name()
    cashiers = sorted({r["operator"] for r in rows} | {me})
    may_close_others = allowed(P.SETTLEMENT_CLOSE)
    who = [{"label": c, "value": c} for c in cashiers if may_close_others or c == me]
    return html.Div([
        html.H1(t("report.settlement_heading", lang), className="h4"),
        html.P(t("report.settlement_intro", lang), className="small text-muted"),
        dbc.Row([
            field(t("report.col.day", lang), dbc.Input(id=ID.DAY, type="date", value=shown.isoformat()), ID.DAY,
                  xs=6, md=2),
            dbc.Col(dbc.Button(t("report.run", lang), id=ID.QUERY, color="primary"), xs=6, md=2,
                    className="d-flex align-items-end"),
            field(t("report.col.operator", lang), dbc.Select(id=ID.CLOSE_WHO, options=who, value=me), ID.CLOSE_WHO,
                  xs=6, md=2),
            dbc.Col([dbc.Button(t("report.close_day", lang), id=ID.CLOSE, color="outline-danger", className="me-2"),
                     dbc.Button(t("report.print", lang), id=ID.PRINT, color="outline-secondary")],
                    xs=12, md=4, className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.RESULT, role="status", className="small mb-1"),
        html.Div(grid, id=ID.GRID_BOX, className="mb-3"),
        html.Div(sheet, id=ID.SHEET_BOX),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("settlement.query", P.REPORT_VIEW, Input(ID.QUERY, "n_clicks"), State(ID.DAY, "value"),
                  output={"grid": Output(ID.GRID_BOX, "children"), "sheet": Output(ID.SHEET_BOX, "children"),
                          "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, day):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        chosen = inputs.day(day)
    except inputs.BadValue as exc:
        return {"grid": no_update, "sheet": no_update,
                "result": html.Span(t("report.error.day_invalid", lang, name=t("report.col.day", lang),
                                      value=inputs.shown(exc)), className="text-danger")}
    if chosen is None:
        raise PreventUpdate
    grid, sheet, _rows = _day_view(chosen, lang)
    return {"grid": grid, "sheet": sheet, "result": None}


@guarded_callback("settlement.close_day", (P.SALE_CREATE, P.SETTLEMENT_CLOSE), Input(ID.CLOSE, "n_clicks"),
                  State(ID.DAY, "value"), State(ID.CLOSE_WHO, "value"),
                  output={"grid": Output(ID.GRID_BOX, "children", allow_duplicate=True),
                          "sheet": Output(ID.SHEET_BOX, "children", allow_duplicate=True),
                          "result": Output(ID.RESULT, "children", allow_duplicate=True)},
                  prevent_initial_call=True)
def close(n_clicks, day, who):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    refused = {"grid": no_update, "sheet": no_update}
    try:
        chosen = inputs.day(day)
    except inputs.BadValue as exc:
        return {**refused, "result": html.Span(t("report.error.day_invalid", lang, name=t("report.col.day", lang),
                                                 value=inputs.shown(exc)), className="text-danger")}
    cashier = who if isinstance(who, str) and who.strip() and len(who) <= 100 and who.isprintable() else None
    if chosen is None or cashier is None:
        return {**refused, "result": html.Span(t("report.error.parameter_missing", lang,
                                                 name=t("report.col.operator", lang)), className="text-danger")}
    try:
        close_day(billing(), actor(), cashier, chosen)
    except BillingError as exc:
        return {**refused, "result": html.Span(exc.message(lang), className="text-danger")}
    grid, sheet, _rows = _day_view(chosen, lang)
    return {"grid": grid, "sheet": sheet,
            "result": html.Span(t("report.close_done", lang, operator=cashier, day=chosen.isoformat()),
                                className="text-success")}


clientside_callback("function(n) { if (n) { window.print(); } return window.dash_clientside.no_update; }",
                    Output(ID.PRINT, "title"), Input(ID.PRINT, "n_clicks"), prevent_initial_call=True)
