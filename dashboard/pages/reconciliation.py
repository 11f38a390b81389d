"""Reconciliation (/reconciliation, report.view): purchase-count and balance mismatch alarms, and the
shadow-billing report of meters whose balance moved more than 1 % away from readings x tariff."""
from __future__ import annotations

import dash
from dash import Input, Output, State

from billing.errors import BillingError
from billing.reconcile import resolve_alarm
from billing.reports import reconciliation_alarms, shadow_report
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.cashier import error_alert, notice
from dashboard.components.reconciliation import alarm_rows, reconciliation_page, shadow_rows
from dashboard.i18n import request_lang, t
from dashboard.ids import Reconciliation as ID
from dashboard.services import billing, operator_name
from storage.alarms import kind_text

VIEW = P.REPORT_VIEW
RESOLVE = P.ALARM_RESOLVE
dash.register_page(__name__, path="/reconciliation", title="Wattline", name="reconciliation")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.RECONCILIATION, lang)
    if denied is not None:
        return denied
    ctx = billing()
    return reconciliation_page(reconciliation_alarms(ctx), ctx.local(ctx.now()).date(), lang,
                               may_resolve=allowed(RESOLVE))


@guarded_callback("reconciliation.resolve", RESOLVE,
                  Input(ID.RESOLVE, "n_clicks"), State(ID.ALARMS, "selectedRows"), State(ID.NOTE, "value"),
                  output={"result": Output(ID.RESOLVED, "children"), "alarms": Output(ID.ALARMS, "rowData"),
                          "note": Output(ID.NOTE, "value")},
                  prevent_initial_call=True)
def resolve(n_clicks, selected, note):
    """Close the selected alarm with the operator's note; the grid shows the alarms still open."""
    if not n_clicks:
        raise dash.exceptions.PreventUpdate
    lang = request_lang()
    row = selected[0] if isinstance(selected, list) and selected and isinstance(selected[0], dict) else None
    if row is None or inputs.record_id(row.get("id")) is None:  # the grid's row names its alarm by id
        return {"result": notice(t("reconciliation.pick_alarm", lang)), "alarms": dash.no_update,
                "note": dash.no_update}
    ctx = billing()
    try:
        alarm = resolve_alarm(ctx.engine, ctx.now, inputs.record_id(row["id"]), operator_name(),
                              note if isinstance(note, str) else None, remote=source_address())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), "alarms": alarm_rows(reconciliation_alarms(ctx), lang),
                "note": dash.no_update}
    done = notice(t("reconciliation.resolved", lang, kind=kind_text(alarm["kind"], lang),
                    meter=row.get("meter_address") or ""), "success", id=ID.RESOLVED_OK)
    return {"result": done, "alarms": alarm_rows(reconciliation_alarms(ctx), lang), "note": ""}


@guarded_callback("reconciliation.shadow", VIEW, Output(ID.SHADOW, "rowData"), Output(ID.MESSAGE, "children"),
                  Input(ID.RUN, "n_clicks"), State(ID.FIRST, "date"), State(ID.LAST, "date"),
                  changes_state=False, prevent_initial_call=True)
def run_shadow(_n, first, last):
    lang = request_lang()
    try:
        first_day, last_day = inputs.day(first), inputs.day(last)
    except inputs.BadValue:
        first_day = last_day = None
    if first_day is None or last_day is None or last_day < first_day or (last_day - first_day).days > 366:
        return dash.no_update, t("reconciliation.bad_range", lang)
    rows = shadow_report(billing(), first_day, last_day)
    return shadow_rows(rows), t("reconciliation.found", lang, n=len(rows))
