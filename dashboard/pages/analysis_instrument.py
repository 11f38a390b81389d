"""Metering-instrument energy difference (/analysis/instrument, 计量仪表能耗查询): for any device with an energy
register, the registers at both ends of a range, what it counted between them (reset-aware), the CT ratio and the
latest remote reading (energy.history.instrument_difference)."""
from __future__ import annotations

import dash
from dash import Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.analysis_layout import default_days, instrument_body, range_form
from dashboard.i18n import request_lang, t
from dashboard.ids import AnalysisInstrument as ID
from dashboard.services import billing, runtime, site_zone
from energy.history import HistoryError, instrument_difference, metered_devices

dash.register_page(__name__, path=access.ANALYSIS_INSTRUMENT.path, title="Wattline", name="analysis_instrument")


def layout(meter=None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.ANALYSIS_INSTRUMENT, lang)
    if denied is not None:
        return denied
    ctx = billing()
    applied = {**default_days(ctx.local(ctx.now()).date(), days=30), "meter": inputs.key_text(meter, 40)}
    return html.Div([
        html.H1(t("analysis.instrument.heading", lang), className="h4"),
        html.P(t("analysis.instrument.help", lang), className="small text-muted"),
        range_form(ID, applied, lang, devices=metered_devices(runtime().engine)),
        html.Div(id=ID.RESULT, role="status", className="small"),
        html.Div(id=ID.BODY),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("analysis.instrument.query", P.REPORT_VIEW, Output(ID.BODY, "children"),
                  Output(ID.RESULT, "children"), Input(ID.QUERY, "n_clicks"), State(ID.METER, "value"),
                  State(ID.FROM, "value"), State(ID.TO, "value"), changes_state=False, prevent_initial_call=True)
def query(n_clicks, meter, first, last):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        diff = instrument_difference(runtime().engine, site_zone(), inputs.key_text(meter, 40) or "",
                                     inputs.day(first), inputs.day(last))
    except inputs.BadValue as exc:
        return no_update, html.Span(t("analysis.bad_date", lang, value=str(exc)), className="text-danger")
    except HistoryError as exc:
        return no_update, html.Span(exc.message(lang), className="text-danger")
    return instrument_body(diff, lang), None
