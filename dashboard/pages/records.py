"""Sales records (/records, 售电记录): sales, refunds and reversals by time range, kind, operator, building and
meter / room, in an AG Grid (report.view); the XLSX export writes the rows the grid shows, in its order,
read again from the database, and is written to the operation log (report.export)."""
from __future__ import annotations

import datetime as dt

import dash
from dash import Input, Output, State, clientside_callback, dcc, html, no_update
from dash.exceptions import PreventUpdate

from billing import desk
from core import permissions as P
from core.clock import show_local
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.records import KINDS, default_range, grid_rows, records_page, records_workbook, summary
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import Records as ID
from dashboard.services import billing

VIEW, EXPORT = P.REPORT_VIEW, P.REPORT_EXPORT
dash.register_page(__name__, path="/records", title="Wattline", name="records")


class BadDate(ValueError):
    pass


def _day(value) -> dt.date | None:
    try:
        return inputs.day(value)
    except inputs.BadValue as exc:
        raise BadDate(str(exc)) from None


def _applied(first, last, kinds, operator, building, text) -> dict:
    """The query's filters as plain JSON (kept in a dcc.Store for the export's query sheet)."""
    first_day, last_day = _day(first), _day(last)
    return {"from": first_day.isoformat() if first_day else None, "to": last_day.isoformat() if last_day else None,
            "kinds": [k for k in kinds if k in KINDS] if isinstance(kinds, list) else [],
            "operator": operator if isinstance(operator, str) and operator else None,
            "building": building if isinstance(building, str) and building else None,
            "text": text.strip() if isinstance(text, str) and text.strip() else None}


def _query(applied: dict) -> tuple[list[dict], dict]:
    """The entries to show and the money of all that match (billing.desk.record_totals)."""
    ctx_ = billing()
    filters = desk.record_filters(ctx_, first_day=_day(applied["from"]), last_day=_day(applied["to"]),
                                  kinds=applied["kinds"], operator=applied["operator"],
                                  building=applied["building"], text=applied["text"])
    return desk.records(ctx_, **filters), desk.record_totals(ctx_, **filters)


def layout(**_query_args):
    lang = request_lang()
    denied = forbidden_page(access.RECORDS, lang)
    if denied is not None:
        return denied
    ctx_ = billing()
    applied = {**default_range(ctx_.local(ctx_.now()).date()), "operator": None, "building": None, "text": None}
    rows, totals = _query(applied)
    return records_page(grid_rows(rows, lang), summary(rows, totals, lang, desk.RECORD_LIMIT), applied,
                        desk.buildings(ctx_), desk.record_operators(ctx_), lang, may_export=allowed(EXPORT))


@guarded_callback("records.query", VIEW,
                  Input(ID.SEARCH, "n_clicks"), Input(ID.TEXT, "n_submit"), State(ID.FROM, "value"),
                  State(ID.TO, "value"), State(ID.KINDS, "value"), State(ID.OPERATOR, "value"),
                  State(ID.BUILDING, "value"), State(ID.TEXT, "value"),
                  output={"rows": Output(ID.GRID, "rowData"), "count": Output(ID.COUNT, "children"),
                          "applied": Output(ID.APPLIED, "data"), "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, n_submit, first, last, kinds, operator, building, text):
    if not n_clicks and not n_submit:
        raise PreventUpdate
    lang = request_lang()
    try:
        applied = _applied(first, last, kinds, operator, building, text)
    except BadDate as exc:
        return {"rows": no_update, "count": no_update, "applied": no_update,
                "result": html.Span(t("records.bad_date", lang, value=str(exc)), className="text-danger")}
    rows, totals = _query(applied)
    return {"rows": grid_rows(rows, lang), "count": summary(rows, totals, lang, desk.RECORD_LIMIT),
            "applied": applied, "result": None}


# The browser knows which rows it shows (column filters, sort): it sends their ids, not their contents.
clientside_callback(
    """function (n, rows, filterModel) {
        if (!n) { return window.dash_clientside.no_update; }
        return {ids: (rows || []).map(function (r) { return r.id; }), filter: filterModel || {}, at: Date.now()};
    }""",
    Output(ID.EXPORT_REQUEST, "data"), Input(ID.EXPORT, "n_clicks"), State(ID.GRID, "virtualRowData"),
    State(ID.GRID, "filterModel"), prevent_initial_call=True,
)


@guarded_callback("records.export", EXPORT, Output(ID.DOWNLOAD, "data"),
                  Output(ID.RESULT, "children", allow_duplicate=True), Input(ID.EXPORT_REQUEST, "data"),
                  State(ID.APPLIED, "data"), changes_state=False, prevent_initial_call=True)
def export(request, applied):
    if not isinstance(request, dict):
        raise PreventUpdate
    lang = request_lang()
    ids = inputs.record_ids(request.get("ids"))
    if not ids:
        return no_update, html.Span(t("records.nothing_to_export", lang), className="text-warning")
    shown = applied if isinstance(applied, dict) else {}
    op = signed_in()
    ctx_ = billing()
    rows = desk.export_records(ctx_, ids, op.username if op else "-", source=source_address(),
                               shown={**shown, "grid_filter": inputs.mapping(request.get("filter"))})
    stamp = show_local(ctx_.local(ctx_.now()), "stamp")
    book = records_workbook(rows, shown, lang, ctx_.tz)
    workbook = book.to_bytes()
    return (dcc.send_bytes(workbook, f"{t('records.filename', lang)}-{stamp}.xlsx"),
            exported_message(t("records.exported", lang, n=len(rows)), book, lang, id=ID.EXPORTED))
