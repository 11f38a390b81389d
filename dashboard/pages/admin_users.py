"""Operators (/admin/users, 操作员管理): list, add, deactivate, reset a password, assign roles (user.manage)."""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, ctx, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from operators.service import OperatorError, role_order
from dashboard import access, inputs
from dashboard.auth import accounts, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.admin import BROWSER_LANGUAGE, alert, operator_rows, users_page
from dashboard.i18n import request_lang, t
from dashboard.ids import Users as ID
from dashboard.services import site_zone

PERMISSION = P.USER_MANAGE
dash.register_page(__name__, path="/admin/users", title="Wattline", name="admin-users")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.USERS, lang)
    if denied is not None:
        return denied
    service = accounts()
    return users_page(service.list_operators(), role_order(service.role_matrix()), lang, site_zone())


def _selected(rows) -> str:
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and inputs.key_text(rows[0].get("username")):
        return rows[0]["username"]
    raise OperatorError("select_operator")


def _run(action, done_key: str, **fmt):
    """Run one change; answer its message and the fresh rows. A refused change writes nothing."""
    lang = request_lang()
    try:
        action()
    except OperatorError as exc:
        return {"result": alert(t(f"auth.error.{exc.key}", lang, **exc.params), False), "rows": no_update}
    return {"result": alert(t(done_key, lang, **fmt), True),
            "rows": operator_rows(accounts().list_operators(), lang, site_zone())}


def _not_selected(exc: OperatorError, **fields) -> dict:
    return {"result": alert(t(f"auth.error.{exc.key}", request_lang()), False), "rows": no_update, **fields}


def _outputs(**fields) -> dict:
    """The message and the operators grid every action answers with, and `fields`: the action's own."""
    return {"result": Output(ID.RESULT, "children", allow_duplicate=True),
            "rows": Output(ID.GRID, "rowData", allow_duplicate=True), **fields}


@guarded_callback("admin.users.add", PERMISSION,
                  Input(ID.ADD, "n_clicks"), State(ID.NEW_USERNAME, "value"), State(ID.NEW_NAME, "value"),
                  State(ID.NEW_PASSWORD, "value"), State(ID.NEW_ROLES, "value"), State(ID.NEW_LANGUAGE, "value"),
                  output=_outputs(password=Output(ID.NEW_PASSWORD, "value")), prevent_initial_call=True)
def add_operator(n_clicks, username, display_name, password, roles, language):
    if not n_clicks:
        raise PreventUpdate
    username = (inputs.text(username) or "").strip()
    language = inputs.text(language)
    done = _run(lambda: accounts().add_operator(
        username, inputs.text(display_name), inputs.text(password) or "", inputs.texts(roles),
        language=None if language in (None, "", BROWSER_LANGUAGE) else language, by=signed_in().username, source=source_address()),
        "admin.added", username=username)
    return {**done, "password": ""}   # typed again after a refusal too: it is never sent back to the browser


@guarded_callback("admin.users.set_active", PERMISSION,
                  Input(ID.DEACTIVATE, "n_clicks"), Input(ID.ACTIVATE, "n_clicks"),
                  State(ID.GRID, "selectedRows"), output=_outputs(), prevent_initial_call=True)
def set_active(_deactivate, _activate, rows):
    active = ctx.triggered_id == ID.ACTIVATE
    if ctx.triggered_id not in (ID.ACTIVATE, ID.DEACTIVATE):
        raise PreventUpdate
    try:
        username = _selected(rows)
    except OperatorError as exc:
        return _not_selected(exc)
    return _run(lambda: accounts().set_active(username, active, by=signed_in().username, source=source_address()),
                "admin.activated" if active else "admin.deactivated", username=username)


@guarded_callback("admin.users.reset_password", PERMISSION,
                  Input(ID.RESET, "n_clicks"), State(ID.GRID, "selectedRows"),
                  State(ID.TEMP_PASSWORD, "value"), output=_outputs(password=Output(ID.TEMP_PASSWORD, "value")),
                  prevent_initial_call=True)
def reset_password(n_clicks, rows, password):
    if not n_clicks:
        raise PreventUpdate
    try:
        username = _selected(rows)
    except OperatorError as exc:
        return _not_selected(exc, password=no_update)
    password = inputs.text(password) or ""
    done = _run(lambda: accounts().set_password(username, password, by=signed_in().username,
                                                source=source_address(), must_change_password=True),
                "admin.reset_done", username=username)
    return {**done, "password": ""}


@guarded_callback("admin.users.set_roles", PERMISSION,
                  Input(ID.SET_ROLES, "n_clicks"), State(ID.GRID, "selectedRows"), State(ID.ROLES, "value"),
                  output=_outputs(), prevent_initial_call=True)
def set_roles(n_clicks, rows, roles):
    if not n_clicks:
        raise PreventUpdate
    try:
        username = _selected(rows)
    except OperatorError as exc:
        return _not_selected(exc)
    return _run(lambda: accounts().set_roles(username, inputs.texts(roles),
                                             by=signed_in().username, source=source_address()),
                "admin.roles_saved", username=username)


@callback(Output(ID.ROLES, "value"), Input(ID.GRID, "selectedRows"), prevent_initial_call=True)
def show_roles_of_selected(rows):
    """Reads nothing stored: shows the roles of the row the browser selected."""
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return inputs.texts(rows[0].get("role_names"))
    return []
