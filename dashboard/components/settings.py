"""Builders of the per-meter settings page and the default parameters page."""
from __future__ import annotations

import datetime as dt

import dash_bootstrap_components as dbc
from dash import dcc, html

from billing.meter_settings import FIELDS as METER_FIELDS
from billing.parameters import FIELDS as PARAMETER_FIELDS
from core.clock import site_time
from core.formatting import format_money
from dashboard.i18n import t
from dashboard.ids import MeterSettings as MID
from dashboard.ids import Parameters as PID

_INPUT = {"alarm1": MID.ALARM1, "alarm2": MID.ALARM2, "overload_w": MID.OVERLOAD}


def refused(text: str, code: str) -> html.Div:
    """A refused change: the message (led by its field), nothing written."""
    return html.Div(dbc.Alert(text, color="danger", className="py-2 mb-2"), role="alert", **{"data-code": code})


def _value(field: str, limits) -> str:
    if limits is None:
        return "—"
    value = getattr(limits, field)
    return f"{value} W" if field == "overload_w" else format_money(value)


def _when(at: dt.datetime | None, zone) -> str:
    return "—" if at is None else site_time(at, zone).strftime("%Y-%m-%d %H:%M")


def settings_table(view, lang: str, zone) -> html.Div:
    """Ours beside the meter's own values, each row saying whether they differ."""
    if view is None:
        return html.P(t("meter_settings.pick", lang), className="text-muted")
    head = html.Thead(html.Tr([html.Th(t("meter_settings.setting", lang)), html.Th(t("meter_settings.ours", lang)),
                               html.Th(t("meter_settings.meters", lang)), html.Th("")]))
    rows = []
    for field in METER_FIELDS:
        differs = field in view.differs
        mark = (dbc.Badge(t("meter_settings.differs", lang), color="warning", text_color="dark") if differs
                else dbc.Badge(t("meter_settings.same", lang), color="success") if view.read is not None else "")
        rows.append(html.Tr([html.Th(t(f"meter_settings.{field}", lang), scope="row", className="fw-normal"),
                             html.Td(_value(field, view.ours)), html.Td(_value(field, view.read)), html.Td(mark)],
                            className="table-warning" if differs else None))
    source = t("meter_settings.from_meter" if view.ours_from == "meter" else "meter_settings.from_site", lang,
               operator=view.operator or "—", at=_when(view.updated_at, zone))
    read = (t("meter_settings.read_at", lang, at=_when(view.read_at, zone)) if view.read is not None
            else t("meter_settings.never_read", lang))
    push = (t("meter_settings.push_state", lang, state=t(f"meter_settings.state.{view.push_state}", lang))
            if view.push_state else "")
    return html.Div([
        html.H2(t("meter_settings.meter", lang, meter=view.meter), className="h6"),
        dbc.Table([head, html.Tbody(rows)], size="sm", className="mb-2"),
        html.P([source, html.Br(), read, html.Br() if push else None, push], className="small text-muted"),
    ])


def meter_settings_page(meter: str, view, lang: str, zone, *, may_push: bool) -> html.Div:
    defaults = view.ours if view is not None else None
    form = []
    if may_push:
        form = [html.H2(t("meter_settings.push_heading", lang), className="h6 mt-3"),
                dbc.Row([dbc.Col([dbc.Label(t(f"meter_settings.{f}", lang), html_for=_INPUT[f], className="small mb-1"),
                                  dbc.Input(id=_INPUT[f], type="text", inputMode="decimal", maxLength=40,
                                            value="" if defaults is None else str(getattr(defaults, f)))],
                                 xs=12, md=4, className="mb-2") for f in METER_FIELDS]),
                dbc.Button(t("meter_settings.push", lang), id=MID.PUSH, color="primary", className="mb-2"),
                html.P(t("meter_settings.push_hint", lang), className="small text-muted")]
    return html.Div([
        html.H1(t("meter_settings.heading", lang), className="h4"),
        dbc.Row([dbc.Col(dbc.Input(id=MID.METER, type="text", inputMode="numeric", maxLength=12, value=meter,
                                   placeholder=t("meter_settings.meter_placeholder", lang)), xs=8, md=4),
                 dbc.Col(dbc.Button(t("meter_settings.show", lang), id=MID.SHOW, color="secondary"), xs=4, md=2)],
                className="mb-3 g-2"),
        html.Div(settings_table(view, lang, zone), id=MID.TABLE),
        *form,
        html.Div(id=MID.RESULT, role="status"),
    ], id=MID.PAGE, className="container-fluid py-3")


def _shown(field: str, params) -> str:
    value = getattr(params, field)
    if value is None:
        return ""
    if field == "alarm_numbers":
        return ", ".join(value)
    if isinstance(value, float):
        return str(int(value)) if value == int(value) else str(value)
    return str(value)


def parameters_page(params, tariffs: list[tuple[int, str]], lang: str) -> html.Div:
    """One input per parameter, prefilled with the value in force."""
    cols = []
    for field in PARAMETER_FIELDS:
        ident = PID.field(field)
        if field == "default_tariff_id":
            control = dcc.Dropdown(id=ident, options=[{"label": name, "value": str(tid)} for tid, name in tariffs],
                                   value=_shown(field, params) or None, clearable=True)
        elif field == "alarm_numbers":
            control = dbc.Textarea(id=ident, value=_shown(field, params), maxLength=500, rows=2)
        else:
            control = dbc.Input(id=ident, type="text", inputMode="decimal", maxLength=40, value=_shown(field, params))
        cols.append(dbc.Col([dbc.Label(t(f"parameters.{field}", lang), html_for=ident, className="small mb-1"),
                             control, dbc.FormText(t(f"parameters.hint.{field}", lang))], xs=12, md=6, className="mb-3"))
    return html.Div([
        html.H1(t("parameters.heading", lang), className="h4"),
        html.P(t("parameters.intro", lang), className="text-muted small"),
        dbc.Row(cols),
        dbc.Button(t("parameters.save", lang), id=PID.SAVE, color="primary", className="mb-2"),
        html.Div(id=PID.RESULT, role="status"),
    ], id=PID.PAGE, className="container-fluid py-3")
