"""Builders of the transformer areas' live pages (/grid/areas, /grid/area): the list of areas, one area's live
values (遥测), signals (遥信), link and open alarms, its trends thinned to a point budget per trace, the controls
(遥控, 遥调) with their confirmation dialog, the action log and the cameras (遥视). Data in, components out; texts in
the operator's language, times in the site's zone."""
from __future__ import annotations

import base64
import datetime as dt
import functools
import json

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import dcc, html
from plotly.subplots import make_subplots

from core.clock import show_time, site_time
from dashboard.components.analysis import PALETTE, downsample
from dashboard.components.figures import base_layout
from dashboard.components.tables import STACK, labelled_cells
from dashboard.i18n import catalog, t
from dashboard.ids import GridArea as ID
from dashboard.ids import GridAreas as LID
from grid.telemetry import BREAKERS, INPUTS, PHASES, RANGES, AreaLive
from storage.alarms import kind_text, level_text, message_text

TREND_BUDGET = 600      # points per line at most: a week of one-minute polls (10,080) thinned 17 times; MinMaxLTTB keeps
                        # every peak and dip a column of a phone or laptop screen shows
TICK_MS = 10_000        # the live values are read again this often (the terminal is polled every poll interval)
COMM_COLOR = {"online": "success", "lost": "danger", "unknown": "secondary"}
LEVEL_COLOR = {0: "info", 1: "warning", 2: "danger"}   # storage.alarms.AlarmLevel
NEW_TAB = {"target": "_blank"}   # a link's browsing context (tests/test_ids.py reads a `target` keyword as an id)


