"""Energy insights (/analysis/insights): one place over a range in tabs: load curve, hour x day heatmap, time-of-use
split, top consumers, the buildings or floors inside it compared, and the range against the one before and the same
days a year earlier (energy.insights.insights reads the rollups). A click on a consumer or a place opens it in the
energy analysis."""
from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.analysis import (heatmap_figure, load_figure, periods_figure, top_figure, tou_figure)
from dashboard.components.analysis_layout import (BadQuery, default_days, energy_link, field, floor_options,
                                                  floor_value, follow_link_clicks, place_text, read_range)
from dashboard.i18n import request_lang, t
from dashboard.ids import AnalysisInsights as ID
from dashboard.services import billing, runtime, site_zone
from energy.analysis import Place
from energy.history import metered_devices
from energy.insights import (heatmap, load_curve, period_comparison, places_compared, top_consumers,
                             tou_split)

dash.register_page(__name__, path=access.ANALYSIS_INSIGHTS.path, title="Wattline", name="analysis_insights")
MAX_DAYS = 400


def _places() -> list[dict]:
    return [d for d in metered_devices(runtime().engine) if d.get("room")]


def _asked(first, last, building, floor) -> tuple[dt.date, dt.date, Place]:
    lang = request_lang()
    first_day, last_day = read_range(first, last, MAX_DAYS, lang)
    building = inputs.key_text(building, 100)
    return first_day, last_day, Place(building=building, floor=floor_value(floor) if building else None)


TAB_OUTPUTS = {"tab_load": ("load", "load_note"), "tab_heatmap": ("heatmap",), "tab_tou": ("tou", "tou_note"),
               "tab_top": ("top",), "tab_compare": ("compare",), "tab_periods": ("periods", "periods_note")}
OUTPUTS = tuple(o for outs in TAB_OUTPUTS.values() for o in outs)


def _tab(tab: str, first: dt.date, last: dt.date, place: Place, lang: str) -> dict:
    """The figure (and note) of one tab: a tab is computed when it is shown, not all six at each query."""
    engine, tz = runtime().engine, site_zone()
    if tab == "tab_heatmap":
        return {"heatmap": heatmap_figure(heatmap(engine, tz, first, last, place), lang)}
    if tab == "tab_tou":
        tou = tou_split(engine, tz, first, last, place)
        sums = {c.split("_")[1]: f"{tou[c].sum():,.2f}" for c in tou.columns if c.startswith("energy_")}
        return {"tou": tou_figure(tou, lang), "tou_note": t("analysis.insights.tou_total", lang, **sums)}
    if tab == "tab_top":
        found = top_consumers(engine, tz, first, last, place)
        top = found.assign(label=[place_text(r, lang) for r in found.to_dict("records")],
                           key=[energy_link(building=r["building"], room=r["room"],
                                            floor=None if pd.isna(r["floor"]) else int(r["floor"]))
                                for r in found.to_dict("records")])
        return {"top": top_figure(top, lang, title_key="analysis.insights.tab_top")}
    if tab == "tab_compare":
        found, group = places_compared(engine, tz, first, last, place)
        places = found.assign(
            label=[t("analysis.energy.floor_name", lang, floor=int(r["floor"])) if group == "floor" and
                   not pd.isna(r["floor"]) else str(r.get(group) or "—") for r in found.to_dict("records")],
            key=[energy_link(building=r.get("building") if group != "room" else place.building,
                             floor=(int(r["floor"]) if group == "floor" and not pd.isna(r["floor"]) else place.floor),
                             room=r["room"] if group == "room" else None)
                 for r in found.to_dict("records")])
        return {"compare": top_figure(places, lang, title_key="analysis.insights.tab_compare")}
    if tab == "tab_periods":
        return _periods(period_comparison(engine, tz, first, last, place), (last - first).days + 1, lang)
    load, grain = load_curve(engine, tz, first, last, place)
    return {"load": load_figure(load, lang),
            "load_note": t("analysis.insights.load_step", lang, step=t(f"analysis.insights.step_{grain}", lang))}


def _periods(found: pd.DataFrame, days: int, lang: str) -> dict:
    periods = found.assign(label=[t(f"analysis.insights.{w}", lang, first=a.isoformat(), last=b.isoformat())
                                  for w, a, b in found[["which", "first", "last"]].itertuples(index=False)])
    this = float(periods["energy_kwh"].iloc[0])
    notes = []
    for r in periods.iloc[1:].to_dict("records"):
        if not r["days_with_data"]:
            notes.append(t("analysis.insights.no_data", lang, which=r["label"]))
        elif r["days_with_data"] < days:
            notes.append(t("analysis.insights.partial", lang, which=r["label"], kwh=f"{r['energy_kwh']:,.2f}",
                           days=r["days_with_data"], total=days))
        else:
            pct = f"{(this - r['energy_kwh']) / r['energy_kwh']:+.1%}" if r["energy_kwh"] else "—"
            notes.append(t("analysis.insights.change", lang, which=r["label"], kwh=f"{r['energy_kwh']:,.2f}", pct=pct))
    return {"periods": periods_figure(periods, lang), "periods_note": [html.Div(n) for n in notes]}


