"""Overview builders: KPI cards, the state legend, the filter bar, the live meter map and its tile patches,
and the side panel of one meter. Pure: data in, components (or a dash.Patch) out.

Accessibility: a tile's colour always comes with a symbol (assets/overview.css, the same in the
legend) and an aria-label naming room, meter and state; tiles are buttons, so they take focus.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import quote

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Patch, dcc, html

from billing.control import CANCELLED
from core.clock import show_local, site_time
from core.formatting import format_energy, format_money
from dashboard.components.figures import power_curve_figure
from dashboard.components.tilemap import TileMap
from dashboard.i18n import catalog, t
from dashboard.ids import Overview as ID
from storage.overview import MAP_STATES, STATE_CODE


def state_label(state: str, lang: str) -> str:
    return t(f"overview.state_{state}", lang)


# ---------------------------------------------------------------------------------------------
# KPI cards and legend

def _kpi(label: str, value, ident: str, hint: str | None = None, state: str | None = None,
         tip: str | None = None) -> dbc.Col:
    mark = html.Span(className=f"ov-swatch st-{state} me-1", **{"aria-hidden": "true"}) if state else None
    # a value with a tooltip takes focus, so the keyboard shows the tooltip too; screen readers get it as its label
    focus = {"tabIndex": "0", "aria-label": f"{label}: {value}. {tip}"} if tip else {}
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div([mark, label], className="text-muted small text-truncate"),
        html.Div([html.Span(value, id=ID.kpi(ident), className="fs-4 fw-semibold", **focus),
                  html.Span(f" {hint}" if hint else "", className="text-muted small")]),
        dbc.Tooltip(tip, target=ID.kpi(ident), id=ID.kpi_tip(ident), placement="bottom") if tip else None,
    ], className="py-2 px-3")), xs=6, md=3, xl=True, className="ov-kpi")


def sales_tip(sales: dict, lang: str) -> str:
    """What today's net sales are made of: gross sales, refunds and reversals (signed, as the records show them)."""
    zero = Decimal("0.00")
    return t("overview.kpi_sales_tip", lang, gross=format_money(sales.get("sale", zero)),
             refunds=format_money(sales.get("refund", zero), sign=True),
             reversals=format_money(sales.get("reversal", zero), sign=True),
             net=format_money(sales.get("net", zero)))


def kpi_cards(k: dict, lang: str) -> list:
    states = k.get("states", {})
    energy = k.get("energy_today_kwh", 0.0) or 0.0
    sales = k.get("sales_today") or {}
    return [
        _kpi(t("overview.kpi_online", lang), f"{k.get('online', 0):,}", "online",
             t("overview.of_total", lang, total=f"{k.get('meters', 0):,}")),
        _kpi(t("overview.kpi_lost", lang), f"{k.get('lost', 0):,}", "lost", state="lost"),
        _kpi(t("overview.kpi_alarm1", lang), f"{states.get('alarm1', 0):,}", "alarm1", state="alarm1"),
        _kpi(t("overview.kpi_alarm2", lang), f"{states.get('alarm2', 0):,}", "alarm2", state="alarm2"),
        _kpi(t("overview.kpi_arrears", lang), f"{states.get('arrears', 0):,}", "arrears", state="arrears"),
        _kpi(t("overview.kpi_gateways", lang), f"{k.get('gateways_online', 0):,}", "gateways",
             t("overview.of_total", lang, total=f"{k.get('gateways', 0):,}")),
        _kpi(t("overview.kpi_sales", lang), format_money(sales.get("net", Decimal("0.00"))), "sales",
             tip=sales_tip(sales, lang)),
        _kpi(t("overview.kpi_energy", lang), format_energy(energy, 1, unit=False), "energy"),
    ]


def legend(counts: dict[str, int], lang: str) -> list:
    """The six map states with their colour, symbol, name and how many meters are in each."""
    return [html.Li([html.Span(className=f"ov-swatch st-{s}", **{"aria-hidden": "true"}),
                     html.Span(state_label(s, lang)),
                     html.Span(f"{counts.get(s, 0):,}", className="badge text-bg-light ms-1",
                               id=ID.legend_count(s))],
                    className="ov-legend-item")
            for s in MAP_STATES]


def updated_text(last_seen: dt.datetime | None, lang: str) -> str:
    when = show_local(last_seen) if last_seen else t("overview.never_read", lang)
    return t("overview.updated", lang, time=when)


# ---------------------------------------------------------------------------------------------
# Filters

ALL = "*"  # the "all buildings / floors / states" choice of a filter select (TileFilter reads it)


