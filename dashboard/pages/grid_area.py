"""One transformer area live (/grid/area?id=, 台区监测): its terminal's telemetry (遥测) per phase and in total, the
signals (遥信: door, smoke, water, changeover, outlet breakers), the link, the area's open alarms, read again every
few seconds; trends over up to a week of the terminal's polls, thinned on the server to a point budget per line
(MinMaxLTTB), a zoom fetching the window's finer points; the controls (遥控, 遥调) through grid.control with a
confirmation and a reason, the action log, and the cameras (遥视) as links."""
from __future__ import annotations

import datetime as dt
import re

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from billing.errors import BillingError
from core import permissions as P
from core.clock import utc_time, utcnow
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.grid_area import (ACTION_KEYS as ACTION_WORDS, CONTROLS, TICK_MS, TREND_BUDGET, TREND_HEIGHT,
                                            actions_table, alarms_list, cameras_list,
                                            confirm_dialog, confirm_text, controls_panel, fmt, live_panel,
                                            range_options, signals_panel, trends_figure)
from dashboard.i18n import request_lang, t
from dashboard.ids import GridArea as ID
from dashboard.services import actor, billing, runtime, site_zone
from grid import control
from grid.telemetry import (DEFAULT_RANGE, RANGES, TREND_MAX, TelemetryError, area_live, area_trends, find_area,
                            trend_window)
from storage import grid as store

dash.register_page(__name__, path=access.GRID_AREA.path, title="Wattline", name="grid_area")
VIEW = access.GRID_AREA


def _area_choices() -> list[tuple[int, str]]:
    with runtime().engine.connect() as conn:
        areas = store.areas(conn)
    return [(int(r.id), str(r.name)) for r in areas.itertuples()]


def _cameras(area_id: int) -> list[dict]:
    try:   # G3's registry (grid.areas.cameras); a site without it shows none
        from grid.areas import cameras
    except ImportError:
        return []
    return cameras(runtime().engine, area_id)


def _may() -> dict[str, bool]:
    """Which controls the operator's role may use (the buttons of the others are disabled; grid.control decides)."""
    return {"control": allowed(P.GRID_CONTROL), "adjust": allowed(P.GRID_ADJUST)}


def _control_state(area_id: int) -> dict | None:
    try:
        return control.control_state(billing(), area_id)
    except BillingError:
        return None


def _controls(area_id: int):
    return controls_panel(_control_state(area_id), _may(), request_lang())


def _actions(area_id: int, lang: str):
    try:
        return actions_table(control.actions(billing(), area_id, 20, lang), lang)
    except BillingError:
        return actions_table(None, lang)


def _window_data(window: tuple[dt.datetime, dt.datetime]) -> dict:
    return {"start": window[0].isoformat(), "end": window[1].isoformat()}


def _read_window(data) -> tuple[dt.datetime, dt.datetime] | None:
    if not isinstance(data, dict):
        return None
    try:
        start, end = (dt.datetime.fromisoformat(str(data.get(k))[:32]) for k in ("start", "end"))
    except (TypeError, ValueError):
        return None
    if start.tzinfo or end.tzinfo or not start < end or end - start > TREND_MAX:
        return None
    return start, end


def _trends(area: dict, window, lang: str):
    """The figure and the line under it for the area's trends over `window` (naive UTC)."""
    frame = area_trends(runtime().engine, area, *window)
    fig = trends_figure(frame, (area["band_low"], area["band_high"]), site_zone(), lang, window=window)
    note = t("grid_area.trend_note", lang, n=f"{len(frame):,}", budget=f"{TREND_BUDGET:,}")
    return fig, note


