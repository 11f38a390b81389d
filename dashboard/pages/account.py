"""My account (/account): who I am, my roles, change my password (any signed-in operator)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from operators.service import OperatorError
from dashboard import inputs
from dashboard.auth import accounts, guarded_callback, session_token, signed_in, source_address
from dashboard.components.admin import account_page, alert, password_changed
from dashboard.i18n import request_lang, t
from dashboard.ids import Account as ID
from dashboard.ids import Shared

dash.register_page(__name__, path="/account", title="Wattline", name="account")


def layout(**_query):
    lang = request_lang()
    op = signed_in()
    if op is None:  # only without sign-in installed: the guard sends strangers to /login
        return dbc.Container(dbc.Alert(t("auth.login_required", lang), color="warning"), id=Shared.FORBIDDEN)
    return account_page(op, lang)


@guarded_callback("account.change_password", None,
                  Input(ID.SAVE, "n_clicks"),
                  State(ID.CURRENT, "value"), State(ID.NEW, "value"), State(ID.CONFIRM, "value"),
                  output={"result": Output(ID.RESULT, "children"), "current": Output(ID.CURRENT, "value"),
                          "new": Output(ID.NEW, "value"), "confirm": Output(ID.CONFIRM, "value")},
                  prevent_initial_call=True)
def change_password(n_clicks, current, new, confirm):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        if not inputs.text(current):  # nothing to check against the hash (argon2 costs tens of milliseconds)
            raise OperatorError("wrong_current_password")
        accounts().change_password(signed_in(), inputs.text(current), inputs.text(new) or "",
                                   inputs.text(confirm) or "", source_address(), keep_session=session_token())
    except OperatorError as exc:
        # the current password stays typed after a refusal; the new ones are typed again
        return {"result": alert(t(f"auth.error.{exc.key}", lang, **exc.params), False), "current": no_update,
                "new": "", "confirm": ""}
    return {"result": password_changed(lang), "current": "", "new": "", "confirm": ""}
