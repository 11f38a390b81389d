"""One meter's settings (/meter-settings?meter=<number>, meter.view): alarm 1 / alarm 2 amounts and the overload
threshold, ours beside what the meter reports; a push (settings.push) queues SET_LIMITS, audited by the service."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State
from dash.exceptions import PreventUpdate

from billing.errors import BillingError
from billing.meter_settings import meter_settings, push_meter_limits
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.settings import meter_settings_page, refused, settings_table
from dashboard.i18n import request_lang, t
from dashboard.ids import MeterSettings as ID
from dashboard.services import actor, billing, site_zone

dash.register_page(__name__, path="/meter-settings", title="Wattline", name="meter-settings")


def _view(meter):
    try:
        return meter_settings(billing(), meter) if meter else None
    except BillingError:
        return None


def layout(meter: str | None = None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.METER_SETTINGS, lang)
    if denied is not None:
        return denied
    meter = inputs.key_text(meter, 12) or ""
    return meter_settings_page(meter, _view(meter), lang, site_zone(), may_push=allowed(P.SETTINGS_PUSH))


def _refused(exc: BillingError, lang: str):
    """The service's message, led by the field it is about."""
    field = getattr(exc, "field", None)
    text = exc.message(lang)
    if field:
        text = f"{t(f'meter_settings.{field}', lang)}: {text}"
    return refused(text, exc.code)


@guarded_callback("meter_settings.show", access.METER_SETTINGS,
                  output={"table": Output(ID.TABLE, "children"), "result": Output(ID.RESULT, "children")},
                  inputs={"n_clicks": Input(ID.SHOW, "n_clicks"), "n_submit": Input(ID.METER, "n_submit")},
                  state={"meter": State(ID.METER, "value")}, changes_state=False, prevent_initial_call=True)
def show(n_clicks, n_submit, meter):
    lang = request_lang()
    number = inputs.key_text(meter, 12)
    try:
        view = meter_settings(billing(), number or "")
    except BillingError as exc:
        return {"table": settings_table(None, lang, site_zone()), "result": _refused(exc, lang)}
    return {"table": settings_table(view, lang, site_zone()), "result": None}


@guarded_callback("meter_settings.push", P.SETTINGS_PUSH,
                  output={"table": Output(ID.TABLE, "children", allow_duplicate=True),
                          "result": Output(ID.RESULT, "children", allow_duplicate=True)},
                  inputs={"n_clicks": Input(ID.PUSH, "n_clicks")},
                  state={"meter": State(ID.METER, "value"), "alarm1": State(ID.ALARM1, "value"),
                         "alarm2": State(ID.ALARM2, "value"), "overload": State(ID.OVERLOAD, "value")},
                  prevent_initial_call=True)
def push(n_clicks, meter, alarm1, alarm2, overload):
    """SET_LIMITS to the meter; refused (with the field and why) before anything is queued."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        view = push_meter_limits(billing(), actor(), inputs.key_text(meter, 12) or "", alarm1=inputs.text(alarm1),
                                 alarm2=inputs.text(alarm2), overload_w=inputs.text(overload))
    except BillingError as exc:
        return {"table": dash.no_update, "result": _refused(exc, lang)}
    return {"table": settings_table(view, lang, site_zone()),
            "result": dbc.Alert(t("meter_settings.queued", lang, meter=view.meter), color="success",
                                className="py-2 mb-2")}
