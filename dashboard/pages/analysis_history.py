"""Reading history of one meter (/analysis/history, 抄表历史记录查询): every reading over a range as a chart and a
grid, comm gaps marked, bounded by energy.history's day and row limits (said on the page); the XLSX export reads
the same query again and is written to the operation log (report.export)."""
from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_local
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.analysis import history_figure
from dashboard.components.analysis_layout import (GAP_ROW, data_grid, default_days, history_columns,
                                                  history_grid_rows, history_summary, history_workbook, range_form)
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import AnalysisHistory as ID
from dashboard.services import billing, runtime, site_zone
from energy.history import (HISTORY_MAX_DAYS, HISTORY_ROW_CAP, HistoryError, metered_devices, reading_history,
                            record_export)

VIEW, EXPORT = P.REPORT_VIEW, P.REPORT_EXPORT
dash.register_page(__name__, path=access.ANALYSIS_HISTORY.path, title="Wattline", name="analysis_history")


def _applied(meter, first, last) -> dict:
    """The query as plain JSON; BadValue when a day is not a day."""
    first_day, last_day = inputs.day(first), inputs.day(last)
    return {"meter": inputs.key_text(meter, 40), "from": first_day.isoformat() if first_day else None,
            "to": last_day.isoformat() if last_day else None}


def _history(applied: dict):
    services = runtime()
    return reading_history(services.engine, site_zone(), applied["meter"] or "", inputs.day(applied["from"]),
                           inputs.day(applied["to"]), poll_interval_s=services.cfg.poll_interval_s)


def layout(meter=None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.ANALYSIS_HISTORY, lang)
    if denied is not None:
        return denied
    ctx = billing()
    applied = {**default_days(ctx.local(ctx.now()).date()), "meter": inputs.key_text(meter, 40)}
    devices = metered_devices(runtime().engine)
    return dash.html.Div([
        html.H1(t("analysis.history.heading", lang), className="h4"),
        range_form(ID, applied, lang, devices=devices, may_export=allowed(EXPORT), export_id=ID.EXPORT),
        html.P(t("analysis.history.limits", lang, days=HISTORY_MAX_DAYS, cap=f"{HISTORY_ROW_CAP:,}"),
               className="small text-muted mb-1"),
        html.Div(id=ID.RESULT, role="status", className="small"),
        html.P(id=ID.SUMMARY, className="small mb-1"),
        dcc.Graph(id=ID.CHART, figure=history_figure(_empty_rows(), lang), config={"displaylogo": False,
                                                                                      "responsive": True}),
        data_grid(ID.GRID, [], history_columns(lang, site_zone()), lang, row_style=GAP_ROW),
        dcc.Store(id=ID.APPLIED),
        dcc.Download(id=ID.DOWNLOAD),
    ], className="container-fluid", id=ID.PAGE)


def _empty_rows():
    import pandas as pd
    return pd.DataFrame(columns=["ts", "energy_total", "balance", "power_total", "comm_gap"])


@guarded_callback("analysis.history.query", VIEW, Input(ID.QUERY, "n_clicks"), State(ID.METER, "value"),
                  State(ID.FROM, "value"), State(ID.TO, "value"),
                  output={"figure": Output(ID.CHART, "figure"), "rows": Output(ID.GRID, "rowData"),
                          "summary": Output(ID.SUMMARY, "children"), "applied": Output(ID.APPLIED, "data"),
                          "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, meter, first, last):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    refused = {"figure": no_update, "rows": no_update, "summary": no_update, "applied": no_update}
    try:
        applied = _applied(meter, first, last)
        history = _history(applied)
    except inputs.BadValue as exc:
        return {**refused, "result": html.Span(t("analysis.bad_date", lang, value=str(exc)), className="text-danger")}
    except HistoryError as exc:
        return {**refused, "result": html.Span(exc.message(lang), className="text-danger")}
    return {"figure": history_figure(history.rows, lang), "rows": history_grid_rows(history.rows, lang),
            "summary": history_summary(history, lang), "applied": applied, "result": None}


@guarded_callback("analysis.history.export", EXPORT, Output(ID.DOWNLOAD, "data"),
                  Output(ID.RESULT, "children", allow_duplicate=True), Input(ID.EXPORT, "n_clicks"),
                  State(ID.APPLIED, "data"), changes_state=False, prevent_initial_call=True)
def export(n_clicks, applied):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    if not isinstance(applied, dict) or not applied.get("meter"):
        return no_update, html.Span(t("analysis.nothing_to_export", lang), className="text-warning")
    try:
        applied = _applied(applied.get("meter"), applied.get("from"), applied.get("to"))
        history = _history(applied)
    except (inputs.BadValue, HistoryError):
        return no_update, html.Span(t("analysis.nothing_to_export", lang), className="text-warning")
    ctx = billing()
    op = signed_in()
    subject = f"meter:{history.meter['address']}"   # the operation log's target (dashboard.components.audit_text)
    record_export(runtime().engine, action="analysis.history_export", target=subject,
                  operator=op.username if op else "-", rows=len(history.rows), shown=applied, now=ctx.now(),
                  source=source_address())
    book = history_workbook(history, applied, lang, site_zone())
    stamp = show_local(ctx.local(ctx.now()), "stamp")
    return (dcc.send_bytes(book.to_bytes(), f"{t('analysis.history.filename', lang)}-{history.meter['address']}"
                                            f"-{stamp}.xlsx"),
            exported_message(t("analysis.exported", lang, n=len(history.rows)), book, lang))
