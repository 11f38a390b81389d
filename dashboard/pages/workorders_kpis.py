"""Work-order KPIs (/workorders/kpis, 工单统计分析): the KPIs of a period of the site's days (workorders.kpis: the
definitions), orders per month by type and repair completion time by month as charts, the statistics tables
(工单分类统计表, 工器具领用统计表, 材料分类统计表) and counts per month and quarter; XLSX export, written to the
operation log (report.export)."""
from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_local, zone_label
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.workbook import exported_message
from dashboard.components.workorders_office import (counts_rows, item_rows, kpi_tiles, kpi_workbook, months_figure,
                                                    repair_figure, stats_table, type_names, type_rows)
from dashboard.i18n import request_lang, t
from dashboard.ids import WorkOrderKpis as ID
from dashboard.services import actor, billing, workorders
from workorders.errors import WorkOrderError
from workorders.kpis import KpiReport
from workorders.office import Office

dash.register_page(__name__, path=access.WORKORDER_KPIS.path, title="Wattline", name="workorder_kpis")
DEFAULT_DAYS = 90


def body(report: KpiReport, lang: str) -> list:
    names = type_names(report.types, lang)
    graph = {"displaylogo": False, "responsive": True}
    header, rows = type_rows(report, lang)
    return [
        kpi_tiles(report.kpis, lang),
        dbc.Row([
            dbc.Col(dcc.Graph(id=ID.MONTHS, figure=months_figure(report.by_month, names, lang), config=graph),
                    xs=12, lg=6),
            dbc.Col(dcc.Graph(id=ID.REPAIR, figure=repair_figure(report.kpis.repair_hours_by_month, lang),
                              config=graph), xs=12, lg=6),
        ], className="g-2 mb-2"),
        html.H2(t("wo_kpi.sheet.types", lang), className="h6"),
        stats_table(header, rows, percent_col=7),
        html.H2(t("wo_kpi.sheet.quarters", lang), className="h6"),
        stats_table(*counts_rows(report.by_quarter, names, lang)),
        html.H2(t("wo_kpi.sheet.tools", lang), className="h6"),
        stats_table(*item_rows(report.tools, lang, money=False)),
        html.H2(t("wo_kpi.sheet.materials", lang), className="h6"),
        stats_table(*item_rows(report.materials, lang, money=True)),
    ]


def _period(first, last) -> tuple[dt.date, dt.date]:
    """The typed days (BadValue when one is not a day), defaulting to the last DEFAULT_DAYS days."""
    ctx = billing()
    today = ctx.local(ctx.now()).date()
    return (inputs.day(first) or today - dt.timedelta(days=DEFAULT_DAYS - 1)), (inputs.day(last) or today)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.WORKORDER_KPIS, lang)
    if denied is not None:
        return denied
    first, last = _period(None, None)
    report = Office(workorders()).kpis(actor(), first, last)
    return dbc.Container([
        html.H1(t("wo_kpi.heading", lang), className="h4"),
        dbc.Row([
            dbc.Col([dbc.Label(t("wo_kpi.from", lang), html_for=ID.FROM),
                     dbc.Input(id=ID.FROM, type="date", value=first.isoformat())], xs=6, md=3, lg=2),
            dbc.Col([dbc.Label(t("wo_kpi.to", lang), html_for=ID.TO),
                     dbc.Input(id=ID.TO, type="date", value=last.isoformat())], xs=6, md=3, lg=2),
            dbc.Col(html.Div([
                dbc.Button(t("wo_kpi.show", lang), id=ID.QUERY, color="primary", className="me-2"),
                dbc.Button(t("wo_kpi.export", lang), id=ID.EXPORT, color="secondary", outline=True,
                           disabled=not allowed(P.REPORT_EXPORT)),
            ], className="d-flex align-items-end h-100"), xs=12, md=6, lg=4),
        ], className="g-2 mb-2"),
        html.Div(id=ID.RESULT, role="status", className="small mb-2"),
        html.Div(body(report, lang), id=ID.BODY),
        dcc.Store(id=ID.APPLIED, data={"from": first.isoformat(), "to": last.isoformat()}),
        dcc.Download(id=ID.DOWNLOAD),
    ], fluid=True, id=ID.PAGE)


@guarded_callback("workorder.kpis", access.WORKORDER_KPIS,
                  Input(ID.QUERY, "n_clicks"), State(ID.FROM, "value"), State(ID.TO, "value"),
                  output={"body": Output(ID.BODY, "children"), "applied": Output(ID.APPLIED, "data"),
                          "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n, first, last):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    try:
        first_day, last_day = _period(first, last)
        report = Office(workorders()).kpis(actor(), first_day, last_day)
    except inputs.BadValue as exc:
        return {"body": no_update, "applied": no_update,
                "result": html.Span(t("wo_kpi.bad_date", lang, value=str(exc)), className="text-danger")}
    except WorkOrderError as exc:
        return {"body": no_update, "applied": no_update,
                "result": html.Span(exc.message(lang), className="text-danger")}
    return {"body": body(report, lang), "applied": {"from": first_day.isoformat(), "to": last_day.isoformat()},
            "result": None}


@guarded_callback("workorder.kpis.export", P.REPORT_EXPORT,
                  Output(ID.DOWNLOAD, "data"), Output(ID.RESULT, "children", allow_duplicate=True),
                  Input(ID.EXPORT, "n_clicks"), State(ID.APPLIED, "data"), changes_state=False,
                  prevent_initial_call=True)
def export(n, applied):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    shown = inputs.mapping(applied)
    try:
        first_day, last_day = _period(shown.get("from"), shown.get("to"))
        report = Office(workorders()).export_kpis(actor(), first_day, last_day)
    except inputs.BadValue as exc:
        return no_update, html.Span(t("wo_kpi.bad_date", lang, value=str(exc)), className="text-danger")
    except WorkOrderError as exc:
        return no_update, html.Span(exc.message(lang), className="text-danger")
    ctx = billing()
    local_now = ctx.local(ctx.now())
    book = kpi_workbook(report, lang, t("wo_kpi.times", lang, zone=zone_label(ctx.tz)), local_now)
    name = f"{t('wo_kpi.filename', lang)}-{show_local(local_now, 'stamp')}.xlsx"
    return (dcc.send_bytes(book.to_bytes(), name),
            exported_message(t("wo_kpi.exported", lang, first=first_day.isoformat(), last=last_day.isoformat()),
                             book, lang, id=ID.EXPORTED))
