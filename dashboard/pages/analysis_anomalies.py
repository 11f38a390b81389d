"""Energy anomalies (/analysis/anomalies): rooms far above their floor's typical use, night-time base load and
meters whose register stopped while power flows (energy.analysis.anomalies), listed in a grid; the row selected
shows that meter's curve over the range."""
from __future__ import annotations


import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.analysis import load_figure
from dashboard.components.analysis_layout import (BadQuery, data_grid, default_days, field, place_text,
                                                  read_range)
from dashboard.components.grid import NUMBER_COLUMN
from dashboard.i18n import request_lang, t
from dashboard.ids import AnalysisAnomalies as ID
from dashboard.services import billing, runtime, site_zone
from energy.analysis import Place, anomalies, energy_report
from energy.insights import load_grain

dash.register_page(__name__, path=access.ANALYSIS_ANOMALIES.path, title="Wattline", name="analysis_anomalies")
MAX_DAYS = 92
KINDS = ("high_use", "night_base", "stopped_register")


def _z(value) -> float | None:
    try:
        z = float(str(value).strip().replace(",", ".")) if value not in (None, "") else None
    except ValueError:
        return None
    return z if z is not None and 1 <= z <= 20 else None


def _rows(found: dict, lang: str) -> list[dict]:
    rows = []
    for kind in KINDS:
        for r in found[kind].to_dict("records"):
            if kind == "high_use":
                value = t("analysis.anomalies.kwh_per_day", lang, value=f"{r['kwh_per_day']:,.2f}")
            elif kind == "night_base":
                value = t("analysis.anomalies.night_kw", lang, value=f"{r['night_kw']:,.3f}")
            else:
                value = t("analysis.anomalies.stopped", lang, power=f"{r['power_kw']:,.2f}",
                          register=f"{r['energy_total']:,.2f}", expected=f"{r['expected_kwh']:,.2f}")
            z = r.get("z")
            rows.append({"kind": t(f"analysis.anomalies.{kind}", lang), "place": place_text(r, lang),
                         "meter": r["meter"], "value": value,
                         "typical": None if pd.isna(r.get("floor_median", float("nan"))) else round(
                             float(r["floor_median"]), 3),
                         "z": None if z is None or pd.isna(z) else round(float(z), 1)})
    return rows


def _columns(lang: str) -> list[dict]:
    return [{"field": "kind", "headerName": "", "cellDataType": "text"},
            {"field": "place", "headerName": t("analysis.anomalies.col_place", lang), "cellDataType": "text"},
            {"field": "meter", "headerName": t("analysis.anomalies.col_meter", lang), "cellDataType": "text"},
            {"field": "value", "headerName": t("analysis.anomalies.col_value", lang), "cellDataType": "text"},
            {"field": "typical", "headerName": t("analysis.anomalies.col_typical", lang), **NUMBER_COLUMN},
            {"field": "z", "headerName": t("analysis.anomalies.col_z", lang), **NUMBER_COLUMN}]


def _found(first, last, z):
    lang = request_lang()
    first_day, last_day = read_range(first, last, MAX_DAYS, lang)
    limit = _z(z)
    if limit is None:
        raise BadQuery(t("analysis.anomalies.bad_z", lang))
    return _rows(anomalies(runtime().engine, site_zone(), first_day, last_day, z_limit=limit), lang)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ANALYSIS_ANOMALIES, lang)
    if denied is not None:
        return denied
    ctx = billing()
    days = default_days(ctx.local(ctx.now()).date(), days=7)
    z = runtime().cfg.analytics.z_limit
    rows = _found(days["from"], days["to"], z)
    return html.Div([
        html.H1(t("analysis.anomalies.heading", lang), className="h4"),
        html.P(t("analysis.anomalies.help", lang, z=f"{z:g}"), className="small text-muted"),
        dbc.Row([
            field(t("analysis.from", lang), dbc.Input(id=ID.FROM, type="date", value=days["from"]), ID.FROM,
                  xs=6, md=2),
            field(t("analysis.to", lang), dbc.Input(id=ID.TO, type="date", value=days["to"]), ID.TO, xs=6, md=2),
            field(t("analysis.anomalies.z_limit", lang), dbc.Input(id=ID.Z, type="text", inputMode="decimal",
                                                                  value=f"{z:g}"), ID.Z, xs=6, md=2),
            dbc.Col(dbc.Button(t("analysis.query", lang), id=ID.QUERY, color="primary"), xs=6, md=2,
                    className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(None if rows else t("analysis.anomalies.none", lang), id=ID.RESULT, role="status",
                 className="small"),
        data_grid(ID.GRID, rows, _columns(lang), lang, height="40vh", select_row=True),
        dcc.Graph(id=ID.CURVE, figure=load_figure(pd.DataFrame(columns=["period", "kw", "estimated"]), lang),
                  config={"displaylogo": False, "responsive": True}),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("analysis.anomalies.query", P.REPORT_VIEW, Output(ID.GRID, "rowData"),
                  Output(ID.RESULT, "children"), Input(ID.QUERY, "n_clicks"), State(ID.FROM, "value"),
                  State(ID.TO, "value"), State(ID.Z, "value"), changes_state=False, prevent_initial_call=True)
def query(n_clicks, first, last, z):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        rows = _found(first, last, z)
    except BadQuery as exc:
        return no_update, html.Span(str(exc), className="text-danger")
    return rows, None if rows else t("analysis.anomalies.none", lang)


@guarded_callback("analysis.anomalies.curve", P.REPORT_VIEW, Output(ID.CURVE, "figure"),
                  Input(ID.GRID, "selectedRows"), State(ID.FROM, "value"), State(ID.TO, "value"),
                  changes_state=False, prevent_initial_call=True)
def curve(selected, first, last):
    lang = request_lang()
    row = selected[0] if isinstance(selected, list) and selected and isinstance(selected[0], dict) else None
    meter = inputs.key_text(row.get("meter"), 12) if row else None
    try:
        first_day, last_day = inputs.day(first), inputs.day(last)
    except inputs.BadValue:
        raise PreventUpdate from None
    if meter is None or first_day is None or last_day is None or first_day > last_day or \
            (last_day - first_day).days + 1 > MAX_DAYS:
        raise PreventUpdate
    grain = load_grain((last_day - first_day).days + 1)
    df = energy_report(runtime().engine, site_zone(), first_day, last_day, by=grain, group="meter",
                       place=Place(meters=(meter,)), kinds=("prepaid", "master", "terminal"))
    hours = {"15min": 0.25, "hour": 1.0, "day": 24.0}[grain]
    fig = load_figure(pd.DataFrame({"period": df["period"], "kw": df["energy_kwh"] / hours,
                                    "estimated": df["estimated"]}), lang)
    fig.update_layout(title=dict(text=t("analysis.anomalies.curve", lang, meter=meter), font=dict(size=13)),
                      margin=dict(t=40))
    return fig
