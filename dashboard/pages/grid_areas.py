"""Transformer areas live (/grid/areas, 台区监测): every area with its terminal's load, phase voltages against the
band, tap, open alarms and link, read again every few seconds; each area links to its own page (/grid/area)."""
from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.grid_area import TICK_MS, areas_table
from dashboard.i18n import request_lang, t
from dashboard.ids import GridAreas as ID
from dashboard.services import runtime, site_zone
from grid.telemetry import area_overview

dash.register_page(__name__, path=access.GRID_AREAS.path, title="Wattline", name="grid_areas")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.GRID_AREAS, lang)
    if denied is not None:
        return denied
    return html.Div([
        html.H1(t("grid_area.list_heading", lang), className="h4"),
        html.P(t("grid_area.list_help", lang, seconds=TICK_MS // 1000), className="small text-muted"),
        html.Div(areas_table(area_overview(runtime().engine), site_zone(), lang), id=ID.UPDATED),
        dcc.Interval(id=ID.TICK, interval=TICK_MS),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("grid.areas.refresh", access.GRID_AREAS, Output(ID.UPDATED, "children"),
                  Input(ID.TICK, "n_intervals"), changes_state=False, prevent_initial_call=True)
def refresh(_tick):
    return areas_table(area_overview(runtime().engine), site_zone(), request_lang())