def fmt(v, digits: int = 1, unit: str = "") -> str:
    """A measured value as text ("—" when not read)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    if f != f:
        return "—"
    return f"{f:.{digits}f}" + (f" {unit}" if unit else "")


def comm_badge(state: str | None, lang: str) -> dbc.Badge:
    state = state if state in COMM_COLOR else "unknown"
    return dbc.Badge(t(f"grid_area.comm.{state}", lang), color=COMM_COLOR[state], className="me-1")


# ---------------------------------------------------------------------------------------------
# /grid/areas
def areas_table(frame: pd.DataFrame, zone, lang: str) -> html.Div:
    """One row per area: its name (a link to the area), link, load, phase voltages (red outside the band), tap,
    open alarms and the time of the latest reading. On a phone each row stacks (dashboard.components.tables)."""
    if frame.empty:
        return html.P(t("grid_area.no_areas", lang), className="text-muted")
    header = [t(f"grid_area.col.{c}", lang) for c in ("area", "comm", "load", "voltage", "tap", "alarms", "updated")]
    rows = []
    for r in frame.to_dict("records"):
        volts = []
        for p in PHASES:
            v = r.get(f"voltage_{p}")
            out = v is not None and v == v and not (r["band_low"] <= v <= r["band_high"])
            volts.append(html.Span(fmt(v, 1), className="me-1" + (" text-danger fw-bold" if out else "")))
        tap = (f"{r['tap_position']}/{r['tap_count']}" if r.get("tap_count") else fmt(r.get("tap_position"), 0)) \
            if r.get("tap_position") is not None else "—"
        alarms = int(r.get("alarms_open") or 0)
        when = _utc(r.get("ts"))
        rows.append(html.Tr(labelled_cells(header, [
            [html.A(r["name"], href=f"/grid/area?id={int(r['id'])}"),
             html.Span(" " + (r.get("building") or ""), className="small text-muted")],
            comm_badge(r.get("comm_state"), lang) if r.get("comm_state") else t("grid_area.no_terminal", lang),
            fmt(r.get("load_pct"), 0, "%"),
            html.Span(volts, className="text-nowrap"),
            tap,
            _badge(str(alarms), "danger" if alarms else "light"),
            show_time(when, zone, "minutes") if when else "—",
        ])))
    head = html.Thead(html.Tr([html.Th(h) for h in header]))
    return html.Div(dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className=f"mb-0 {STACK}"),
                    id=LID.LIST)


def _utc(v) -> dt.datetime | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    return pd.Timestamp(v).to_pydatetime()


# ---------------------------------------------------------------------------------------------
# /grid/area: live values
def _cell(v, digits=1, unit="", bad=False) -> html.Td:
    return html.Td(fmt(v, digits, unit), className="text-end" + (" text-danger fw-bold" if bad else ""))


def live_panel(live: AreaLive, lang: str) -> dbc.Row:
    """Per phase voltage, current, THD of voltage and current; the neutral current; P, Q, PF, load and frequency;
    the tap, capacity mode, capacitor steps, temperatures and humidity."""
    s, a = live.state, live.area
    low, high = a["band_low"], a["band_high"]

    def out(v) -> bool:
        try:
            return not (low <= float(v) <= high)
        except (TypeError, ValueError):
            return False
    phases = dbc.Table([
        html.Thead(html.Tr([html.Th("")] + [html.Th(p.upper(), className="text-end") for p in PHASES])),
        html.Tbody([
            html.Tr([html.Th(t("grid_area.voltage", lang))] + [_cell(s.get(f"voltage_{p}"), 1, "V",
                                                                     out(s.get(f"voltage_{p}"))) for p in PHASES]),
            html.Tr([html.Th(t("grid_area.current", lang))] + [_cell(s.get(f"current_{p}"), 1, "A") for p in PHASES]),
            html.Tr([html.Th(t("grid_area.thd_u", lang))] + [_cell(s.get(f"thd_u_{p}"), 1, "%") for p in PHASES]),
            html.Tr([html.Th(t("grid_area.thd_i", lang))] + [_cell(s.get(f"thd_i_{p}"), 1, "%") for p in PHASES]),
        ])], size="sm", className="mb-1")
    band = html.Div(t("grid_area.band", lang, low=fmt(low, 1), high=fmt(high, 1)), className="small text-muted")
    power = _pairs([
        (t("grid_area.current_n", lang), fmt(s.get("current_n"), 1, "A")),
        (t("grid_area.power", lang), fmt(s.get("power_total"), 1, "kW")),
        (t("grid_area.reactive", lang), fmt(s.get("reactive_total"), 1, "kvar")),
        (t("grid_area.pf", lang), fmt(s.get("pf_total"), 3)),
        (t("grid_area.load", lang), fmt(live.load_pct, 0, "%")),
        (t("grid_area.frequency", lang), fmt(s.get("frequency"), 2, "Hz")),
    ])
    mode = s.get("capacity_mode")
    mode_text = "—" if mode is None else t("grid_area.mode.large" if int(mode) == 1 else "grid_area.mode.small", lang)
    steps = s.get("capacitor_steps")
    steps_text = "—" if steps is None else t("grid_area.steps_in", lang, n=bin(int(steps)).count("1"))
    tap = s.get("tap_position")
    tap_text = "—" if tap is None else (t("grid_area.tap_of", lang, position=int(tap), count=live.tap_count)
                                        if live.tap_count else str(int(tap)))
    transformer = _pairs([
        (t("grid_area.tap", lang), tap_text),
        (t("grid_area.capacity_mode", lang), mode_text),
        (t("grid_area.capacitors", lang), steps_text),
        (t("grid_area.oil_temp", lang), fmt(s.get("oil_temp"), 1, "°C")),
        (t("grid_area.ambient_temp", lang), fmt(s.get("ambient_temp"), 1, "°C")),
        (t("grid_area.humidity", lang), fmt(s.get("humidity"), 0, "%")),
    ])
    return dbc.Row([
        dbc.Col(_card(t("grid_area.phases", lang), [phases, band]), xs=12, lg=5),
        dbc.Col(_card(t("grid_area.power_heading", lang), power), xs=12, sm=6, lg=3),
        dbc.Col(_card(t("grid_area.transformer", lang), transformer), xs=12, sm=6, lg=4),
    ], className="g-2 mb-2")


def _pairs(pairs) -> html.Dl:
    items = []
    for label, value in pairs:
        items += [html.Dt(label, className="col-7 fw-normal text-muted small"),
                  html.Dd(value, className="col-5 text-end mb-1")]
    return html.Dl(items, className="row mb-0")


def _card(title: str, body) -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title, className="py-1 small fw-bold"), dbc.CardBody(body, className="p-2")],
                    className="h-100")


def _badge(text: str, color: str, **data) -> html.Span:
    """A Bootstrap badge carrying data attributes (what it shows, for tests and scripts)."""
    return html.Span(text, className=f"badge text-bg-{color} me-1 mb-1", **data)


def signals_panel(live: AreaLive, zone, lang: str) -> html.Div:
    """The link and the latest reading's time, the inputs (door, smoke, water, changeover: red when on) and the
    outlet breakers (closed or open)."""
    head = [comm_badge(live.comm_state, lang) if live.comm_state else
            dbc.Badge(t("grid_area.no_terminal", lang), color="secondary", className="me-1"),
            html.Span(t("grid_area.latest", lang, when=show_time(_utc(live.ts), zone, "seconds")) if live.ts
                      else t("grid_area.no_reading", lang), className="small text-muted")]
    inputs = []
    for name in INPUTS:
        on = live.signals.get(name)
        color = "secondary" if on is None else ("danger" if on else "success")
        state = "unknown" if on is None else ("on" if on else "off")
        inputs.append(_badge(f"{t(f'grid_area.signal.{name}', lang)}: {t(f'grid_area.signal_state.{state}', lang)}",
                             color, **{"data-signal": name, "data-state": state}))
    breakers = []
    for i in BREAKERS:
        closed = live.signals.get(f"breaker_{i}")
        state = "unknown" if closed is None else ("closed" if closed else "open")
        color = {"closed": "success", "open": "warning", "unknown": "secondary"}[state]
        breakers.append(_badge(f"{i}: {t(f'grid_area.breaker.{state}', lang)}", color,
                               **{"data-breaker": str(i), "data-state": state}))
    return html.Div([
        html.Div(head, className="mb-1"),
        html.Div(inputs, className="mb-1"),
        html.Div([html.Span(t("grid_area.breakers", lang), className="small text-muted me-1"), *breakers]),
    ])


def alarms_list(frame: pd.DataFrame, zone, lang: str) -> html.Div:
    if frame.empty:
        return html.P(t("grid_area.no_alarms", lang), className="text-muted small mb-0")
    items = []
    for r in frame.to_dict("records"):
        level = int(r["level"])
        items.append(html.Li([
            dbc.Badge(level_text(level, lang), color=LEVEL_COLOR.get(level, "secondary"), className="me-1"),
            html.Span(kind_text(r["kind"], lang), className="fw-bold me-1"),
            html.Span(message_text(r, lang), className="me-1"),
            html.Span(show_time(_utc(r["opened_at"]), zone, "minutes"), className="small text-muted text-nowrap"),
        ], className="mb-1"))
    return html.Ul(items, className="list-unstyled mb-0 small")


def cameras_list(cameras: list[dict], lang: str) -> html.Div | None:
    """The area's cameras as links that open the camera's own page or snapshot in a new tab."""
    if not cameras:
        return html.P(t("grid_area.no_cameras", lang), className="text-muted small mb-0")
    links = []
    for c in cameras:
        url = str(c.get("url") or "")
        if not url.lower().startswith(("http://", "https://")):
            continue   # only web addresses become links (never javascript: or data:)
        kind = c.get("kind") if c.get("kind") in ("page", "snapshot") else "page"
        links.append(html.Li(html.A(f"{c.get('name') or url} ({t(f'grid_area.camera.{kind}', lang)})", href=url,
                                    rel="noopener noreferrer", **NEW_TAB)))
    return html.Ul(links, className="mb-0 small")


# ---------------------------------------------------------------------------------------------
# Trends
TREND_ROWS = ("voltage", "current", "power", "pf", "thd", "temperature")
TREND_HEIGHT = 1150     # px: the six charts; the page's graph box has this height and follows its width
BAND_LINE = {"color": "#dc3545", "width": 1, "dash": "dash"}


def typed_array(values) -> dict:
    """Numbers as Plotly's typed array (little-endian float64, base64): 8 bytes a point instead of its text."""
    data = np.ascontiguousarray(values, dtype="<f8")
    return {"dtype": "f8", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


@functools.lru_cache(maxsize=8)
def _skeleton(lang: str) -> str:
    """The six charts' layout (titles in `lang`) as JSON, built by make_subplots once per language."""
    fig = make_subplots(rows=len(TREND_ROWS), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        subplot_titles=[t(f"grid_area.trend.{r}", lang) for r in TREND_ROWS])
    fig.update_layout(**base_layout(height=TREND_HEIGHT, showlegend=False, hovermode="x unified",
                                    margin=dict(l=44, r=8, t=24, b=28)))
    fig.update_annotations(font_size=12, x=0, xanchor="left")
    fig.update_xaxes(type="date")
    for row, unit in ((1, "V"), (2, "A"), (5, "%"), (6, "°C")):
        fig.update_yaxes(title_text=unit, row=row, col=1)
    return fig.to_json()


def _axis(row: int, kind: str) -> str:
    return kind if row == 1 else f"{kind}{row}"


def trends_figure(frame: pd.DataFrame, band: tuple[float, float], zone, lang: str, *,
                  window: tuple[dt.datetime, dt.datetime] | None = None, budget: int = TREND_BUDGET) -> dict:
    """Six charts over one time axis: phase voltages with the band, phase and neutral currents, P and Q, PF, THD
    of voltage and current per phase, oil and ambient temperature. `frame`: storage.grid_live.terminal_series
    (naive UTC; shown in site time). Each line keeps at most `budget` points (MinMaxLTTB). A figure as Plotly's
    JSON (what dcc.Graph takes): x the site's wall-clock milliseconds on date axes, x and y as typed arrays, so a
    week's figure is built in a few milliseconds and sent in a third of the bytes of its text."""
    fig = json.loads(_skeleton(lang))
    layout = fig["layout"]
    if window is not None:
        lo, hi = (site_time(w, zone).isoformat(sep=" ") for w in window)
        for row in range(1, len(TREND_ROWS) + 1):
            layout[_axis(row, "xaxis")]["range"] = [lo, hi]
    if frame.empty:
        layout["annotations"].append({"text": t("grid_area.no_trend", lang), "showarrow": False, "x": 0.5, "y": 0.5,
                                      "xref": "paper", "yref": "paper", "font": {"size": 13, "color": "#6c757d"}})
        return fig
    local = site_time(pd.to_datetime(frame["ts"]), zone)
    ms = local.to_numpy(dtype="datetime64[ms]").astype("int64").astype("float64")
    data = []

    def line(col: str, name: str, row: int, color: str, dash: str = "solid") -> None:
        if col not in frame:
            return
        values = pd.to_numeric(frame[col], errors="coerce")
        keep = downsample(local, values, budget)
        if not len(keep):
            return
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": typed_array(ms[keep]),
                     "y": typed_array(values.to_numpy(dtype=float)[keep]), "xaxis": _axis(row, "x"),
                     "yaxis": _axis(row, "y"), "line": {"color": color, "width": 1.3, "dash": dash}})
    ph = {p: PALETTE[i] for i, p in enumerate(PHASES)}
    for p in PHASES:
        line(f"voltage_{p}", f"U{p.upper()}", 1, ph[p])
    for p in PHASES:
        line(f"current_{p}", f"I{p.upper()}", 2, ph[p])
    line("current_n", "IN", 2, PALETTE[8])
    line("power_total", t("grid_area.power", lang) + " kW", 3, PALETTE[3])
    line("reactive_total", t("grid_area.reactive", lang) + " kvar", 3, PALETTE[4])
    line("pf_total", t("grid_area.pf", lang), 4, PALETTE[5])
    for p in PHASES:
        line(f"thd_u_{p}", f"THDu {p.upper()}", 5, ph[p])
    for p in PHASES:
        line(f"thd_i_{p}", f"THDi {p.upper()}", 5, ph[p], dash="dot")
    line("oil_temp", t("grid_area.oil_temp", lang), 6, PALETTE[2])
    line("ambient_temp", t("grid_area.ambient_temp", lang), 6, PALETTE[6])
    fig["data"] = data
    layout["shapes"] = [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                         "line": BAND_LINE} for y in band]
    return fig