def filter_bar(buildings: list[str], floors: list[int], lang: str, building: str | None = None,
               floor: int | None = None, state: str | None = None, search: str = "") -> dbc.Row:
    def select(ident, label, options, value, all_label):
        return dbc.Col([
            dbc.Label(label, html_for=ident, className="visually-hidden"),
            dbc.Select(id=ident, options=[{"label": all_label, "value": ALL}, *options],
                       value=ALL if value is None else str(value), size="sm"),
        ], xs=6, md=3, lg=2)
    return dbc.Row([
        select(ID.BUILDING, t("overview.filter_building", lang), [{"label": b, "value": b} for b in buildings],
               building, t("overview.all_buildings", lang)),
        select(ID.FLOOR, t("overview.filter_floor", lang),
               [{"label": t("overview.floor", lang, n=f), "value": str(f)} for f in floors],
               floor, t("overview.all_floors", lang)),
        select(ID.STATE, t("overview.filter_state", lang),
               [{"label": state_label(s, lang), "value": s} for s in MAP_STATES],
               state, t("overview.all_states", lang)),
        dbc.Col([
            dbc.Label(t("overview.search", lang), html_for=ID.SEARCH, className="visually-hidden"),
            dbc.Input(id=ID.SEARCH, type="search", value=search, debounce=True, size="sm",
                      placeholder=t("overview.search", lang)),
        ], xs=6, md=3, lg=3),
    ], className="g-2 mb-2", id=ID.FILTERS)


def map_class(state: str | None) -> str:
    """The map's CSS class: a state filter only hides the other tiles, so ticks keep patching.
    (The same rule runs in the browser: the state select's clientside callback.)"""
    return f"ov-map only-{state}" if state in MAP_STATES else "ov-map"


# ---------------------------------------------------------------------------------------------
# The meter map: one TileMap component (dashboard/components/tilemap.py). Its `buildings` prop:
#   buildings[b] = {"name", "floors"};  floors[f] = {"label", "tiles"};  tiles[k] = [id, room, address, code]

def _tile(meter_id, room, address, state) -> list:
    return [int(meter_id), str(room), str(address), STATE_CODE[state]]


def _floor_label(floor, lang: str) -> str:
    if floor is None or pd.isna(floor):
        return t("overview.no_floor", lang)
    return t("overview.floor", lang, n=int(floor))


def map_buildings(tiles: pd.DataFrame, lang: str) -> list[dict]:
    """The map's buildings -> floors -> tiles, for tiles in map order (overview_data.tile_frame)."""
    buildings: list[dict] = []
    floors: list[dict] = []
    current: list = []
    current_b, current_f = object(), object()
    for meter_id, building, floor, room, address, state in zip(
            tiles["meter_id"].tolist(), tiles["building"].tolist(), tiles["floor"].tolist(),
            tiles["room"].tolist(), tiles["address"].tolist(), tiles["state"].tolist()):
        if building != current_b:
            floors = []
            buildings.append({"name": building, "floors": floors})
            current_b, current_f = building, object()
        if floor != current_f:
            current = []
            floors.append({"label": _floor_label(floor, lang), "tiles": current})
            current_f = floor
        current.append(_tile(meter_id, room, address, state))
    return buildings


def tile_map(tiles: pd.DataFrame, lang: str, state: str | None = None) -> TileMap:
    return TileMap(id=ID.MAP, buildings=map_buildings(tiles, lang), className=map_class(state),
                   labels={STATE_CODE[s]: state_label(s, lang) for s in MAP_STATES},
                   template=t("overview.tile_label", lang, room="{room}", address="{address}", state="{state}"),
                   emptyText=t("overview.no_tiles", lang), ariaLabel=t("overview.map_heading", lang))


def tile_patch(tiles: pd.DataFrame, positions: np.ndarray, changed: list[int]) -> Patch:
    """A Patch of the map's `buildings` replacing only the tiles at `changed` (indices in map order)."""
    patch = Patch()
    cols = [tiles[c].to_numpy() for c in ("meter_id", "room", "address", "state")]
    for i in changed:
        b, f, k = (int(x) for x in positions[i])
        patch[b]["floors"][f]["tiles"][k] = _tile(*(c[i] for c in cols))
    return patch


# ---------------------------------------------------------------------------------------------
# Side panel: one meter