def layout(id=None, range=None, **_query):   # noqa: A002  (the page's query: ?id=&range=)
    lang = request_lang()
    denied = forbidden_page(VIEW, lang)
    if denied is not None:
        return denied
    choices = _area_choices()
    if id is None and choices:
        id = choices[0][0]
    live = area_live(runtime().engine, id) if id is not None else None
    picker = dbc.DropdownMenu([dbc.DropdownMenuItem(name, href=f"/grid/area?id={aid}") for aid, name in choices],
                              label=t("grid_area.pick", lang), size="sm", color="secondary", className="mb-2")
    if live is None:
        return html.Div([html.H1(t("grid_area.heading", lang), className="h4"), picker,
                         dbc.Alert(t("grid_area.unknown_area", lang), color="warning"),
                         html.A(t("grid_area.to_list", lang), href=access.GRID_AREAS.path)],
                        className="container-fluid", id=ID.PAGE)
    area, zone = live.area, site_zone()
    range_key = range if isinstance(range, str) and range in RANGES else DEFAULT_RANGE
    window = trend_window(utcnow(), range_key)
    fig, note = _trends(area, window, lang)
    nameplate = t("grid_area.nameplate", lang, rating=fmt(area["rating_kva"], 0), nominal=fmt(area["nominal_voltage"], 0),
                  group=area["connection_group"] or "—", terminal=area["terminal_address"] or "—")
    return html.Div([
        html.Div([html.H1(area["name"], className="h4 mb-0 me-2"),
                  html.Span(area["building"] or "", className="text-muted me-2"), picker],
                 className="d-flex flex-wrap align-items-baseline gap-1"),
        html.P([nameplate, " · ", t("grid_area.live_every", lang, seconds=TICK_MS // 1000), " · ",
                html.A(t("grid_area.to_list", lang), href=access.GRID_AREAS.path)], className="small text-muted"),
        html.Div(signals_panel(live, zone, lang), id=ID.SIGNALS, className="mb-2"),
        html.Div(live_panel(live, lang), id=ID.LIVE),
        dbc.Row([
            dbc.Col([html.H2(t("grid_area.alarms", lang), className="h6"),
                     html.Div(alarms_list(live.alarms, zone, lang), id=ID.ALARMS)], xs=12, md=8),
            dbc.Col([html.H2(t("grid_area.cameras", lang), className="h6"),
                     html.Div(cameras_list(_cameras(int(area["id"])), lang), id=ID.CAMERAS)], xs=12, md=4),
        ], className="g-2 mb-2"),
        html.Div(_controls(int(area["id"])), id=ID.CONTROLS),
        html.Div(id=ID.CONTROL_RESULT, role="status", className="mt-1"),
        html.H2(t("grid_area.trends", lang), className="h5 mt-2"),
        dbc.Row([dbc.Col(dbc.Select(id=ID.RANGE, value=range_key, options=range_options(lang)), xs=6, md=2),
                 dbc.Col(html.Span(note, id=ID.TREND_NOTE, className="small text-muted"), xs=12, md=10,
                         className="d-flex align-items-center")], className="g-2 mb-1"),
        # responsive: the charts follow the box's width when the window changes (a phone turned sideways); the
        # box keeps the figure's height (a responsive graph takes its height from its box, not the figure). Load
        # costs what it did without (measured in Chromium: one Plotly.react and two size checks, then one resize
        # a rotation)
        dcc.Graph(id=ID.CHART, figure=fig, responsive=True,
                  config={"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]},
                  style={"width": "100%", "height": f"{TREND_HEIGHT}px"}),
        html.Div(_actions(int(area["id"]), lang), id=ID.ACTIONS),
        confirm_dialog(lang),
        dcc.Store(id=ID.PENDING),
        dcc.Store(id=ID.AREA, data=int(area["id"])),
        dcc.Store(id=ID.APPLIED, data=_window_data(window)),
        dcc.Interval(id=ID.TICK, interval=TICK_MS),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("grid.area.live", VIEW, Input(ID.TICK, "n_intervals"), State(ID.AREA, "data"),
                  output={"live": Output(ID.LIVE, "children"), "signals": Output(ID.SIGNALS, "children"),
                          "alarms": Output(ID.ALARMS, "children"), "actions": Output(ID.ACTIONS, "children")},
                  changes_state=False, prevent_initial_call=True)
def refresh(_tick, area_id):
    live = area_live(runtime().engine, area_id)
    if live is None:
        raise PreventUpdate
    lang, zone = request_lang(), site_zone()
    return {"live": live_panel(live, lang), "signals": signals_panel(live, zone, lang),
            "alarms": alarms_list(live.alarms, zone, lang), "actions": _actions(int(live.area["id"]), lang)}


@guarded_callback("grid.area.range", VIEW, Input(ID.RANGE, "value"), State(ID.AREA, "data"),
                  output={"figure": Output(ID.CHART, "figure"), "applied": Output(ID.APPLIED, "data"),
                          "note": Output(ID.TREND_NOTE, "children")},
                  changes_state=False, prevent_initial_call=True)
def change_range(range_key, area_id):
    area = find_area(runtime().engine, area_id)
    if area is None or not isinstance(range_key, str) or range_key not in RANGES:
        raise PreventUpdate
    window = trend_window(utcnow(), range_key)
    fig, note = _trends(area, window, request_lang())
    return {"figure": fig, "applied": _window_data(window), "note": note}


_RANGE_KEY = re.compile(r"^xaxis\d*\.range\[([01])\]$")


def _zoomed(relayout: dict, zone) -> tuple[dt.datetime, dt.datetime] | None | str:
    """The window a zoom asks for (naive UTC), "all" for a zoom out, None for anything else."""
    if any(k.startswith("xaxis") and k.endswith(".autorange") and v for k, v in relayout.items()
           if isinstance(k, str)):
        return "all"
    ends: dict[int, str] = {}
    for k, v in relayout.items():
        m = _RANGE_KEY.match(k) if isinstance(k, str) else None
        if m and isinstance(v, str):
            ends[int(m.group(1))] = v
    if len(ends) != 2:
        return None
    try:
        lo, hi = (dt.datetime.fromisoformat(ends[i][:26].replace(" ", "T")) for i in (0, 1))
    except ValueError:
        return None
    if lo.tzinfo or hi.tzinfo or not lo < hi:
        return None
    try:
        return utc_time(lo, zone), utc_time(hi, zone)
    except (OverflowError, ValueError):   # a day at the calendar's ends
        return None


@guarded_callback("grid.area.zoom", VIEW, Input(ID.CHART, "relayoutData"), State(ID.APPLIED, "data"),
                  State(ID.AREA, "data"),
                  output={"figure": Output(ID.CHART, "figure", allow_duplicate=True),
                          "note": Output(ID.TREND_NOTE, "children", allow_duplicate=True)},
                  changes_state=False, prevent_initial_call=True)
def zoom(relayout, applied, area_id):
    """Zoomed in: the visible part of the window again, with its own point budget (finer points); zoomed out:
    the window as first drawn."""
    window = _read_window(applied)
    if not isinstance(relayout, dict) or window is None:
        raise PreventUpdate
    area = find_area(runtime().engine, area_id)
    if area is None:
        raise PreventUpdate
    lang, zone = request_lang(), site_zone()
    asked = _zoomed(relayout, zone)
    if asked is None:
        raise PreventUpdate
    if asked == "all":
        fig, note = _trends(area, window, lang)
        return {"figure": fig, "note": note}
    lo, hi = max(asked[0], window[0]), min(asked[1], window[1])
    if not lo < hi:
        raise PreventUpdate
    try:
        frame = area_trends(runtime().engine, area, lo, hi)
    except TelemetryError:
        raise PreventUpdate from None
    fig = trends_figure(frame, (area["band_low"], area["band_high"]), zone, lang, window=(lo, hi))
    return {"figure": fig, "note": t("grid_area.trend_note", lang, n=f"{len(frame):,}", budget=f"{TREND_BUDGET:,}")}


# ---------------------------------------------------------------------------------------------
# Controls: a button asks for a confirmation and a reason; Send calls grid.control, which checks the permission,
# the input and the reason, and queues the command (or says why not, in the operator's language).
@guarded_callback("grid.area.confirm", VIEW, Input(ID.action(ALL), "n_clicks"), State(ID.OUTLET, "value"),
                  State(ID.TAP, "value"), State(ID.AREA, "data"),
                  output={"open": Output(ID.CONFIRM, "is_open"), "text": Output(ID.CONFIRM_TEXT, "children"),
                          "pending": Output(ID.PENDING, "data")},
                  changes_state=False, prevent_initial_call=True)
def ask(clicks, outlet, position, area_id):
    trigger = ctx.triggered_id
    name = trigger.get("index") if isinstance(trigger, dict) else None
    if not isinstance(name, str) or name not in CONTROLS or not any(isinstance(c, int) and not isinstance(c, bool) and c > 0
                                       for c in (clicks if isinstance(clicks, list) else [])):
        raise PreventUpdate
    area = find_area(runtime().engine, area_id)
    if area is None:
        raise PreventUpdate
    params: dict = {}
    if name.startswith("breaker_"):
        params["outlet"] = inputs.shown(outlet)[:6] if outlet is not None else ""
    elif name == "tap_set":
        params["position"] = inputs.shown(position)[:6] if position is not None else ""
    elif name in ("tap_up", "tap_down"):
        now = (_control_state(int(area["id"])) or {}).get("tap_position")
        if now is None:
            params["position"] = ""
        else:
            params["position"] = str(int(now) + (1 if name == "tap_up" else -1))
    lang = request_lang()
    return {"open": True, "text": html.P(confirm_text(name, area["name"], params, lang)),
            "pending": {"name": name, "area": int(area["id"]), **params}}


def _send(name: str, pending: dict, area: dict, reason):
    """Queue the control `name` through grid.control; the words of what was done."""
    ctx_, who, area_id = billing(), actor(), int(area["id"])
    if name in ("breaker_open", "breaker_close"):
        command_id = control.queue_breaker(ctx_, who, area_id, pending.get("outlet"), name.split("_")[1], reason)
        return "queued", {"id": command_id}
    if name == "arrears_trip":
        return "queued_batch", {"batch": control.trip_arrears(ctx_, who, area_id, reason)}
    if name in ("tap_set", "tap_up", "tap_down"):
        return "queued", {"id": control.queue_tap(ctx_, who, area_id, pending.get("position"), reason)}
    if name in ("mode_small", "mode_large"):
        queued = control.queue_capacity_mode(ctx_, who, area_id, name.split("_")[1], reason)
        if queued.capacity_auto_off:   # the hand setting holds: the operator is told how to undo that
            return "queued_capacity_auto_off", {"id": queued.command_id, "area": area["name"]}
        return "queued", {"id": queued.command_id}
    control.set_automation(ctx_, who, area_id, name == "auto_on", reason, events=runtime().events)
    return "done", {}


@guarded_callback("grid.area.send", VIEW, Input(ID.SEND, "n_clicks"), Input(ID.CANCEL, "n_clicks"),
                  State(ID.PENDING, "data"), State(ID.REASON, "value"), State(ID.AREA, "data"),
                  output={"open": Output(ID.CONFIRM, "is_open", allow_duplicate=True),
                          "text": Output(ID.CONFIRM_TEXT, "children", allow_duplicate=True),
                          "result": Output(ID.CONTROL_RESULT, "children"),
                          "actions": Output(ID.ACTIONS, "children", allow_duplicate=True),
                          "controls": Output(ID.CONTROLS, "children"),
                          "reason": Output(ID.REASON, "value")},
                  prevent_initial_call=True)
def send(n_send, n_cancel, pending, reason, area_id):
    keep = {"open": no_update, "text": no_update, "result": no_update, "actions": no_update,
            "controls": no_update, "reason": no_update}
    if ctx.triggered_id == ID.CANCEL:
        return {**keep, "open": False}
    if ctx.triggered_id != ID.SEND or not n_send:
        raise PreventUpdate
    pending = inputs.mapping(pending)
    name = pending.get("name")
    if not isinstance(name, str) or name not in CONTROLS:
        return {**keep, "open": False}
    lang = request_lang()
    area = find_area(runtime().engine, area_id)
    if area is None or pending.get("area") != int(area["id"]):
        return {**keep, "open": False}
    words = t(f"grid_control.action.{ACTION_WORDS[name]}", lang)
    try:
        done, params = _send(name, pending, area, inputs.text(reason))
    except BillingError as exc:
        message = exc.message(lang)
        if exc.code == "reason_required":   # said in the dialog, beside the reason; nothing queued
            return {**keep, "text": [html.P(confirm_text(name, area["name"], pending, lang)),
                                     html.Div(dbc.Alert(message, color="danger", className="py-2 small"),
                                              **{"data-code": exc.code})]}
        return {**keep, "open": False, "result": html.Div(dbc.Alert(
            t("grid_area.control.refused", lang, message=message), color="danger", className="py-2 mb-0"),
            **{"data-code": exc.code})}
    return {**keep, "open": False, "reason": "", "actions": _actions(int(area["id"]), lang),
            "controls": _controls(int(area["id"])),
            "result": html.Div(dbc.Alert(t(f"grid_area.control.{done}", lang, action=words, **params),
                                         color="success", className="py-2 mb-0"), **{"data-done": name})}