def trend_points(fig: dict) -> list[int]:
    """How many points each line of a trends figure draws (tests, the benchmark)."""
    def size(x) -> int:
        if isinstance(x, dict) and "bdata" in x:
            return len(base64.b64decode(x["bdata"])) // 8
        return len(x)
    return [size(tr["x"]) for tr in fig["data"]]


def range_options(lang: str) -> list[dict]:
    return [{"label": t(f"grid_area.range.{k}", lang), "value": k} for k in RANGES]


# ---------------------------------------------------------------------------------------------
# Controls (遥控, 遥调): the buttons, the confirmation dialog, the action log
# name -> (permission it needs: "control" or "adjust", catalog key of its button)
CONTROLS = {"breaker_open": "control", "breaker_close": "control", "arrears_trip": "control",
            "tap_down": "adjust", "tap_up": "adjust", "tap_set": "adjust", "mode_small": "adjust",
            "mode_large": "adjust", "auto_on": "adjust", "auto_off": "adjust"}
# the action log's words for the action each control queues (grid_control.action.<key>)
ACTION_KEYS = {"breaker_open": "breaker_open", "breaker_close": "breaker_close", "arrears_trip": "arrears_trip",
               "tap_down": "tap", "tap_up": "tap", "tap_set": "tap", "mode_small": "capacity_mode",
               "mode_large": "capacity_mode", "auto_on": "automation_on", "auto_off": "automation_off"}


