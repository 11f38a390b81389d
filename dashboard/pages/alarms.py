"""Open alarms (/alarms, alarm.view or alarm.ack): newest first, filtered by kind, level and building, refreshed
every 15 s; selected ones acknowledged with a note (alarm.ack, each in the operation log). Also the navbar's
count of unacknowledged open alarms (dashboard/components/shell.py), for whoever may open this page."""
from __future__ import annotations

import dash
from dash import Input, Output, State

from core import permissions as P
from core.clock import utcnow
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.alarms import ACK_NOTE_LONGEST, alarm_rows, alarms_page, count_line
from dashboard.components.cashier import notice
from dashboard.i18n import request_lang, t
from dashboard.ids import Alarms as ID
from dashboard.ids import Shell
from dashboard.services import operator_name, runtime, site_zone
from storage import alarm_queries, alarms
from storage.alarm_queries import AlarmQuery

ACK = P.ALARM_ACK
dash.register_page(__name__, path="/alarms", title="Wattline", name="alarms")


def _query(kinds, levels, building) -> AlarmQuery:
    """The filters as the browser sent them; anything not offered is dropped, never an error."""
    levels = levels if isinstance(levels, list) else []
    return AlarmQuery(open_only=True, kinds=tuple(k for k in inputs.texts(kinds) if k in alarms.KINDS),
                      levels=tuple(v for v in levels if isinstance(v, int) and not isinstance(v, bool)
                                   and v in {int(x) for x in alarms.AlarmLevel}),
                      building_id=inputs.record_id(building) if isinstance(building, int) else None)


def _read(query: AlarmQuery, lang: str):
    with runtime().engine.connect() as conn:
        frame, more = alarm_queries.list_alarms(conn, query)
        waiting = alarms.unacknowledged_count(conn)
    return alarm_rows(frame, site_zone(), lang), count_line(len(frame), more, waiting, lang)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ALARMS, lang)
    if denied is not None:
        return denied
    rows, count = _read(AlarmQuery(open_only=True), lang)
    with runtime().engine.connect() as conn:
        buildings = alarm_queries.buildings(conn)
    return alarms_page(rows, count, buildings, lang, may_ack=allowed(ACK))


@guarded_callback("alarms.list", access.ALARMS,
                  output={"rows": Output(ID.GRID, "rowData"), "count": Output(ID.COUNT, "children")},
                  inputs={"kinds": Input(ID.KIND, "value"), "levels": Input(ID.LEVEL, "value"),
                          "building": Input(ID.BUILDING, "value"), "_tick": Input(ID.REFRESH, "n_intervals")},
                  changes_state=False, prevent_initial_call=True)
def show(kinds, levels, building, _tick):
    lang = request_lang()
    rows, count = _read(_query(kinds, levels, building), lang)
    return {"rows": rows, "count": count}


@guarded_callback("alarms.acknowledge", ACK,
                  output={"result": Output(ID.RESULT, "children"), "rows": Output(ID.GRID, "rowData"),
                          "count": Output(ID.COUNT, "children"), "note": Output(ID.NOTE, "value")},
                  inputs={"n_clicks": Input(ID.ACK, "n_clicks")},
                  state={"selected": State(ID.GRID, "selectedRows"), "note": State(ID.NOTE, "value"),
                         "kinds": State(ID.KIND, "value"), "levels": State(ID.LEVEL, "value"),
                         "building": State(ID.BUILDING, "value")},
                  prevent_initial_call=True)
def acknowledge(n_clicks, selected, note, kinds, levels, building):
    """The selected events acknowledged by this operator with the note (each in the operation log)."""
    if not n_clicks:
        raise dash.exceptions.PreventUpdate
    lang = request_lang()
    keep = {"rows": dash.no_update, "count": dash.no_update, "note": dash.no_update}
    rows = selected if isinstance(selected, list) else []
    ids = inputs.record_ids([r.get("id") for r in rows if isinstance(r, dict)])[:500]
    if not ids:
        return {"result": notice(t("alarms.pick", lang)), **keep}
    text = note.strip() if isinstance(note, str) else ""
    if note is not None and not isinstance(note, str) or len(text) > ACK_NOTE_LONGEST or (
            text and not all(ch.isprintable() or ch in "\n\t" for ch in text)):
        return {"result": notice(t("alarms.bad_note", lang, n=ACK_NOTE_LONGEST), "danger"), **keep}
    rt = runtime()
    done = 0
    with rt.engine.begin() as conn:
        now = rt.billing.now() if rt.billing is not None else utcnow()
        for alarm_id in ids:
            done += alarms.acknowledge(conn, alarm_id, operator_name(), now, source=source_address(), note=text)
    skipped = len(ids) - done
    said = t("alarms.acknowledged", lang, n=done) + (" " + t("alarms.already", lang, n=skipped) if skipped else "")
    found, count = _read(_query(kinds, levels, building), lang)
    return {"result": notice(said, "success" if done else "warning"), "rows": found, "count": count,
            "note": "" if done else dash.no_update}


@guarded_callback("alarms.badge", access.ALARMS, Output(Shell.ALARM_BADGE, "children"),
                  Input(Shell.ALARM_TICK, "n_intervals"), changes_state=False)
def badge(_tick):
    """The navbar's count of open alarms nobody has acknowledged (one indexed count), empty at none."""
    with runtime().engine.connect() as conn:
        n = alarms.unacknowledged_count(conn)
    return str(n) if n else ""
