"""Permissions (/admin/roles, 权限管理): the role × permission matrix, saved as a whole (user.manage)."""
from __future__ import annotations

import dash
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from operators.service import OperatorError, permission_order, role_order
from dashboard import access
from dashboard.auth import accounts, forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.admin import alert, matrix_rows, role_label, roles_page
from dashboard.i18n import request_lang, t
from dashboard.ids import Roles as ID

PERMISSION = P.USER_MANAGE
dash.register_page(__name__, path="/admin/roles", title="Wattline", name="admin-roles")


def _matrix():
    matrix = accounts().role_matrix()
    return matrix, role_order(matrix), permission_order(accounts().permission_names())


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ROLES, lang)
    if denied is not None:
        return denied
    matrix, roles, permissions = _matrix()
    return roles_page(matrix, roles, permissions, lang)


@guarded_callback("admin.roles.save", PERMISSION,
                  Output(ID.RESULT, "children"), Output(ID.GRID, "rowData"),
                  Input(ID.SAVE, "n_clicks"), State(ID.GRID, "rowData"), prevent_initial_call=True)
def save_matrix(n_clicks, rows):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    matrix, roles, permissions = _matrix()
    # The grid's rows as the browser edited them: {role: {permission: ticked}}; only real booleans count.
    changes: dict[str, dict[str, bool]] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and isinstance(row.get("permission"), str):
            for r in roles:
                if r in row:
                    changes.setdefault(r, {})[row["permission"]] = row[r] is True
    try:
        changed = accounts().set_role_permissions(changes, by=signed_in().username, source=source_address())
    except OperatorError as exc:
        return alert(t(f"auth.error.{exc.key}", lang, **exc.params), False), no_update
    message = (t("admin.matrix_saved", lang, roles=", ".join(role_label(r, lang) for r in changed)) if changed
               else t("admin.matrix_unchanged", lang))
    return alert(message, True), matrix_rows(accounts().role_matrix(), permissions, lang)
