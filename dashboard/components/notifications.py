"""Notifications page builders: the state filter, the messages grid and the dead letters' resend."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from core.clock import show_local, site_time
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Notifications as ID
from notify.outbox import STATES

FIELDS = ("id", "created_at", "recipient", "phone", "kind", "text", "state", "attempts", "next_attempt_at",
          "last_error", "sent_at")


def message_rows(rows: list[dict], zone, lang: str) -> list[dict]:
    def when(v):
        return show_local(site_time(v, zone), "minutes") if v is not None else ""
    return [{"id": r["id"], "created_at": when(r["created_at"]), "recipient": t(f"notifications.to.{r['recipient']}", lang),
             "phone": r["phone"], "kind": t(f"notifications.kind.{r['kind']}", lang), "text": r["text"],
             "state": t(f"notifications.state.{r['state']}", lang)
             + (" · " + t("notifications.held", lang) if r.get("held") and r["state"] == "queued" else ""),
             "state_code": r["state"], "attempts": r["attempts"],
             "next_attempt_at": when(r["next_attempt_at"]) if r["state"] in ("queued", "failed") else "",
             "last_error": r["last_error"] or "", "sent_at": when(r["sent_at"])} for r in rows]


def counts_line(counts: dict[str, int], lang: str) -> str:
    return " · ".join(f"{t(f'notifications.state.{s}', lang)} {counts.get(s, 0)}" for s in STATES)


def notifications_page(rows: list[dict], counts: dict[str, int], lang: str, may_resend: bool) -> dbc.Container:
    grid = dag.AgGrid(
        id=ID.GRID, rowData=rows, getRowId="params.data.id",
        columnDefs=[{"field": f, "headerName": t(f"notifications.col.{f}", lang),
                     **({"wrapText": True, "autoHeight": True, "minWidth": 220} if f == "text" else {})}
                    for f in FIELDS],
        defaultColDef={"sortable": True, "resizable": True, "filter": True, "minWidth": 100},
        columnSize="responsiveSizeToFit",
        dashGridOptions={"domLayout": "autoHeight", "localeText": grid_locale(lang), "pagination": True,
                         "paginationPageSize": 50,
                         "rowSelection": {"mode": "multiRow", "enableClickSelection": True}},
        style={"width": "100%"})
    options = [{"label": t("notifications.all", lang), "value": ""}] + [
        {"label": t(f"notifications.state.{s}", lang), "value": s} for s in STATES]
    resend = [
        dbc.Button(t("notifications.resend", lang), id=ID.RESEND, color="primary", className="mt-2"),
        html.P(t("notifications.resend_help", lang), className="form-text"),
    ] if may_resend else []
    return dbc.Container([
        html.H1(t("notifications.heading", lang), className="h4"),
        html.P(t("notifications.intro", lang), className="text-muted small"),
        dbc.Row([
            dbc.Col([dbc.Label(t("notifications.filter", lang), html_for=ID.STATE),
                     dcc.Dropdown(id=ID.STATE, options=options, value="", clearable=False, searchable=False)],
                    xs=12, md=4),
            dbc.Col(html.P(counts_line(counts, lang), id=ID.COUNTS, className="small mt-md-4 mb-0"), xs=12, md=8),
        ], className="g-2 mb-2"),
        grid,
        *resend,
        html.Div(id=ID.RESULT, role="status", className="small"),
        dcc.Interval(id=ID.REFRESH, interval=15_000),
    ], fluid=True, className="py-3")
