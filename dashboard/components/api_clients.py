"""Payment API clients (/admin/api-clients): the list, the form that creates one (its token shown once) and
the revocation. Pure builders; component ids come from dashboard.ids.ApiClients."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.components.cashier import state_badge, when
from dashboard.i18n import t
from dashboard.ids import ApiClients as ID



def client_table(clients: list[dict], lang: str):
    if not clients:
        return html.P(t("api_clients.none", lang), className="text-muted")
    return dbc.Table([
        html.Thead(html.Tr([html.Th(t(f"api_clients.col_{c}", lang)) for c in ("name", "state", "created", "by")])),
        html.Tbody([html.Tr([
            html.Td(c["name"], className="font-monospace"),
            html.Td(state_badge("revoked" if c["revoked_at"] else "active", lang)),
            html.Td(when(c["created_at"])), html.Td(c["created_by"]),
        ], **{"data-client": c["name"]}) for c in clients]),
    ], size="sm", striped=True, responsive=True, className="small")


def active_names(clients: list[dict]) -> list[str]:
    return [c["name"] for c in clients if not c["revoked_at"]]


def token_shown_once(name: str, token: str, lang: str) -> dbc.Alert:
    return dbc.Alert([
        html.Div(t("api_clients.created", lang, name=name), className="fw-semibold"),
        html.Div(t("api_clients.token_once", lang), className="small mb-1"),
        html.Code(token, id=ID.TOKEN, className="d-block p-2 bg-light border rounded text-break user-select-all"),
    ], color="success", className="py-2")


def api_clients_page(clients: list[dict], lang: str) -> dbc.Container:
    create = dbc.Card(dbc.CardBody([
        html.H2(t("api_clients.create_heading", lang), className="h6"),
        dbc.Label(t("api_clients.name", lang), html_for=ID.NAME, className="small"),
        dbc.InputGroup([dbc.Input(id=ID.NAME, autoComplete="off", maxLength=100),
                        dbc.Button(t("api_clients.create", lang), id=ID.CREATE, color="primary")]),
        html.P(t("api_clients.create_help", lang), className="form-text"),
    ]), className="mb-3")
    revoke = dbc.Card(dbc.CardBody([
        html.H2(t("api_clients.revoke_heading", lang), className="h6"),
        dcc.Dropdown(id=ID.REVOKE_NAME, options=active_names(clients), placeholder=t("api_clients.choose", lang),
                     className="mb-2"),
        dcc.ConfirmDialogProvider(dbc.Button(t("api_clients.revoke", lang), id=ID.REVOKE, color="danger"),
                                  id=ID.REVOKE_CONFIRM, message=t("api_clients.revoke_confirm", lang)),
    ]), className="mb-3 border-danger")
    return dbc.Container([
        html.H1(t("api_clients.heading", lang), className="h4"),
        html.P(t("api_clients.intro", lang), className="text-muted small"),
        html.Div(id=ID.RESULT, role="status"),
        dbc.Row([dbc.Col(html.Div(client_table(clients, lang), id=ID.LIST), xs=12, lg=7),
                 dbc.Col([create, revoke], xs=12, lg=5)]),
    ], fluid=True, id=ID.PAGE)