def _button(name: str, lang: str, allowed: bool, color: str = "outline-primary") -> dbc.Button:
    return dbc.Button(t(f"grid_area.control.{name}", lang), id=ID.action(name), color=color, size="sm",
                      disabled=not allowed, className="me-1 mb-1")


def controls_panel(state: dict | None, may: dict[str, bool], lang: str) -> html.Div:
    """The area's controls: outlet breakers, the arrears trip, tap, capacity mode, automation; a button the
    operator's role may not use is shown disabled (the server refuses it anyway); the automation's state."""
    control, adjust = may.get("control", False), may.get("adjust", False)
    state = state or {}
    tap_count = state.get("tap_count") or 0
    auto = t("grid_area.control.on" if state.get("enabled") else "grid_area.control.off", lang)
    if state.get("blocked"):
        auto += " · " + t("grid_area.control.held", lang)
    if state.get("enabled") and not (state.get("settings") or {}).get("capacity_auto", True):
        auto += " · " + t("grid_area.control.capacity_by_hand", lang)
    pending = len(state.get("pending") or [])
    note = [] if (control and adjust) else [html.P(t("grid_area.control.not_yours", lang),
                                                   className="small text-muted mb-1")]
    return html.Div([
        html.H2(t("grid_area.control.heading", lang), className="h5 mt-2"),
        html.P(t("grid_area.control.help", lang), className="small text-muted mb-1"),
        *note,
        dbc.Row([
            dbc.Col([dbc.Label(t("grid_area.control.outlet", lang), html_for=ID.OUTLET, className="small mb-0"),
                     dbc.Select(id=ID.OUTLET, value="1", size="sm", disabled=not control,
                                options=[{"label": str(i), "value": str(i)} for i in BREAKERS])], xs=4, md=2),
            dbc.Col([_button("breaker_open", lang, control, "outline-danger"),
                     _button("breaker_close", lang, control, "outline-success"),
                     _button("arrears_trip", lang, control, "outline-danger")],
                    xs=8, md=4, className="d-flex flex-wrap align-items-end"),
            dbc.Col([dbc.Label(t("grid_area.control.position", lang, count=tap_count or "?"), html_for=ID.TAP,
                               className="small mb-0"),
                     dbc.Input(id=ID.TAP, type="text", inputMode="numeric", size="sm", disabled=not adjust,
                               value=None if state.get("tap_position") is None else str(state["tap_position"]),
                               maxLength=6)], xs=4, md=2),
            dbc.Col([_button("tap_set", lang, adjust), _button("tap_down", lang, adjust),
                     _button("tap_up", lang, adjust)], xs=8, md=4, className="d-flex flex-wrap align-items-end"),
        ], className="g-2 mb-1"),
        html.Div([_button("mode_small", lang, adjust, "outline-secondary"),
                  _button("mode_large", lang, adjust, "outline-secondary"),
                  _button("auto_on", lang, adjust, "outline-secondary"),
                  _button("auto_off", lang, adjust, "outline-secondary"),
                  html.Span(t("grid_area.control.automation", lang, state=auto), className="small ms-1 me-2"),
                  html.Span(t("grid_area.control.pending", lang, n=pending) if pending else "",
                            className="small text-muted")], className="d-flex flex-wrap align-items-center"),
    ])


