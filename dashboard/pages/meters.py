"""Meters (/meters): every meter in an AG Grid, sortable and filterable; the XLSX export writes the
rows the grid shows, in its order, read again from the database, and is recorded in the operation log."""
from __future__ import annotations

import dash
from dash import Input, Output, State, clientside_callback, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from core import permissions as P
import dashboard.app as dash_app
from core.clock import show_local, site_time, utcnow
from core.config import site_zone
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.meter_grid import grid_rows, meters_page, meters_workbook
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import Meters as ID
from storage.meters import export_meters, meter_table

VIEW, EXPORT = P.METER_VIEW, P.METER_EXPORT
dash.register_page(__name__, path="/meters", title="Wattline", name="meters")


def _services():
    services = current_app.config["WATTLINE_SERVICES"]
    return services.engine, site_zone(services.cfg.timezone)


def _rows(lang: str) -> list[dict]:
    engine, zone = _services()
    with engine.connect() as conn:
        table = meter_table(conn)
    ctx = getattr(current_app.config["WATTLINE_SERVICES"], "billing", None)  # its prepaid profiles take commands
    return grid_rows(table, lang, zone, controllable=ctx.is_prepaid_profile if ctx is not None else None)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.METERS, lang)
    if denied is not None:
        return denied
    return meters_page(_rows(lang), lang, may_export=allowed(EXPORT),
                       may_control=allowed(access.CONTROL.any_of))


# ---------------------------------------------------------------------------------------------
# Callbacks: wiring only

@guarded_callback("meters.refresh", VIEW, Output(ID.GRID, "rowData"), Input(ID.REFRESH, "n_clicks"),
                  changes_state=False, prevent_initial_call=True)
def refresh_rows(n_clicks):
    if not n_clicks:
        raise PreventUpdate
    return _rows(request_lang())  # rows keep their ids (getRowId): the filter and sort stay


# The browser knows which rows it shows (filter, sort): it sends their ids, not their contents.
clientside_callback(
    """function (n, rows, filterModel) {
        if (!n) { return window.dash_clientside.no_update; }
        return {ids: (rows || []).map(function (r) { return r.meter_id; }), filter: filterModel || {}, at: Date.now()};
    }""",
    Output(ID.EXPORT_REQUEST, "data"), Input(ID.EXPORT, "n_clicks"), State(ID.GRID, "virtualRowData"),
    State(ID.GRID, "filterModel"), prevent_initial_call=True,
)


@guarded_callback("meters.export", EXPORT, Output(ID.DOWNLOAD, "data"), Output(ID.MESSAGE, "children"),
                  Input(ID.EXPORT_REQUEST, "data"), changes_state=False, prevent_initial_call=True)
def export_shown_rows(request):
    if not request:
        raise PreventUpdate
    lang = request_lang()
    request = inputs.mapping(request)  # the browser's {ids, filter}: other shapes name no row
    ids = inputs.record_ids(request.get("ids"))
    if not ids:
        return no_update, html.Span(t("meters.nothing_to_export", lang), className="text-warning")
    engine, zone = _services()
    op = signed_in()
    operator = op.username if op is not None else (dash_app.current_user_name() or "-")
    now = utcnow()
    with engine.begin() as conn:  # the log entry commits only with a workbook to hand out
        rows = export_meters(conn, ids, operator=operator, ts=now, source=source_address(),
                             shown={"filter": inputs.mapping(request.get("filter"))})
        book = meters_workbook(rows, lang, zone)
        workbook = book.to_bytes()
    stamp = show_local(site_time(now, zone), "stamp")
    return (dcc.send_bytes(workbook, f"meters-{stamp}.xlsx"),
            exported_message(t("meters.exported", lang, n=len(rows)), book, lang))
