"""Alarm history (/alarms/history, alarm.view): events opened in a range of the site's days, by building, room or
meter number, kind, level and state (open, closed, unacknowledged, acknowledged); the XLSX export (report.export)
writes what the query finds, through core.workbook, and is written to the operation log."""
from __future__ import annotations

import datetime as dt

import dash
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from core.clock import show_local, site_time, utc_time, utcnow
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.alarms import alarm_rows, count_line, default_range, history_page, history_workbook
from dashboard.components.workbook import exported_message
from dashboard.i18n import request_lang, t
from dashboard.ids import Alarms as ID
from dashboard.services import operator_name, runtime, site_zone
from storage import alarm_queries, alarms
from storage.alarm_queries import AlarmQuery

EXPORT = P.REPORT_EXPORT
dash.register_page(__name__, path="/alarms/history", title="Wattline", name="alarm_history")


class BadFilter(ValueError):
    """A filter the page cannot read: the message key and its parameters."""

    def __init__(self, key: str, **params):
        super().__init__(key)
        self.key, self.params = key, params


def applied_filters(first, last, building, room, meter, kinds, levels, state) -> dict:
    """The query's filters as plain JSON (kept in a dcc.Store for the export); BadFilter for what cannot be read."""
    try:
        first_day, last_day = inputs.day(first), inputs.day(last)
    except inputs.BadValue as exc:
        raise BadFilter("alarms.bad_date", value=inputs.shown(exc)) from None
    if first_day and last_day and last_day < first_day:
        raise BadFilter("alarms.bad_range")
    number = meter.strip() if isinstance(meter, str) else ""
    if meter is not None and not isinstance(meter, str) or number and not (
            number.isascii() and number.isdigit() and len(number) <= 12):
        raise BadFilter("alarms.bad_meter", value=inputs.shown(meter))
    levels = levels if isinstance(levels, list) else []
    return {"from": first_day.isoformat() if first_day else None, "to": last_day.isoformat() if last_day else None,
            "building": inputs.record_id(building) if isinstance(building, int) else None,
            "room": inputs.record_id(room) if isinstance(room, int) else None,
            "meter": number or None, "kinds": [k for k in inputs.texts(kinds) if k in alarms.KINDS],
            "levels": [v for v in levels if isinstance(v, int) and not isinstance(v, bool)
                       and v in {int(x) for x in alarms.AlarmLevel}],
            "state": state if state in alarms.STATES else None}


def alarm_query(applied: dict, zone) -> AlarmQuery:
    """The site's days as UTC times: from the first day's midnight to the midnight after the last."""
    def midnight(day: str | None, plus: int = 0):
        if not day:
            return None
        return utc_time(dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=plus), dt.time()), zone)
    return AlarmQuery(kinds=tuple(applied.get("kinds") or ()), levels=tuple(applied.get("levels") or ()),
                      building_id=applied.get("building"), room_id=applied.get("room"),
                      meter_address=applied.get("meter"), state=applied.get("state"),
                      since=midnight(applied.get("from")), until=midnight(applied.get("to"), 1))


def _read(applied: dict, lang: str):
    with runtime().engine.connect() as conn:
        frame, more = alarm_queries.list_alarms(conn, alarm_query(applied, site_zone()))
    return alarm_rows(frame, site_zone(), lang), count_line(len(frame), more, None, lang)


def _today() -> dt.date:
    rt = runtime()
    return site_time(rt.billing.now() if rt.billing is not None else utcnow(), site_zone()).date()


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ALARM_HISTORY, lang)
    if denied is not None:
        return denied
    applied = applied_filters(*default_range(_today()).values(), None, None, None, [], [], None)
    rows, count = _read(applied, lang)
    with runtime().engine.connect() as conn:
        buildings = alarm_queries.buildings(conn)
    return history_page(rows, count, applied, buildings, lang, may_export=allowed(EXPORT))


@guarded_callback("alarms.history_rooms", access.ALARM_HISTORY, Output(ID.H_ROOM, "options"),
                  Input(ID.H_BUILDING, "value"), changes_state=False, prevent_initial_call=True)
def rooms(building):
    building = inputs.record_id(building) if isinstance(building, int) else None
    if building is None:
        return []
    with runtime().engine.connect() as conn:
        return [{"label": r["name"], "value": r["id"]} for r in alarm_queries.rooms_of(conn, building)]


@guarded_callback("alarms.history", access.ALARM_HISTORY,
                  output={"rows": Output(ID.H_GRID, "rowData"), "count": Output(ID.H_COUNT, "children"),
                          "applied": Output(ID.H_APPLIED, "data"), "result": Output(ID.H_RESULT, "children")},
                  inputs={"n_clicks": Input(ID.H_SEARCH, "n_clicks")},
                  state={"first": State(ID.H_FROM, "date"), "last": State(ID.H_TO, "date"),
                         "building": State(ID.H_BUILDING, "value"), "room": State(ID.H_ROOM, "value"),
                         "meter": State(ID.H_METER, "value"), "kinds": State(ID.H_KIND, "value"),
                         "levels": State(ID.H_LEVEL, "value"), "state": State(ID.H_STATE, "value")},
                  changes_state=False, prevent_initial_call=True)
def search(n_clicks, first, last, building, room, meter, kinds, levels, state):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        applied = applied_filters(first, last, building, room, meter, kinds, levels, state)
    except BadFilter as exc:
        return {"rows": no_update, "count": no_update, "applied": no_update,
                "result": html.Span(t(exc.key, lang, **exc.params), className="text-danger")}
    rows, count = _read(applied, lang)
    return {"rows": rows, "count": count, "applied": applied, "result": None}


@guarded_callback("alarms.history_export", EXPORT, Output(ID.H_DOWNLOAD, "data"),
                  Output(ID.H_RESULT, "children", allow_duplicate=True), Input(ID.H_EXPORT, "n_clicks"),
                  State(ID.H_APPLIED, "data"), changes_state=False, prevent_initial_call=True)
def export(n_clicks, applied):
    """What the last search asked for (the stored filters, read again), as XLSX; in the operation log."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        shown = inputs.mapping(applied)
        applied = applied_filters(shown.get("from"), shown.get("to"), shown.get("building"), shown.get("room"),
                                  shown.get("meter"), shown.get("kinds"), shown.get("levels"), shown.get("state"))
    except BadFilter as exc:
        return no_update, html.Span(t(exc.key, lang, **exc.params), className="text-danger")
    rt = runtime()
    now = rt.billing.now() if rt.billing is not None else utcnow()
    with rt.engine.begin() as conn:
        frame = alarm_queries.export_alarms(conn, alarm_query(applied, site_zone()), operator_name(), now,
                                            shown=applied, source=source_address())
    if frame.empty:
        return no_update, html.Span(t("alarms.nothing_to_export", lang), className="text-warning")
    book = history_workbook(frame, applied, site_zone(), lang)
    stamp = show_local(site_time(now, site_zone()), "stamp")
    return (dcc.send_bytes(book.to_bytes(), f"{t('alarms.filename', lang)}-{stamp}.xlsx"),
            exported_message(t("alarms.exported", lang, n=len(frame)), book, lang))