def _graph(graph_id: str, figure) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False, "responsive": True})


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ANALYSIS_INSIGHTS, lang)
    if denied is not None:
        return denied
    ctx = billing()
    days = default_days(ctx.local(ctx.now()).date(), days=14)
    empty = {o: None for o in OUTPUTS}
    blank = load_figure(pd.DataFrame(columns=["period", "kw", "estimated"]), lang)
    shown = {**empty, **{o: blank for o in ("heatmap", "tou", "top", "compare", "periods")},
             **_tab("tab_load", dt.date.fromisoformat(days["from"]), dt.date.fromisoformat(days["to"]), Place(), lang)}
    buildings = sorted({p["building"] for p in _places() if p.get("building")})
    tab = lambda key, *children: dbc.Tab(html.Div(list(children), className="pt-2"),  # noqa: E731
                                         label=t(f"analysis.insights.{key}", lang), tab_id=key)
    return html.Div([
        html.H1(t("analysis.insights.heading", lang), className="h4"),
        dbc.Row([
            field(t("analysis.from", lang), dbc.Input(id=ID.FROM, type="date", value=days["from"]), ID.FROM,
                  xs=6, md=2),
            field(t("analysis.to", lang), dbc.Input(id=ID.TO, type="date", value=days["to"]), ID.TO, xs=6, md=2),
            field(t("analysis.energy.building", lang), dcc.Dropdown(id=ID.BUILDING, options=buildings,
                                                                    placeholder=t("analysis.site", lang)),
                  ID.BUILDING, xs=6, md=3),
            field(t("analysis.energy.floor", lang), dcc.Dropdown(id=ID.FLOOR, options=[],
                                                                 placeholder=t("analysis.any", lang)),
                  ID.FLOOR, xs=6, md=2),
            dbc.Col(dbc.Button(t("analysis.query", lang), id=ID.QUERY, color="primary"), xs=12, md=3,
                    className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.RESULT, role="status", className="small"),
        dbc.Tabs([
            tab("tab_load", html.P(shown["load_note"], id=ID.LOAD_NOTE, className="small text-muted mb-0"),
                _graph(ID.LOAD, shown["load"])),
            tab("tab_heatmap", _graph(ID.HEATMAP, shown["heatmap"])),
            tab("tab_tou", html.P(shown["tou_note"], id=ID.TOU_NOTE, className="small mb-0"),
                _graph(ID.TOU, shown["tou"])),
            tab("tab_top", html.P(t("analysis.insights.top_click", lang), className="small text-muted mb-0"),
                _graph(ID.TOP, shown["top"])),
            tab("tab_compare", _graph(ID.COMPARE, shown["compare"])),
            tab("tab_periods", html.Div(shown["periods_note"], id=ID.PERIODS_NOTE, className="small mb-1"),
                _graph(ID.PERIODS, shown["periods"])),
        ], id=ID.TABS, active_tab="tab_load"),
        dcc.Store(id=ID.APPLIED, data={**days, "building": None, "floor": None}),
        dcc.Location(id=ID.GO, refresh=True),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("analysis.insights.floors", P.REPORT_VIEW, Output(ID.FLOOR, "options"),
                  Input(ID.BUILDING, "value"), changes_state=False, prevent_initial_call=True)
def floors(building):
    return floor_options(_places(), inputs.key_text(building, 100), request_lang())


@guarded_callback("analysis.insights.query", P.REPORT_VIEW, Output(ID.APPLIED, "data"),
                  Output(ID.RESULT, "children"), Input(ID.QUERY, "n_clicks"), State(ID.FROM, "value"),
                  State(ID.TO, "value"), State(ID.BUILDING, "value"), State(ID.FLOOR, "value"),
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, first, last, building, floor):
    if not n_clicks:
        raise PreventUpdate
    try:
        first_day, last_day, place = _asked(first, last, building, floor)
    except BadQuery as exc:
        return no_update, html.Span(str(exc), className="text-danger")
    return {"from": first_day.isoformat(), "to": last_day.isoformat(), "building": place.building,
            "floor": place.floor}, None


@guarded_callback("analysis.insights.tab", P.REPORT_VIEW, Input(ID.TABS, "active_tab"), Input(ID.APPLIED, "data"),
                  output={o: Output(getattr(ID, o.upper()), "children" if o.endswith("note") else "figure")
                          for o in OUTPUTS},
                  changes_state=False, prevent_initial_call=True)
def show_tab(tab, applied):
    """The tab shown, for the query applied (a new query or another tab: only that tab is computed)."""
    if not isinstance(tab, str) or tab not in TAB_OUTPUTS or not isinstance(applied, dict):
        raise PreventUpdate
    try:
        first_day, last_day, place = _asked(applied.get("from"), applied.get("to"), applied.get("building"),
                                            applied.get("floor"))
    except BadQuery:
        raise PreventUpdate from None
    return {**dict.fromkeys(OUTPUTS, no_update), **_tab(tab, first_day, last_day, place, request_lang())}


follow_link_clicks(ID.GO, ID.TOP, ID.COMPARE)