def confirm_dialog(lang: str) -> dbc.Modal:
    return dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle(t("grid_area.control.confirm_title", lang))),
        dbc.ModalBody([
            html.Div(id=ID.CONFIRM_TEXT),
            dbc.Label(t("grid_area.control.reason", lang), html_for=ID.REASON, className="small mb-0"),
            dbc.Input(id=ID.REASON, type="text", maxLength=200),
            dbc.FormText(t("grid_area.control.confirm_help", lang)),
        ]),
        dbc.ModalFooter([dbc.Button(t("grid_area.control.cancel", lang), id=ID.CANCEL, color="secondary"),
                         dbc.Button(t("grid_area.control.send", lang), id=ID.SEND, color="primary")]),
    ], id=ID.CONFIRM, is_open=False)


def confirm_text(name: str, area_name: str, params: dict, lang: str) -> str:
    """What the operator is about to do, in words: the action, the area and its outlet, position or mode."""
    what = ""
    if "outlet" in params:
        what = t("grid_area.control.what_outlet", lang, outlet=params["outlet"])
    elif "position" in params:
        what = t("grid_area.control.what_position", lang, position=params["position"])
    return t("grid_area.control.confirm_text", lang, action=t(f"grid_control.action.{ACTION_KEYS[name]}", lang),
             area=area_name, what=what)


