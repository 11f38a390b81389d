"""Workers' terminals (/workorders/terminals, 手机终端管理): each registered phone with its worker, state, browser
and app version, last location and last seen, and the worker's online rate over the last N days (defined in
workorders/field.py)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, html

from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.field import terminals_view
from dashboard.i18n import request_lang, t
from dashboard.ids import Terminals as ID
from dashboard.services import field, site_zone

dash.register_page(__name__, path=access.TERMINALS.path, title="Wattline", name="terminals")

DAY_CHOICES = (7, 30, 90)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.TERMINALS, lang)
    if denied is not None:
        return denied
    return dbc.Container([
        html.H1(t("terminals.heading", lang), className="h4"),
        html.P(t("terminals.definition", lang), className="small text-muted"),
        dbc.Select(id=ID.DAYS, value="30", className="mb-2", style={"maxWidth": "12rem"},
                   options=[{"label": t("terminals.days", lang, days=d), "value": str(d)} for d in DAY_CHOICES]),
        html.Div(terminals_view(field().terminals(30), lang, site_zone(), 30), id=ID.RATES),
    ], fluid=True, id=ID.PAGE, className="field-page py-2")


@guarded_callback("terminals.days", access.TERMINALS, Output(ID.RATES, "children"), Input(ID.DAYS, "value"),
                  prevent_initial_call=True, changes_state=False)
def days_changed(value):
    days = int(value) if value in {str(d) for d in DAY_CHOICES} else 30
    return terminals_view(field().terminals(days), request_lang(), site_zone(), days)
