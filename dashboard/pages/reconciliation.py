"""Reconciliation (/reconciliation, report.view): purchase-count and balance mismatch alarms, and the
shadow-billing report of meters whose balance moved more than 1 % away from readings x tariff."""
from __future__ import annotations

import datetime as dt

import dash
from dash import Input, Output, State

from billing.reports import reconciliation_alarms, shadow_report
from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.reconciliation import (
    REC_FIRST, REC_LAST, REC_MESSAGE, REC_RUN, REC_SHADOW, reconciliation_page, shadow_rows,
)
from dashboard.i18n import request_lang, t
from dashboard.services import billing

VIEW = "report.view"
dash.register_page(__name__, path="/reconciliation", title="Wattline", name="reconciliation")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.RECONCILIATION, lang)
    if denied is not None:
        return denied
    ctx = billing()
    return reconciliation_page(reconciliation_alarms(ctx), ctx.local(ctx.now()).date(), lang)


@guarded_callback("reconciliation.shadow", VIEW, Output(REC_SHADOW, "rowData"), Output(REC_MESSAGE, "children"),
                  Input(REC_RUN, "n_clicks"), State(REC_FIRST, "date"), State(REC_LAST, "date"),
                  changes_state=False, prevent_initial_call=True)
def run_shadow(_n, first, last):
    lang = request_lang()
    try:
        first_day = dt.date.fromisoformat(str(first)[:10])
        last_day = dt.date.fromisoformat(str(last)[:10])
        if last_day < first_day or (last_day - first_day).days > 366:
            raise ValueError
    except (TypeError, ValueError):
        return dash.no_update, t("reconciliation.bad_range", lang)
    rows = shadow_report(billing(), first_day, last_day)
    return shadow_rows(rows), t("reconciliation.found", lang, n=len(rows))
