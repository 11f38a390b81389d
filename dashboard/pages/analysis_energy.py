"""Energy analysis (/analysis/energy, 能耗分析报表): a range of local days and a place (site, building, floor, room
or a set of rooms), energy per hour, day or month as a stacked chart and a grid with totals, estimated and gap
periods marked (energy.analysis.energy_report reads the rollups). A click on a bar opens that building, floor or
room, the breadcrumb goes back; zooming the chart fetches finer steps for the visible window; the XLSX export reads
the query again and is written to the operation log (report.export)."""
from __future__ import annotations

import datetime as dt

import dash
from dash import ALL, Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_local
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.analysis import GRAINS, energy_figure, grain_for
from dashboard.components.analysis_layout import (BY_CHOICES, ESTIMATED_ROW, NEXT_GROUP, BadQuery, crumbs,
                                                  data_grid, default_days, drilled, energy_columns, energy_form,
                                                  energy_grid_rows, energy_totals, energy_workbook, floor_options,
                                                  floor_value, labelled, place_level, read_range, room_options)
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import AnalysisEnergy as ID
from dashboard.services import billing, runtime, site_zone
from energy.analysis import Place, energy_report
from energy.history import metered_devices, record_export

VIEW, EXPORT = P.REPORT_VIEW, P.REPORT_EXPORT
MAX_DAYS = 3700   # ten years of months: what one query may span
dash.register_page(__name__, path=access.ANALYSIS_ENERGY.path, title="Wattline", name="analysis_energy")


def _places() -> list[dict]:
    return [d for d in metered_devices(runtime().engine) if d.get("room")]


def _applied(first, last, building, floor, rooms, by) -> dict:
    """The query as plain JSON, checked; BadQuery with the operator's words when it cannot be asked."""
    lang = request_lang()
    first_day, last_day = read_range(first, last, MAX_DAYS, lang)
    building = inputs.key_text(building, 100)
    rooms = [r for r in inputs.texts(rooms) if inputs.key_text(r, 201)][:200] if isinstance(rooms, list) else []
    return {"from": first_day.isoformat(), "to": last_day.isoformat(), "building": building,
            "floor": floor_value(floor) if building is not None else None, "rooms": rooms,
            "by": by if by in BY_CHOICES else "day"}


def _report(applied: dict, first: dt.date | None = None, last: dt.date | None = None, by: str | None = None):
    """(labelled rows, grain drawn, group) of the applied query, or of a window of it at a finer grain."""
    first = first or dt.date.fromisoformat(applied["from"])
    last = last or dt.date.fromisoformat(applied["to"])
    grain = by or grain_for((last - first).days + 1, applied["by"])
    group = NEXT_GROUP[place_level(applied)]
    place = Place(building=applied["building"], floor=applied["floor"], rooms=tuple(applied["rooms"]))
    df = energy_report(runtime().engine, site_zone(), first, last, by=grain, group=group, place=place)
    return labelled(df, group, request_lang()), grain, group


def _shown(applied: dict, df, grain: str, lang: str) -> dict:
    days = (dt.date.fromisoformat(applied["to"]) - dt.date.fromisoformat(applied["from"])).days + 1
    total = t("analysis.energy.total_line", lang, kwh=f"{df['energy_kwh'].sum():,.2f}", days=days,
              places=df["label"].nunique())
    if grain != applied["by"]:
        total += " " + t("analysis.energy.zoom_finer", lang, by=t(f"analysis.energy.by_{grain}", lang)
                         if grain in BY_CHOICES else grain)
    return {"figure": energy_figure(df, lang, by=grain), "rows": energy_grid_rows(df, grain, lang),
            "pinned": [energy_totals(df, lang)], "total": total, "applied": applied,
            "crumbs": crumbs(applied, lang, ID.crumb)}