def actions_table(frame: pd.DataFrame, lang: str) -> html.Div:
    """The area's action log (grid.control.actions, newest first), by hand and automatic, with the command's
    state. Stacked rows on a phone."""
    heading = html.H2(t("grid_area.control.actions", lang), className="h5 mt-3")
    if frame is None or frame.empty:
        return html.Div([heading, html.P(t("grid_area.control.no_actions", lang), className="small text-muted")])
    header = [t(f"grid_area.action_col.{c}", lang) for c in ("ts", "mode", "action", "change", "reason",
                                                               "operator", "state")]
    rows = []
    for r in frame.to_dict("records"):
        before, after = r.get("before_text"), r.get("after_text")
        change = " → ".join(str(v) for v in (before, after) if v is not None and v == v)
        state = r.get("command_state")
        state_text = catalog(lang).get(f"cashier.state.{state}", state) if isinstance(state, str) else "—"
        when = r.get("local_ts")
        rows.append(html.Tr(labelled_cells(header, [
            when.strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, dt.datetime) else "—",
            r.get("mode_text") or "", r.get("action_text") or "", change or "—", r.get("reason") or "",
            r.get("operator") or "", state_text])))
    table = dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(rows)], size="sm",
                      className=f"small {STACK}")
    return html.Div([heading, table])
