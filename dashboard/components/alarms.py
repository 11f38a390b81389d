"""Alarm pages' builders: the open alarms with their filters and the acknowledgement, the history's query form,
grid rows from storage.alarm_queries frames, and the history's workbook."""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from core.clock import show_time
from core.workbook import DATETIME, ExportWorkbook
from core.clock import site_time
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Alarms as ID
from storage.alarms import KINDS, STATES, AlarmLevel, kind_text, level_text, message_text

FIELDS = ("opened_at", "level", "kind", "subject", "building", "room", "message", "closed_at", "acknowledged")
ACK_NOTE_LONGEST = 500


def subject_text(r: dict, lang: str) -> str:
    """The meter's number, the gateway's bus, the gateway, the transformer area's name, the work order's number,
    or the site."""
    kind = r.get("subject_kind")
    if kind == "meter":
        return r.get("meter") or f"#{r.get('subject_id')}"
    if kind == "bus":
        return t("alarms.bus_of", lang, gateway=r.get("gateway") or "?", bus=r.get("bus_no") or "?")
    if kind == "gateway":
        return r.get("gateway") or f"#{r.get('subject_id')}"
    if kind == "area" and _text(r.get("area")):
        return t("alarms.subject_named.area", lang, name=r["area"])
    if kind == "work_order" and _text(r.get("work_order")):
        return t("alarms.subject_named.work_order", lang, number=r["work_order"])
    return t(f"alarms.subject.{kind}", lang) if kind in ("site", "area", "work_order") else str(kind)


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) or v is pd.NaT else str(v)


def _when(v, zone) -> str:
    return "" if v is None or v is pd.NaT or (isinstance(v, float) and v != v) else show_time(
        pd.Timestamp(v).to_pydatetime(), zone, "seconds")


def alarm_rows(frame: pd.DataFrame, zone, lang: str) -> list[dict]:
    rows = []
    for r in frame.to_dict("records"):
        ack_by = _text(r.get("acknowledged_by"))
        rows.append({
            "id": int(r["id"]), "opened_at": _when(r["opened_at"], zone), "level": level_text(int(r["level"]), lang),
            "level_code": int(r["level"]), "kind": kind_text(r["kind"], lang), "kind_code": r["kind"],
            "subject": subject_text(r, lang), "building": _text(r.get("building")), "room": _text(r.get("room")),
            "message": message_text(r, lang), "closed_at": _when(r.get("closed_at"), zone),
            "acknowledged": (f"{ack_by} {_when(r.get('acknowledged_at'), zone)}"
                             + (f": {_text(r.get('ack_note'))}" if _text(r.get("ack_note")) else "")) if ack_by else "",
        })
    return rows


def count_line(n: int, more: bool, unacknowledged: int | None, lang: str) -> str:
    said = t("alarms.count_more" if more else "alarms.count", lang, n=n)
    return said + (" " + t("alarms.unacknowledged", lang, n=unacknowledged) if unacknowledged is not None else "")


def _grid(grid_id: str, rows: list[dict], lang: str, select: bool) -> dag.AgGrid:
    options = {"domLayout": "autoHeight", "localeText": grid_locale(lang), "pagination": True,
               "paginationPageSize": 50}
    if select:
        options["rowSelection"] = {"mode": "multiRow", "enableClickSelection": True}
    return dag.AgGrid(
        id=grid_id, rowData=rows, getRowId="params.data.id",
        columnDefs=[{"field": f, "headerName": t(f"alarms.col.{f}", lang),
                     **({"wrapText": True, "autoHeight": True, "minWidth": 220} if f == "message" else {})}
                    for f in FIELDS],
        defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 100},
        columnSize="responsiveSizeToFit", dashGridOptions=options, style={"width": "100%"})


def kind_options(lang: str) -> list[dict]:
    return [{"label": kind_text(k, lang), "value": k} for k in KINDS]


def level_options(lang: str) -> list[dict]:
    return [{"label": level_text(level, lang), "value": int(level)} for level in AlarmLevel]


def building_options(buildings: list[dict]) -> list[dict]:
    return [{"label": b["name"], "value": b["id"]} for b in buildings]


def _labelled(label: str, control, html_for: str, **cols) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=html_for), control], xs=12, **cols)


def alarms_page(rows: list[dict], count: str, buildings: list[dict], lang: str, may_ack: bool) -> dbc.Container:
    ack = [
        dbc.Row([
            _labelled(t("alarms.note", lang), dbc.Textarea(id=ID.NOTE, maxLength=ACK_NOTE_LONGEST, rows=2,
                                                           placeholder=t("alarms.note_hint", lang)), ID.NOTE, md=8),
            dbc.Col(dbc.Button(t("alarms.ack", lang), id=ID.ACK, color="primary", className="mt-md-4"), xs=12, md=4),
        ], className="g-2 mt-2"),
        html.P(t("alarms.ack_help", lang), className="form-text"),
    ] if may_ack else []
    return dbc.Container([
        html.H1(t("alarms.heading", lang), className="h4"),
        html.P([t("alarms.intro", lang), " ", dcc.Link(t("alarms.history_link", lang), href="/alarms/history")],
               className="text-muted small"),
        dbc.Row([
            _labelled(t("alarms.kind", lang), dcc.Dropdown(id=ID.KIND, options=kind_options(lang), multi=True),
                      ID.KIND, md=4),
            _labelled(t("alarms.level", lang), dcc.Dropdown(id=ID.LEVEL, options=level_options(lang), multi=True),
                      ID.LEVEL, md=4),
            _labelled(t("alarms.building", lang), dcc.Dropdown(id=ID.BUILDING, options=building_options(buildings)),
                      ID.BUILDING, md=4),
        ], className="g-2 mb-2"),
        html.P(count, id=ID.COUNT, className="small mb-1"),
        _grid(ID.GRID, rows, lang, select=may_ack),
        *ack,
        html.Div(id=ID.RESULT, role="status", className="small"),
        dcc.Interval(id=ID.REFRESH, interval=15_000),
    ], fluid=True, className="py-3")


