"""Workers' terminals (/workorders/terminals, 手机终端管理): each registered phone with its worker, state, browser
and app version, last location and last seen, and the worker's online rate over the last N days (defined in
workorders/field.py). A dispatcher blocks a phone (lost, stolen, left the company) with a reason, or unblocks it:
a blocked phone's field requests are refused (dashboard/field_routes.py)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update

from core import permissions as P
from dashboard import access
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.field import terminals_view
from dashboard.i18n import request_lang, t
from dashboard.ids import Terminals as ID
from dashboard.services import actor, field, site_zone
from workorders.evidence import FieldError

dash.register_page(__name__, path=access.TERMINALS.path, title="Wattline", name="terminals")

DAY_CHOICES = (7, 30, 90)


def _days(value) -> int:
    """The picked window in days: one of DAY_CHOICES as the select sends it (a string), else 30."""
    return int(value) if isinstance(value, str) and value in {str(d) for d in DAY_CHOICES} else 30


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.TERMINALS, lang)
    if denied is not None:
        return denied
    rows = field().terminals(30)
    return dbc.Container([
        html.H1(t("terminals.heading", lang), className="h4"),
        html.P(t("terminals.definition", lang), className="small text-muted"),
        dbc.Select(id=ID.DAYS, value="30", className="mb-2", style={"maxWidth": "12rem"},
                   options=[{"label": t("terminals.days", lang, days=d), "value": str(d)} for d in DAY_CHOICES]),
        _block_form(rows, lang) if allowed(P.WORKORDER_DISPATCH) else None,
        html.Div(terminals_view(rows, lang, site_zone(), 30), id=ID.RATES),
    ], fluid=True, id=ID.PAGE, className="field-page py-2")


def _pick_options(rows: list[dict], lang: str) -> list[dict]:
    def label(r):
        state = t(f"terminals.state.{r['state']}", lang)
        return f"{r['operator']} · #{r['id']} · {state} · {(r.get('user_agent') or '-')[:40]}"
    return [{"label": label(r), "value": str(r["id"])} for r in rows]


def _block_form(rows: list[dict], lang: str) -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H2(t("terminals.block_heading", lang), className="h6"),
        dbc.Select(id=ID.PICK, options=[{"label": t("terminals.pick", lang), "value": ""}] +
                   _pick_options(rows, lang), value="", className="mb-1"),
        dbc.Input(id=ID.REASON, placeholder=t("terminals.reason", lang), maxLength=300, className="mb-1"),
        html.Div([
            dbc.Button(t("terminals.block", lang), id=ID.BLOCK, color="danger", size="sm", className="me-1"),
            dbc.Button(t("terminals.unblock", lang), id=ID.UNBLOCK, color="outline-secondary", size="sm"),
        ]),
        html.Div(id=ID.RESULT, role="status", className="small mt-1"),
    ]), className="mb-2")


@guarded_callback("terminals.days", access.TERMINALS, Output(ID.RATES, "children"), Input(ID.DAYS, "value"),
                  prevent_initial_call=True, changes_state=False)
def days_changed(value):
    days = _days(value)
    return terminals_view(field().terminals(days), request_lang(), site_zone(), days)


@guarded_callback("terminals.block", P.WORKORDER_DISPATCH,
                  Input(ID.BLOCK, "n_clicks"), Input(ID.UNBLOCK, "n_clicks"),
                  State(ID.PICK, "value"), State(ID.REASON, "value"), State(ID.DAYS, "value"),
                  output={"result": Output(ID.RESULT, "children"), "rows": Output(ID.RATES, "children"),
                          "picks": Output(ID.PICK, "options")},
                  prevent_initial_call=True)
def block(_block, _unblock, terminal_id, reason, days):
    """Block or unblock the chosen phone (the service checks the permission again, wants a reason to block, and
    logs both)."""
    lang = request_lang()
    if ctx.triggered_id not in (ID.BLOCK, ID.UNBLOCK):
        return {"result": no_update, "rows": no_update, "picks": no_update}
    try:
        row = field().set_terminal_state(actor(), terminal_id if isinstance(terminal_id, str) else "",
                                         blocked=ctx.triggered_id == ID.BLOCK,
                                         reason=reason if isinstance(reason, str) else None)
    except FieldError as exc:
        return {"result": html.Span(exc.message(lang), className="text-danger"), "rows": no_update,
                "picks": no_update}
    days = _days(days)
    rows = field().terminals(days)
    said = t(f"terminals.{'blocked' if row['state'] == 'blocked' else 'unblocked'}", lang, user=row["operator"])
    return {"result": html.Span(said, className="text-success"), "rows": terminals_view(rows, lang, site_zone(), days),
            "picks": [{"label": t("terminals.pick", lang), "value": ""}] + _pick_options(rows, lang)}
