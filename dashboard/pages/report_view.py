"""Any registered report (/reports/view?name=..., report.view): the filters its spec takes, a chart per period
where it helps (sales, energy), the grid with a totals row, and the XLSX export (report.export), which runs the
same report again and is written to the operation log. Parameters are read by reports.spec, as for the command
line and the API: what it cannot read is said in the operator's language and nothing runs."""
from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.reports import (empty_figure, filter_form, form_values, period_figure, period_frame,
                                          report_grid)
from dashboard.i18n import request_lang, t
from dashboard.ids import ReportCentre as ID
from dashboard.services import billing, operator_name, report_env
from billing.desk import buildings
from reports.registry import REPORTS
from reports.render import export_report, run_report
from reports.spec import ReportError

VIEW, EXPORT = P.REPORT_VIEW, P.REPORT_EXPORT
dash.register_page(__name__, path=access.REPORT_VIEW.path, title="Wattline", name="report_view")
FORM = (State(ID.FROM, "value"), State(ID.TO, "value"), State(ID.BY, "value"), State(ID.GROUP, "value"),
        State(ID.BUILDING, "value"), State(ID.FLOOR, "value"), State(ID.ROOM, "value"), State(ID.OPERATOR, "value"),
        State(ID.CHANNEL, "value"), State(ID.METER, "value"))


def _defaults(spec, today) -> dict:
    first = today.replace(day=1)
    return {"from": first.isoformat(), "to": today.isoformat(), "by": spec.by[0] if spec.by else None,
            "group": spec.default_group}


def layout(name="sales", **query):
    lang = request_lang()
    denied = forbidden_page(access.REPORT_VIEW, lang)
    if denied is not None:
        return denied
    spec = REPORTS.get(name if isinstance(name, str) else "")
    if spec is None:
        return html.Div([html.H1(t("report.hub_heading", lang), className="h4"),
                         html.P(t("report.unknown", lang), className="text-danger"),
                         dcc.Link(t("report.hub_heading", lang), href=access.REPORTS.path)],
                        className="container-fluid", id=ID.VIEW)
    ctx = billing()
    applied = {**_defaults(spec, ctx.local(ctx.now()).date()),
               **{k: v for k, v in query.items() if isinstance(v, str) and k in spec.takes}}
    return html.Div([
        html.H1(t(spec.title_key, lang), className="h4"),
        filter_form(ID, spec, applied, lang, buildings=buildings(ctx), may_export=allowed(EXPORT)),
        html.Div(id=ID.RESULT, role="status", className="small mb-1"),
        dcc.Graph(id=ID.CHART, figure=empty_figure(), config={"displaylogo": False, "responsive": True},
                  style={} if spec.chart else {"display": "none"}),
        html.Div(report_grid(ID.GRID, spec.columns, [], None, lang), id=ID.GRID_BOX),
        dcc.Store(id=ID.NAME, data=spec.name),
        dcc.Store(id=ID.APPLIED),
        dcc.Download(id=ID.DOWNLOAD),
    ], className="container-fluid", id=ID.VIEW)


@guarded_callback("report.query", VIEW, Input(ID.QUERY, "n_clicks"), State(ID.NAME, "data"), *FORM,
                  output={"grid": Output(ID.GRID_BOX, "children"), "figure": Output(ID.CHART, "figure"),
                          "applied": Output(ID.APPLIED, "data"), "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, name, *form):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    spec = REPORTS.get(name if isinstance(name, str) else "")
    refused = {"grid": no_update, "figure": no_update, "applied": no_update}
    if spec is None:
        return {**refused, "result": html.Span(t("report.unknown", lang), className="text-danger")}
    raw = form_values(spec, *form)
    try:
        result = run_report(report_env(), spec.name, raw, lang)
    except ReportError as exc:
        return {**refused, "result": html.Span(exc.message(lang), className="text-danger")}
    figure = period_figure(period_frame(result.rows, spec.chart), t(f"report.col.{spec.chart}", lang)) \
        if spec.chart else no_update
    said = t("report.rows", lang, n=len(result.rows)) if result.rows else t("report.none", lang)
    return {"grid": report_grid(ID.GRID, result.columns, result.rows, result.totals, lang), "figure": figure,
            "applied": {"name": spec.name, "raw": raw}, "result": said}


@guarded_callback("report.export_file", EXPORT, Output(ID.DOWNLOAD, "data"),
                  Output(ID.RESULT, "children", allow_duplicate=True), Input(ID.EXPORT, "n_clicks"),
                  State(ID.APPLIED, "data"), changes_state=False, prevent_initial_call=True)
def export(n_clicks, applied):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    if not isinstance(applied, dict) or not isinstance(applied.get("raw"), dict):
        return no_update, html.Span(t("report.none", lang), className="text-warning")
    raw = {k: v for k, v in applied["raw"].items() if isinstance(v, str)}
    try:
        data, filename = export_report(report_env(), str(applied.get("name")), raw, "xlsx", operator=operator_name(),
                                       lang=lang, source=source_address())
    except ReportError as exc:
        return no_update, html.Span(exc.message(lang), className="text-danger")
    return dcc.send_bytes(data, filename), html.Span(t("report.exported", lang, name=filename), className="text-success")
