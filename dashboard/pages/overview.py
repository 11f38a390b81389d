"""Overview (managers): KPI cards and the live meter map, with one meter's side panel.

Layout built per request (language, query filters: ?building=&floor=&state=&q=). The map's tiles
are in the layout; the tick reads meter_state (never the devices) and patches only the tiles
whose state changed since the browser's version (dcc.Store), so a 10,000-meter map never reloads.
"""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, clientside_callback, ctx, dcc, html, no_update
from flask import current_app

from core import permissions as P
from core.config import site_zone
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.overview import (
    filter_bar, kpi_cards, legend, map_buildings, panel_body, panel_title, tile_map, tile_patch, updated_text,
)
from dashboard.i18n import request_lang, t
from dashboard.ids import Overview as ID
from dashboard.overview_data import TICK_MS, TileFilter, meter_panel, refresh, utcnow
from storage.overview import MAP_STATES

VIEW = P.METER_VIEW
SELL = P.SALE_CREATE  # the side panel links to the cashier desk for operators who may sell
dash.register_page(__name__, path="/", title="Wattline", name="overview")


def _services():
    """(engine, site time zone) of the running site."""
    services = current_app.config["WATTLINE_SERVICES"]
    return services.engine, site_zone(services.cfg.timezone)


def layout(**query):
    lang = request_lang()
    denied = forbidden_page(access.OVERVIEW, lang)
    if denied is not None:
        return denied
    engine, zone = _services()
    flt = TileFilter.from_inputs(query.get("building"), query.get("floor"), query.get("q"))
    state = query.get("state") if query.get("state") in MAP_STATES else None
    r = refresh(engine, flt, None, utcnow(), zone, force=True)
    return dbc.Container([
        html.Div([
            html.H1(t("overview.heading", lang), className="h4 mb-0 me-3"),
            html.Span(t("overview.live", lang, seconds=TICK_MS // 1000), className="text-muted small me-3"),
            html.Span(updated_text(r.kpis.get("last_seen"), lang), id=ID.UPDATED, className="text-muted small"),
        ], className="d-flex flex-wrap align-items-baseline mb-2"),
        dbc.Row(kpi_cards(r.kpis, lang), id=ID.KPIS, className="g-2 mb-3"),
        html.H2(t("overview.map_heading", lang), className="h5"),
        filter_bar(r.buildings, r.floors, lang, flt.building, flt.floor, state, flt.search),
        html.Ul(legend(r.kpis["states"], lang), id=ID.LEGEND, className="ov-legend",
                **{"aria-label": t("overview.legend", lang)}),
        tile_map(r.tiles, lang, state),
        dcc.Store(id=ID.STORE, data=r.store()),
        dcc.Store(id=ID.VERSION, data=r.version),
        dcc.Interval(id=ID.INTERVAL, interval=TICK_MS),
        dbc.Offcanvas(html.Div(id=ID.PANEL_BODY), id=ID.PANEL, placement="end", is_open=False, backdrop=False,
                      scrollable=True, className="ov-panel", title=""),
    ], fluid=True, id=ID.PAGE)


# ---------------------------------------------------------------------------------------------
# Callbacks: wiring only

@guarded_callback(
    "overview.refresh", VIEW,
    Input(ID.INTERVAL, "n_intervals"), Input(ID.BUILDING, "value"), Input(ID.FLOOR, "value"),
    Input(ID.SEARCH, "value"), State(ID.STORE, "data"),
    output={"tiles": Output(ID.MAP, "buildings"), "store": Output(ID.STORE, "data"),
            "kpis": Output(ID.KPIS, "children"), "legend": Output(ID.LEGEND, "children"),
            "version": Output(ID.VERSION, "data"), "updated": Output(ID.UPDATED, "children")},
    changes_state=False, prevent_initial_call=True,
)
def refresh_overview(_tick, building, floor, search, store):
    """A tick patches the tiles that changed; a filter change redraws the map."""
    lang = request_lang()
    engine, zone = _services()
    force = ctx.triggered_id not in (None, ID.INTERVAL)
    r = refresh(engine, TileFilter.from_inputs(building, floor, search), store, utcnow(), zone, force=force)
    if r.mode == "same":
        return dict.fromkeys(("tiles", "store", "kpis", "legend", "version", "updated"), no_update)
    if r.mode == "patch":
        tiles = tile_patch(r.tiles, r.positions, r.changed) if r.changed else no_update
    else:
        tiles = map_buildings(r.tiles, lang)
    return {"tiles": tiles, "store": r.store(store), "kpis": kpi_cards(r.kpis, lang),
            "legend": legend(r.kpis["states"], lang), "version": r.version,
            "updated": updated_text(r.kpis.get("last_seen"), lang)}


# The state filter only hides tiles (assets/overview.css), so it never needs the server.
clientside_callback(
    "function (state) { return state && state !== '*' ? 'ov-map only-' + state : 'ov-map'; }",
    Output(ID.MAP, "className"), Input(ID.STATE, "value"), prevent_initial_call=True,
)


@guarded_callback(
    "overview.meter", VIEW,
    Input(ID.MAP, "selected"), Input(ID.VERSION, "data"), State(ID.PANEL, "is_open"),
    output={"open": Output(ID.PANEL, "is_open"), "title": Output(ID.PANEL, "title"),
            "body": Output(ID.PANEL_BODY, "children")},
    changes_state=False, prevent_initial_call=True,
)
def show_meter(selected, _version, is_open):
    """A tile click opens the panel; while it is open, new data refreshes it."""
    if not selected or (ctx.triggered_id == ID.VERSION and not is_open):
        return {"open": no_update, "title": no_update, "body": no_update}
    lang = request_lang()
    engine, zone = _services()
    meter_id = inputs.record_id(inputs.mapping(selected).get("meter"))  # the tile's {"meter": id}
    detail, curve, commands = meter_panel(engine, meter_id, utcnow()) if meter_id else (None, None, None)
    if detail is None:
        return {"open": True, "title": "", "body": html.P(t("overview.unknown_meter", lang), className="text-muted")}
    return {"open": True, "title": panel_title(detail),
            "body": panel_body(detail, curve, commands, lang, zone, may_sell=allowed(SELL),
                               may_control=access.CONTROL.open_to(allowed))}
