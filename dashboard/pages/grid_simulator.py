"""The demo's simulator (/grid/simulator, 模拟器; site.edit): for one transformer area, put on its simulated terminal a
medium-voltage supply offset, a phase sag, a harmonic source, a stuck tap changer, an outlet breaker that does not
open, a dual-supply changeover, door / smoke / water; each shown as it is now. The automatic voltage control, the
telesignal alarms and the live area page (/grid/area?id=) react to what the terminal then reports. Every change goes
through the demo's field service (serve.demo_field via dashboard.services.demo_field: checked, then put on the field
and written to the operation log); a site without the simulator shows only that it has none."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.cashier import field
from dashboard.i18n import request_lang, t
from dashboard.ids import GridSimulator as ID
from dashboard.services import actor, demo_field

dash.register_page(__name__, path=access.GRID_SIMULATOR.path, title="Wattline", name="grid_simulator")


def _none(lang: str) -> dbc.Alert:
    return dbc.Alert(t("simulator.none", lang), color="secondary", className="py-2")


def _refused(exc: Exception, lang: str) -> dbc.Alert:
    text = exc.text(lang) if hasattr(exc, "text") else t("simulator.error.field", lang)
    return html.Div(dbc.Alert(text, color="danger", className="py-2 mb-2"), role="alert")


def state_panel(state: dict, lang: str) -> html.Div:
    """What is put on the area's terminal now: the supply, tap and voltages, and a button per switch (turn on / off)."""
    volts = " / ".join(f"{v:.1f}" for v in state["volts"])
    facts = html.Ul([
        html.Li(t("simulator.terminal", lang, terminal=state["terminal"])),
        html.Li(t("simulator.offset_now", lang, percent=f"{state['supply_offset_pct']:+g}")),
        html.Li(t("simulator.tap_now", lang, position=state["tap_position"], count=state["tap_count"])),
        html.Li(t("simulator.volts_now", lang, volts=volts)),
    ], className="small mb-2")
    rows = []
    for name, on in state["switches"].items():
        rows.append(dbc.ListGroupItem(html.Div([
            html.Span(t(f"simulator.switch.{name}", lang), className="me-2"),
            html.Span([
                dbc.Badge(t("simulator.on" if on else "simulator.off", lang), color="warning" if on else "secondary",
                          className="me-2"),
                dbc.Button(t("simulator.turn_off" if on else "simulator.turn_on", lang), size="sm",
                           color="outline-secondary" if on else "outline-danger",
                           id={"type": ID.SWITCH, "control": name, "on": 0 if on else 1}),
            ], className="text-nowrap"),
        ], className="d-flex flex-wrap justify-content-between align-items-center gap-1")))
    return html.Div([
        html.H2(state["name"], className="h5"), facts,
        dbc.ListGroup(rows, className="mb-2"),
        html.A(t("simulator.live_link", lang), href=f"/grid/area?id={state['id']}", className="small"),
    ])


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.GRID_SIMULATOR, lang)
    if denied is not None:
        return denied
    head = [html.H1(t("simulator.heading", lang), className="h4")]
    sim = demo_field()
    if sim is None:
        return html.Div([*head, _none(lang)], className="container-fluid", id=ID.PAGE)
    areas = sim.areas()
    if not areas:
        return html.Div([*head, html.P(t("simulator.no_areas", lang))], className="container-fluid", id=ID.PAGE)
    first = areas[0]
    return html.Div([
        *head,
        html.P(t("simulator.help", lang), className="small text-muted"),
        dbc.Row([
            field(t("simulator.area", lang), dcc.Dropdown(
                id=ID.AREA, clearable=False, value=first["id"],
                options=[{"label": f"{a['name']} ({a['terminal']})", "value": a["id"]} for a in areas]),
                ID.AREA, xs=12, md=4),
            field(t("simulator.offset", lang), dbc.Input(id=ID.OFFSET, type="text", inputMode="decimal",
                                                          placeholder="8 / -5.5", maxLength=20), ID.OFFSET,
                  xs=7, md=3),
            dbc.Col(dbc.Button(t("simulator.offset_apply", lang), id=ID.OFFSET_APPLY, color="primary"), xs=5, md=2,
                    className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.RESULT, role="status"),
        html.Div(state_panel(sim.state(first["id"]), lang), id=ID.STATE),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("grid.simulator.show", P.SITE_EDIT, Output(ID.STATE, "children"),
                  Output(ID.RESULT, "children"), Input(ID.AREA, "value"), changes_state=False,
                  prevent_initial_call=True)
def show(area):
    lang = request_lang()
    sim = demo_field()
    if sim is None:
        return None, _none(lang)
    try:
        return state_panel(sim.state(area), lang), None
    except ValueError as exc:
        return None, _refused(exc, lang)


@guarded_callback("grid.simulator.offset", P.SITE_EDIT, Output(ID.RESULT, "children", allow_duplicate=True),
                  Output(ID.STATE, "children", allow_duplicate=True), Input(ID.OFFSET_APPLY, "n_clicks"),
                  State(ID.AREA, "value"), State(ID.OFFSET, "value"), prevent_initial_call=True)
def set_offset(n, area, typed):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    sim = demo_field()
    if sim is None:
        return _none(lang), dash.no_update
    try:
        state = sim.set_supply_offset(actor(), area, typed)
    except ValueError as exc:
        return _refused(exc, lang), dash.no_update
    done = t("simulator.offset_set", lang, area=state["name"], percent=f"{state['supply_offset_pct']:+g}")
    return dbc.Alert(done, color="success", className="py-2 mb-2"), state_panel(state, lang)


@guarded_callback("grid.simulator.switch", P.SITE_EDIT, Output(ID.RESULT, "children", allow_duplicate=True),
                  Output(ID.STATE, "children", allow_duplicate=True),
                  Input({"type": ID.SWITCH, "control": ALL, "on": ALL}, "n_clicks"), State(ID.AREA, "value"),
                  prevent_initial_call=True)
def switch(clicks, area):
    trigger = ctx.triggered_id
    pressed = [c for c in (clicks if isinstance(clicks, list) else []) if isinstance(c, int) and not isinstance(c, bool)
               and c > 0]
    if not isinstance(trigger, dict) or not pressed:
        raise PreventUpdate     # the buttons drawn again, not pressed
    lang = request_lang()
    sim = demo_field()
    if sim is None:
        return _none(lang), dash.no_update
    control, on = trigger.get("control"), trigger.get("on")
    try:
        state = sim.set_switch(actor(), area, control, on)
    except ValueError as exc:
        return _refused(exc, lang), dash.no_update
    now_on = state["switches"][control]
    done = t("simulator.switched", lang, area=state["name"], control=t(f"simulator.switch.{control}", lang),
             state=t("simulator.on" if now_on else "simulator.off", lang))
    return dbc.Alert(done, color="success", className="py-2 mb-2"), state_panel(state, lang)