def history_page(rows: list[dict], count: str, applied: dict, buildings: list[dict], lang: str,
                 may_export: bool) -> dbc.Container:
    states = [{"label": t("alarms.all", lang), "value": ""}] + [
        {"label": t(f"alarms.state.{s}", lang), "value": s} for s in STATES]
    export = [dbc.Button(t("alarms.export", lang), id=ID.H_EXPORT, color="secondary", className="mt-2"),
              dcc.Download(id=ID.H_DOWNLOAD)] if may_export else []
    return dbc.Container([
        html.H1(t("alarms.history_heading", lang), className="h4"),
        html.P([t("alarms.history_intro", lang), " ", dcc.Link(t("alarms.open_link", lang), href="/alarms")],
               className="text-muted small"),
        dbc.Row([
            _labelled(t("alarms.from", lang), dcc.DatePickerSingle(id=ID.H_FROM, date=applied.get("from"),
                                                                   display_format="YYYY-MM-DD"), ID.H_FROM, md=3),
            _labelled(t("alarms.to", lang), dcc.DatePickerSingle(id=ID.H_TO, date=applied.get("to"),
                                                                 display_format="YYYY-MM-DD"), ID.H_TO, md=3),
            _labelled(t("alarms.building", lang), dcc.Dropdown(id=ID.H_BUILDING, options=building_options(buildings)),
                      ID.H_BUILDING, md=3),
            _labelled(t("alarms.room", lang), dcc.Dropdown(id=ID.H_ROOM, options=[]), ID.H_ROOM, md=3),
            _labelled(t("alarms.meter", lang), dbc.Input(id=ID.H_METER, maxLength=12, inputMode="numeric",
                                                         placeholder="202611210001"), ID.H_METER, md=3),
            _labelled(t("alarms.kind", lang), dcc.Dropdown(id=ID.H_KIND, options=kind_options(lang), multi=True),
                      ID.H_KIND, md=3),
            _labelled(t("alarms.level", lang), dcc.Dropdown(id=ID.H_LEVEL, options=level_options(lang), multi=True),
                      ID.H_LEVEL, md=3),
            _labelled(t("alarms.state_label", lang), dcc.Dropdown(id=ID.H_STATE, options=states, value="", clearable=False,
                                                            searchable=False), ID.H_STATE, md=3),
        ], className="g-2 mb-2"),
        dbc.Button(t("alarms.search", lang), id=ID.H_SEARCH, color="primary", className="mb-2"),
        html.Div(id=ID.H_RESULT, role="status", className="small"),
        html.P(count, id=ID.H_COUNT, className="small mb-1"),
        _grid(ID.H_GRID, rows, lang, select=False),
        *export,
        dcc.Store(id=ID.H_APPLIED, data=applied),
    ], fluid=True, className="py-3")


def history_workbook(frame: pd.DataFrame, applied: dict, zone, lang: str) -> ExportWorkbook:
    """One sheet of the events (times in the site's zone), one of the query that chose them."""
    book = ExportWorkbook()
    headers = [t(f"alarms.col.{f}", lang) for f in ("opened_at", "level", "kind", "subject", "building", "room",
                                                     "message", "closed_at")] + [
        t("alarms.col.acknowledged_by", lang), t("alarms.col.acknowledged_at", lang), t("alarms.col.note", lang)]
    sheet = book.add_sheet(t("alarms.sheet", lang), headers, widths=(20, 10, 22, 16, 14, 10, 50, 20, 14, 20, 40),
                           formats={0: DATETIME, 7: DATETIME, 9: DATETIME})

    def local(v):
        if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
            return None
        return site_time(pd.Timestamp(v).to_pydatetime(), zone)

    for r in frame.to_dict("records"):
        sheet.append([local(r["opened_at"]), level_text(int(r["level"]), lang), kind_text(r["kind"], lang),
                      subject_text(r, lang), _text(r.get("building")), _text(r.get("room")), message_text(r, lang),
                      local(r.get("closed_at")), _text(r.get("acknowledged_by")), local(r.get("acknowledged_at")),
                      _text(r.get("ack_note"))])
    query = book.add_sheet(t("alarms.query_sheet", lang), [t("alarms.query_key", lang), t("alarms.query_value", lang)],
                           widths=(20, 40))
    for k, v in applied.items():
        query.append([k, ", ".join(map(str, v)) if isinstance(v, list) else _text(v)])
    return book


def default_range(today: dt.date) -> dict:
    return {"from": (today - dt.timedelta(days=6)).isoformat(), "to": today.isoformat()}
