"""Payment API clients (/admin/api-clients): create a client (its bearer token is shown once; only its hash
is kept) and revoke one (api_client.manage). Both are written to the operation log by billing.api."""
from __future__ import annotations

import dash
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from billing import desk
from billing.api import create_api_client, revoke_api_client
from billing.errors import BillingError
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.api_clients import active_names, api_clients_page, client_table, token_shown_once
from dashboard.components.cashier import error_alert, notice
from dashboard.i18n import request_lang, t
from dashboard.ids import ApiClients as ID
from dashboard.services import billing

PERMISSION = P.API_CLIENT_MANAGE
dash.register_page(__name__, path="/admin/api-clients", title="Wattline", name="api-clients")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.API_CLIENTS, lang)
    if denied is not None:
        return denied
    return api_clients_page(desk.api_clients(billing()), lang)


def _refreshed(lang: str) -> dict:
    """The client list and the names that can be revoked, as they are now."""
    clients = desk.api_clients(billing())
    return {"listing": client_table(clients, lang), "revocable": active_names(clients)}


_UNCHANGED = {"listing": no_update, "revocable": no_update}


@guarded_callback("api_clients.create", PERMISSION, Input(ID.CREATE, "n_clicks"), State(ID.NAME, "value"),
                  output={"result": Output(ID.RESULT, "children"), "listing": Output(ID.LIST, "children"),
                          "revocable": Output(ID.REVOKE_NAME, "options"), "name": Output(ID.NAME, "value")},
                  prevent_initial_call=True)
def create(n_clicks, name):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    name = " ".join(str(name or "").split())
    try:
        token = create_api_client(billing(), name, signed_in().username, remote=source_address())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), **_UNCHANGED, "name": no_update}
    return {"result": token_shown_once(name, token, lang), **_refreshed(lang), "name": ""}


@guarded_callback("api_clients.revoke", PERMISSION, Input(ID.REVOKE_CONFIRM, "submit_n_clicks"),
                  State(ID.REVOKE_NAME, "value"),
                  output={"result": Output(ID.RESULT, "children", allow_duplicate=True),
                          "listing": Output(ID.LIST, "children", allow_duplicate=True),
                          "revocable": Output(ID.REVOKE_NAME, "options", allow_duplicate=True),
                          "chosen": Output(ID.REVOKE_NAME, "value")},
                  prevent_initial_call=True)
def revoke(n_clicks, name):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    if not isinstance(name, str) or not name:
        return {"result": notice(t("api_clients.choose", lang)), **_UNCHANGED, "chosen": no_update}
    if not revoke_api_client(billing(), name, signed_in().username, remote=source_address()):
        return {"result": notice(t("api_clients.not_active", lang, name=inputs.shown(name))), **_UNCHANGED,
                "chosen": no_update}
    return {"result": notice(t("api_clients.revoked", lang, name=name), "success", id=ID.REVOKED), **_refreshed(lang),
            "chosen": None}