def _fmt(value, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{value:{spec}}{unit}"


def _relay_text(closed, lang: str) -> str:
    if closed is None:
        return "—"
    return t("overview.relay_closed" if closed else "overview.relay_open", lang)


def panel_title(d: dict) -> str:
    return f"{d.get('room') or d.get('building') or ''} · {d['address']}".strip(" ·")


def panel_body(d: dict, curve: pd.DataFrame, commands: pd.DataFrame, lang: str, zone: dt.tzinfo, *,
               may_sell: bool = False, may_control: bool = False) -> list:
    """Latest readings, balance, relay, a 24-hour power curve and recent commands of one meter; with
    `may_sell` (the operator holds sale.create) a room's meter gets a link to the cashier desk; with `may_control`
    (relay.command or relay.batch) a link to the control page with this meter alone."""
    state = d["state"]
    last_seen = site_time(d.get("last_seen"), zone)
    balance = d.get("balance")
    facts = [
        (t("overview.balance", lang), format_money(balance), ID.PANEL_BALANCE),
        (t("overview.relay", lang), _relay_text(d.get("relay_closed"), lang), ID.PANEL_RELAY),
        (t("overview.last_seen", lang), show_local(last_seen), None),
        (t("overview.voltage", lang), _fmt(d.get("voltage_a"), ".1f", " V"), None),
        (t("overview.current", lang), _fmt(d.get("current_a"), ".2f", " A"), None),
        (t("overview.power", lang), _fmt(d.get("power_total"), ".3f", " kW"), None),
        (t("overview.pf", lang), _fmt(d.get("pf_total"), ".2f"), None),
        (t("overview.frequency", lang), _fmt(d.get("frequency"), ".2f", " Hz"), None),
        (t("overview.energy_total", lang), format_energy(d.get("energy_total")), None),
        (t("overview.wiring", lang), t("overview.wiring_value", lang, gateway=d.get("gateway") or "—",
                                       bus=d.get("bus_no") or "—", unit=d.get("unit") or "—"), None),
        (t("overview.profile", lang), d.get("profile") or "—", None),
    ]
    rows = [html.Tr([html.Th(k, scope="row", className="fw-normal text-muted"),
                     html.Td(v, id=ident) if ident else html.Td(v)]) for k, v, ident in facts]
    if d.get("last_error"):
        rows.append(html.Tr([html.Th(t("overview.last_error", lang), scope="row", className="fw-normal text-muted"),
                             html.Td(d["last_error"], className="small text-break")]))
    curve_local = curve.assign(ts=site_time(curve["ts"], zone)) if not curve.empty else curve
    return [
        html.Div([html.Span(className=f"ov-swatch st-{state} me-1", **{"aria-hidden": "true"}),
                  html.Span(state_label(state, lang), id=ID.PANEL_STATE, className="fw-semibold")],
                 className="mb-2"),
        html.Div(t("overview.location", lang, building=d.get("building") or "—",
                   floor=_floor_label(d.get("floor"), lang)), className="text-muted small mb-2"),
        *([dbc.Button([html.I(className="bi bi-cash-coin me-1"), t("overview.sell_link", lang)],
                      href=f"/sell?meter={quote(str(d['address']))}", id=ID.PANEL_SELL, color="success",
                      size="sm", className="mb-2")] if may_sell and d.get("room") else []),
        dbc.Button([html.I(className="bi bi-sliders me-1"), t("meter_settings.settings_link", lang)],
                   href=f"/meter-settings?meter={quote(str(d['address']))}", id=ID.PANEL_SETTINGS, color="secondary",
                   outline=True, size="sm", className="mb-2 ms-1"),
        *([dbc.Button([html.I(className="bi bi-toggles me-1"), t("control.one_meter", lang)],
                      href=f"/control?meter={quote(str(d['address']))}", id=ID.PANEL_CONTROL, color="secondary",
                      outline=True, size="sm", className="mb-2 ms-1")] if may_control else []),
        dbc.Table(html.Tbody(rows), size="sm", className="mb-3", borderless=True),
        html.H3(t("overview.curve", lang), className="h6"),
        dcc.Graph(figure=power_curve_figure(curve_local, lang), config={"displayModeBar": False, "responsive": True},
                  id=ID.PANEL_CURVE, className="mb-3"),
        html.H3(t("overview.commands", lang), className="h6"),
        _commands_table(commands, lang, zone),
    ]


def _commands_table(commands: pd.DataFrame, lang: str, zone: dt.tzinfo):
    if commands.empty:
        return html.P(t("overview.no_commands", lang), className="text-muted small")
    head = html.Thead(html.Tr([html.Th(t(f"overview.cmd_{c}", lang)) for c in ("time", "kind", "state", "operator")]))
    body = []
    for r in commands.to_dict("records"):
        when = show_local(site_time(r["created_at"], zone), "short")
        state, result = r["state"], f" ({r['result']})" if r.get("result") else ""
        if state == "expired" and r.get("result") == CANCELLED:   # cancelled by an operator before it was sent
            state, result = "cancelled", ""
        body.append(html.Tr([html.Td(when), html.Td(_word("command.kind", r["kind"], lang)),
                             html.Td(f"{_word('cashier.state', state, lang)}{result}"),
                             html.Td(r.get("operator") or "—")]))
    return dbc.Table([head, html.Tbody(body)], size="sm", className="small", striped=True)


def _word(section: str, code, lang: str) -> str:
    """A command's kind or state in words; a code the catalog does not know yet as it is."""
    return catalog(lang).get(f"{section}.{code}", str(code))