def layout(building=None, floor=None, room=None, by=None, **query):
    """`?building=&floor=&room=&from=&to=&by=` (the managers' dashboard links here): the place and days to open
    with; anything unreadable falls back to the whole site over the last 14 days."""
    lang = request_lang()
    denied = forbidden_page(access.ANALYSIS_ENERGY, lang)
    if denied is not None:
        return denied
    ctx = billing()
    days = default_days(ctx.local(ctx.now()).date(), days=14)
    building = inputs.key_text(building, 100)
    rooms = [room] if building and inputs.key_text(room, 100) else []
    try:
        applied = _applied(query.get("from"), query.get("to"), building, floor, rooms, by)
    except BadQuery:
        applied = _applied(days["from"], days["to"], building, floor, rooms, by)
    places = _places()
    shown = _shown(applied, *_report(applied)[:2], lang)
    return html.Div([
        html.H1(t("analysis.energy.heading", lang), className="h4"),
        energy_form(ID, applied, places, lang, may_export=allowed(EXPORT)),
        html.Div(id=ID.RESULT, role="status", className="small"),
        html.Div(shown["crumbs"], id=ID.CRUMBS, className="small mb-1"),
        html.P(shown["total"], id=ID.TOTAL, className="mb-1"),
        html.P([t("analysis.energy.drill", lang), " ", t("analysis.energy.estimated_note", lang)],
               className="small text-muted mb-1"),
        dcc.Graph(id=ID.CHART, figure=shown["figure"], config={"displaylogo": False, "responsive": True}),
        data_grid(ID.GRID, shown["rows"], energy_columns(lang, site_zone()), lang, row_style=ESTIMATED_ROW,
                  pinned_bottom=shown["pinned"], height="45vh"),
        dcc.Store(id=ID.APPLIED, data=applied),
        dcc.Download(id=ID.DOWNLOAD),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("analysis.energy.places", VIEW, Output(ID.FLOOR, "options"), Output(ID.ROOMS, "options"),
                  Input(ID.BUILDING, "value"), Input(ID.FLOOR, "value"), changes_state=False,
                  prevent_initial_call=True)
def place_options(building, floor):
    places, lang = _places(), request_lang()
    building = inputs.key_text(building, 100)
    return floor_options(places, building, lang), room_options(places, building, floor_value(floor))


@guarded_callback("analysis.energy.query", VIEW, Input(ID.QUERY, "n_clicks"), Input(ID.CHART, "clickData"),
                  Input(ID.crumb(ALL), "n_clicks"), State(ID.FROM, "value"), State(ID.TO, "value"),
                  State(ID.BUILDING, "value"), State(ID.FLOOR, "value"), State(ID.ROOMS, "value"),
                  State(ID.BY, "value"), State(ID.APPLIED, "data"),
                  output={"figure": Output(ID.CHART, "figure"), "rows": Output(ID.GRID, "rowData"),
                          "pinned": Output(ID.GRID, "dashGridOptions"), "total": Output(ID.TOTAL, "children"),
                          "applied": Output(ID.APPLIED, "data"), "crumbs": Output(ID.CRUMBS, "children"),
                          "building": Output(ID.BUILDING, "value"), "floor": Output(ID.FLOOR, "value"),
                          "rooms": Output(ID.ROOMS, "value"), "result": Output(ID.RESULT, "children")},
                  changes_state=False, prevent_initial_call=True)
def query(n_clicks, click, crumb_clicks, first, last, building, floor, rooms, by, applied):
    lang = request_lang()
    trigger = dash_ctx.triggered_id
    keep = {k: no_update for k in ("figure", "rows", "pinned", "total", "applied", "crumbs", "building", "floor",
                                   "rooms")}
    try:
        if trigger == ID.CHART or isinstance(trigger, dict):
            base = applied if isinstance(applied, dict) else {}
            asked = _applied(base.get("from"), base.get("to"), base.get("building"), base.get("floor"),
                             base.get("rooms"), base.get("by"))
            if trigger == ID.CHART:
                point = (click or {}).get("points", [{}])[0] if isinstance(click, dict) else {}
                key = point.get("customdata") if isinstance(point, dict) else None
                key = key[0] if isinstance(key, list) and key else key
                place = drilled(asked, key)
            else:
                if not any(crumb_clicks or []):
                    raise PreventUpdate
                level = trigger.get("level")
                place = {"building": asked["building"] if level >= 1 else None,
                         "floor": asked["floor"] if level >= 2 else None, "rooms": []} \
                    if isinstance(level, int) and 0 <= level <= 2 else None
            if place is None:
                raise PreventUpdate
            asked = {**asked, **place}
        else:
            if not n_clicks:
                raise PreventUpdate
            asked = _applied(first, last, building, floor, rooms, by)
        df, grain, _group = _report(asked)
    except BadQuery as exc:
        return {**keep, "result": html.Span(str(exc), className="text-danger")}
    shown = _shown(asked, df, grain, lang)
    options = {"pinnedBottomRowData": shown.pop("pinned")}
    return {**shown, "pinned": options, "building": asked["building"], "floor": asked["floor"],
            "rooms": asked["rooms"], "result": None}


@guarded_callback("analysis.energy.zoom", VIEW, Output(ID.CHART, "figure", allow_duplicate=True),
                  Input(ID.CHART, "relayoutData"), State(ID.APPLIED, "data"), changes_state=False,
                  prevent_initial_call=True)
def zoom(relayout, applied):
    """Zoomed in: the visible window again at the finest grain its width allows (at most the point budget); zoomed
    out (autorange): the query's own grain."""
    if not isinstance(relayout, dict) or not isinstance(applied, dict):
        raise PreventUpdate
    lang = request_lang()
    try:
        asked = _applied(applied.get("from"), applied.get("to"), applied.get("building"), applied.get("floor"),
                         applied.get("rooms"), applied.get("by"))
    except BadQuery:
        raise PreventUpdate from None
    if relayout.get("xaxis.autorange"):
        df, grain, _ = _report(asked)
        return energy_figure(df, lang, by=grain)
    lo, hi = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    try:
        first, last = inputs.day(str(lo)[:10]), inputs.day(str(hi)[:10])
    except inputs.BadValue:
        raise PreventUpdate from None
    if first is None or last is None or first > last:
        raise PreventUpdate
    first = max(first, dt.date.fromisoformat(asked["from"]))
    last = min(last, dt.date.fromisoformat(asked["to"]))
    if first > last:
        raise PreventUpdate
    finest = grain_for((last - first).days + 1, GRAINS[0])
    kept = billing().local(billing().now()).date() - dt.timedelta(days=runtime().cfg.analytics.fine_days - 1)
    if finest == "15min" and first < kept:
        finest = "hour"   # quarters are kept [analytics] fine_days only
    if GRAINS.index(finest) >= GRAINS.index(grain_for((dt.date.fromisoformat(asked["to"]) -
                                                       dt.date.fromisoformat(asked["from"])).days + 1, asked["by"])):
        raise PreventUpdate   # no finer step fits the window: the bars already drawn stay
    df, grain, _ = _report(asked, first, last, by=finest)
    fig = energy_figure(df, lang, by=grain)
    fig.update_xaxes(range=[lo, hi])
    return fig


@guarded_callback("analysis.energy.export", EXPORT, Output(ID.DOWNLOAD, "data"),
                  Output(ID.RESULT, "children", allow_duplicate=True), Input(ID.EXPORT, "n_clicks"),
                  State(ID.APPLIED, "data"), changes_state=False, prevent_initial_call=True)
def export(n_clicks, applied):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    if not isinstance(applied, dict):
        return no_update, html.Span(t("analysis.nothing_to_export", lang), className="text-warning")
    try:
        asked = _applied(applied.get("from"), applied.get("to"), applied.get("building"), applied.get("floor"),
                         applied.get("rooms"), applied.get("by"))
    except BadQuery as exc:
        return no_update, html.Span(str(exc), className="text-danger")
    df, grain, _ = _report(asked)
    ctx = billing()
    op = signed_in()
    record_export(runtime().engine, action="analysis.energy_export",
                  target=f"building:{asked['building']}" if asked["building"] else None,
                  operator=op.username if op else "-", rows=len(df), shown=asked, now=ctx.now(),
                  source=source_address())
    book = energy_workbook(df, grain, asked, lang, site_zone())
    stamp = show_local(ctx.local(ctx.now()), "stamp")
    return (dcc.send_bytes(book.to_bytes(), f"{t('analysis.energy.filename', lang)}-{stamp}.xlsx"),
            exported_message(t("analysis.exported", lang, n=len(df)), book, lang))
