"""Operation log (/audit, 操作日志): query by operator, action and time, and export to Excel what the
query shows. Both need audit.view: whoever may read the log may take it away (report.export governs
the reports); the export itself is logged."""
from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_local, site_time
from dashboard import access
from dashboard.auth import accounts, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.admin import alert
from dashboard.components.audit_log import BadFilter, audit_page, grid_rows, parse_filters, query_args, workbook
from dashboard.components.workbook import export_notice
from dashboard.i18n import request_lang, t
from dashboard.ids import Audit as ID
from dashboard.services import site_zone

VIEW = P.AUDIT_VIEW
dash.register_page(__name__, path="/audit", title="Wattline", name="audit")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.AUDIT, lang)
    if denied is not None:
        return denied
    service = accounts()
    operators, actions = service.operation_log_choices()
    return audit_page(service.operation_log(), operators, actions, lang, site_zone())


@guarded_callback("audit.query", VIEW,
                  Input(ID.SEARCH, "n_clicks"), State(ID.OPERATOR, "value"), State(ID.ACTION, "value"),
                  State(ID.SINCE, "value"), State(ID.UNTIL, "value"),
                  output={"rows": Output(ID.GRID, "rowData"), "count": Output(ID.COUNT, "children"),
                          "applied": Output(ID.APPLIED, "data"), "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, operator, action, since, until):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        filters = parse_filters(operator, action, since, until)
        entries = accounts().operation_log(**query_args(filters, site_zone()))
    except BadFilter as exc:
        return {"rows": no_update, "count": no_update, "applied": no_update,
                "result": alert(t("audit.bad_time", lang, value=str(exc)), False)}
    return {"rows": grid_rows(entries, lang, site_zone()), "count": t("audit.count", lang, n=len(entries)),
            "applied": filters, "result": None}


@guarded_callback("audit.export", VIEW,
                  Output(ID.DOWNLOAD, "data"), Output(ID.RESULT, "children", allow_duplicate=True),
                  Input(ID.EXPORT, "n_clicks"), State(ID.APPLIED, "data"),
                  changes_state=False, prevent_initial_call=True)
def export(n_clicks, filters):
    if not n_clicks:
        raise PreventUpdate
    op = signed_in()
    lang = request_lang()
    zone = site_zone()
    try:
        shown = parse_filters(*(filters.get(k) for k in ("operator", "action", "since", "until"))) \
            if isinstance(filters, dict) else parse_filters(None, None, None, None)
        args = query_args(shown, zone)
    except BadFilter:
        raise PreventUpdate from None
    service = accounts()
    entries = service.operation_log(**args)
    applied = {k: (v.isoformat(timespec="minutes") if hasattr(v, "isoformat") else v) for k, v in args.items()}
    service.record(op.username, "audit.export", "operation log", source_address(),
                   after={"filters": applied, "rows": len(entries)})  # the log's own clock: UTC
    stamp = show_local(site_time(service.clock(), zone), "stamp")
    book = workbook(entries, shown, lang, zone)
    data = book.to_bytes()
    notice = export_notice(book, lang)
    return (dcc.send_bytes(data, f"{t('audit.filename', lang)}-{stamp}.xlsx"),
            alert(notice, False) if notice else None)
