"""Reconciliation page builders: open mismatch alarms and the shadow-billing table."""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.clock import show_local
from core.formatting import format_money
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Reconciliation as ID
from storage.alarms import kind_text, message_text



def alarm_rows(alarms: list[dict], lang: str) -> list[dict]:
    return [{"id": a["id"], "kind": kind_text(a["kind"], lang), "meter_address": a["meter_address"],
             "building": a.get("building"), "room": a.get("room"),
             "opened_at": show_local(a["opened_at"], "minutes"), "message": message_text(a, lang)} for a in alarms]


def shadow_rows(rows: list[dict]) -> list[dict]:
    return [{"meter_address": r["meter_address"], "building": r.get("building"), "room": r.get("room"),
             "days": r["days"], "worst_day": r["worst_day"].isoformat(),
             "expected": format_money(r["expected"]), "actual": format_money(r["actual"]),
             "difference": format_money(r["difference"], sign=True),
             "ratio": "∞" if r["worst_ratio"] == float("inf") else f"{r['worst_ratio'] * 100:.1f} %"}
            for r in rows]


def _grid(ident: str, fields: list[str], rows: list[dict], lang: str, selectable: bool = False) -> dag.AgGrid:
    options = {"domLayout": "autoHeight", "localeText": grid_locale(lang)}
    if selectable:
        options["rowSelection"] = {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
    return dag.AgGrid(id=ident, rowData=rows, getRowId="params.data.id" if selectable else None,
                      columnDefs=[{"field": f, "headerName": t(f"reconciliation.col.{f}", lang)} for f in fields],
                      defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 100},
                      columnSize="responsiveSizeToFit",
                      dashGridOptions=options,
                      style={"width": "100%"})


def resolve_form(lang: str) -> html.Div:
    """Resolve the selected alarm with a note (alarm.resolve)."""
    return html.Div([
        dbc.InputGroup([
            dbc.Label(t("reconciliation.note", lang), html_for=ID.NOTE, className="visually-hidden"),
            dbc.Input(id=ID.NOTE, autoComplete="off", placeholder=t("reconciliation.note", lang)),
            dbc.Button(t("reconciliation.resolve", lang), id=ID.RESOLVE, color="primary"),
        ], className="mt-2"),
        html.P(t("reconciliation.resolve_help", lang), className="form-text"),
        html.Div(id=ID.RESOLVED, role="status", className="small"),
    ])


def reconciliation_page(alarms: list[dict], today: dt.date, lang: str, may_resolve: bool = False) -> dbc.Container:
    return dbc.Container([
        html.H1(t("reconciliation.heading", lang), className="h4"),
        html.P(t("reconciliation.intro", lang), className="text-muted small"),
        html.H2(t("reconciliation.alarms_heading", lang), className="h6 mt-3"),
        html.P(t("reconciliation.no_alarms", lang), className="small text-success") if not alarms else None,
        _grid(ID.ALARMS, ["kind", "meter_address", "building", "room", "opened_at", "message"],
              alarm_rows(alarms, lang), lang, selectable=may_resolve),
        resolve_form(lang) if may_resolve else None,
        html.H2(t("reconciliation.shadow_heading", lang), className="h6 mt-4"),
        html.P(t("reconciliation.shadow_intro", lang), className="text-muted small"),
        dbc.Row([
            dbc.Col([dbc.Label(t("reconciliation.first_day", lang), html_for=ID.FIRST),
                     dcc.DatePickerSingle(id=ID.FIRST, date=(today - dt.timedelta(days=30)).isoformat(),
                                          display_format="YYYY-MM-DD")], xs=6, md=3),
            dbc.Col([dbc.Label(t("reconciliation.last_day", lang), html_for=ID.LAST),
                     dcc.DatePickerSingle(id=ID.LAST, date=today.isoformat(), display_format="YYYY-MM-DD")],
                    xs=6, md=3),
            dbc.Col(dbc.Button(t("reconciliation.run", lang), id=ID.RUN, color="primary"), xs=12, md=3,
                    className="d-flex align-items-end mt-2 mt-md-0"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.MESSAGE, role="status", className="small mb-2"),
        _grid(ID.SHADOW, ["meter_address", "building", "room", "days", "worst_day", "expected", "actual",
                           "difference", "ratio"], [], lang),
    ], fluid=True)
