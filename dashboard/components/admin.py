"""Builders for the operator pages: my account, operators (admin/users), permissions (admin/roles).

Pure functions of their inputs (rows from operators.service, a language); the page modules in
dashboard/pages/ wire them to callbacks. Component ids come from dashboard.ids (Account, Users, Roles)."""
from __future__ import annotations

import datetime as dt

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from core.clock import show_time
from dashboard.components.grid import grid_locale
from dashboard.i18n import t
from dashboard.ids import Account, Roles, Users

BROWSER_LANGUAGE = "browser"  # the new operator's language follows the browser until they pick one


def role_label(role: str, lang: str) -> str:
    return t(f"admin.role.{role}", lang)


def permission_label(name: str, lang: str) -> str:
    return t(f"admin.permissions.{name}", lang)


def alert(text: str, ok: bool) -> dbc.Alert:
    return dbc.Alert(text, color="success" if ok else "danger", className="py-2 mb-2", dismissable=True)


def _when(value: dt.datetime | None, zone: dt.tzinfo) -> str:
    """A stored time (naive UTC) in the site's zone; nothing for none."""
    return show_time(value, zone, "minutes") if value else ""


def _yes_no(value: bool, lang: str) -> str:
    return t("admin.yes" if value else "admin.no", lang)


# --- my account -------------------------------------------------------------------------------
def account_page(op, lang: str) -> dbc.Container:
    facts = [
        (t("auth.account.username", lang), op.username),
        (t("auth.account.display_name", lang), op.display_name),
        (t("auth.account.roles", lang), ", ".join(role_label(r, lang) for r in op.roles) or "-"),
        (t("auth.account.language", lang), t("lang.name", op.language) if op.language else "-"),
    ]
    must = [dbc.Alert(t("auth.must_change", lang), color="warning", id=Account.MUST_CHANGE)] \
        if op.must_change_password else []
    return dbc.Container([
        html.H1(t("auth.account.heading", lang), className="h4"),
        *must,
        dbc.Row([
            dbc.Col(dbc.Card(dbc.CardBody(html.Dl([x for k, v in facts for x in (html.Dt(k), html.Dd(v))],
                                                  className="mb-0"))), md=5),
            dbc.Col(dbc.Card(dbc.CardBody([
                html.H2(t("auth.account.change_password", lang), className="h6"),
                _field(t("auth.account.current_password", lang), dbc.Input(id=Account.CURRENT, type="password",
                                                                      autocomplete="current-password")),
                _field(t("auth.account.new_password", lang), dbc.Input(id=Account.NEW, type="password",
                                                                  autocomplete="new-password")),
                _field(t("auth.account.confirm_password", lang), dbc.Input(id=Account.CONFIRM, type="password",
                                                                      autocomplete="new-password")),
                html.Div(id=Account.RESULT),
                dbc.Button(t("auth.account.save", lang), id=Account.SAVE, color="primary"),
            ])), md=7),
        ], className="g-3"),
    ], fluid=True, id=Account.PAGE)


def password_changed(lang: str) -> html.Div:
    # A full page load afterwards, so the navigation shows what the operator may now open.
    return dbc.Alert([t("auth.account.changed", lang), " ", html.A(t("auth.account.continue", lang), href="/",
                                                              className="alert-link", id=Account.CONTINUE)],
                     color="success", className="py-2 mb-2")


def _field(label: str, control) -> html.Div:
    return html.Div([dbc.Label(label, html_for=getattr(control, "id", None)), control], className="mb-2")


# --- operators --------------------------------------------------------------------------------
def operator_rows(operators: list[dict], lang: str, zone: dt.tzinfo) -> list[dict]:
    return [{
        "username": o["username"], "display_name": o["display_name"],
        "roles": ", ".join(role_label(r, lang) for r in o["roles"]), "role_names": o["roles"],
        "active": _yes_no(o["active"], lang), "must_change_password": _yes_no(o["must_change_password"], lang),
        "locked_until": _when(o["locked_until"], zone) if o["locked"] else "",
        "language": t("lang.name", o["language"]) if o["language"] else "",
        "last_login_at": _when(o["last_login_at"], zone), "created_at": _when(o["created_at"], zone),
    } for o in operators]


def users_page(operators: list[dict], roles: list[str], lang: str, zone: dt.tzinfo) -> dbc.Container:
    cols = [("username", "admin.col_username"), ("display_name", "admin.col_display_name"),
            ("roles", "admin.col_roles"), ("active", "admin.col_active"),
            ("must_change_password", "admin.col_must_change"), ("locked_until", "admin.col_locked"),
            ("language", "admin.col_language"), ("last_login_at", "admin.col_last_login"),
            ("created_at", "admin.col_created")]
    role_options = [{"label": role_label(r, lang), "value": r} for r in roles]
    grid = dag.AgGrid(
        id=Users.GRID, rowData=operator_rows(operators, lang, zone),
        columnDefs=[{"field": f, "headerName": t(k, lang)} for f, k in cols],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 110},
        getRowId="params.data.username", columnSize="responsiveSizeToFit",
        dashGridOptions={"rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                         "domLayout": "autoHeight", "localeText": grid_locale(lang)},
        style={"width": "100%"})
    selected = dbc.Card(dbc.CardBody([
        html.H2(t("admin.selected_heading", lang), className="h6"),
        html.P(t("admin.select_hint", lang), className="text-muted small"),
        dbc.Label(t("admin.col_roles", lang)),
        dbc.Checklist(id=Users.ROLES, options=role_options, value=[], inline=True, className="mb-2"),
        dbc.Button(t("admin.assign_roles", lang), id=Users.SET_ROLES, color="primary", size="sm", className="me-2"),
        dbc.Button(t("admin.deactivate", lang), id=Users.DEACTIVATE, color="outline-danger", size="sm",
                   className="me-2"),
        dbc.Button(t("admin.activate", lang), id=Users.ACTIVATE, color="outline-secondary", size="sm"),
        html.Hr(),
        _field(t("admin.temporary_password", lang), dbc.Input(id=Users.TEMP_PASSWORD, type="password",
                                                              autocomplete="new-password")),
        dbc.Button(t("admin.reset_password", lang), id=Users.RESET, color="warning", size="sm"),
    ]))
    add = dbc.Card(dbc.CardBody([
        html.H2(t("admin.add_heading", lang), className="h6"),
        _field(t("admin.col_username", lang), dbc.Input(id=Users.NEW_USERNAME, autocomplete="off")),
        _field(t("admin.col_display_name", lang), dbc.Input(id=Users.NEW_NAME, autocomplete="off")),
        _field(t("admin.initial_password", lang), dbc.Input(id=Users.NEW_PASSWORD, type="password",
                                                            autocomplete="new-password")),
        dbc.Label(t("admin.col_roles", lang)),
        dbc.Checklist(id=Users.NEW_ROLES, options=role_options, value=[], inline=True, className="mb-2"),
        _field(t("admin.col_language", lang), dbc.Select(id=Users.NEW_LANGUAGE, value=BROWSER_LANGUAGE, options=[
            {"label": t("admin.language_browser", lang), "value": BROWSER_LANGUAGE},
            {"label": t("lang.name", "en"), "value": "en"}, {"label": t("lang.name", "zh"), "value": "zh"}])),
        dbc.Button(t("admin.add", lang), id=Users.ADD, color="primary"),
    ]))
    return dbc.Container([
        html.H1(t("admin.users_heading", lang), className="h4"),
        html.Div(id=Users.RESULT),
        grid,
        dbc.Row([dbc.Col(selected, md=6), dbc.Col(add, md=6)], className="g-3 mt-1"),
    ], fluid=True, id=Users.PAGE)


# --- permissions matrix -----------------------------------------------------------------------
def matrix_rows(matrix: dict[str, set[str]], permissions: list[str], lang: str) -> list[dict]:
    return [{"permission": p, "description": permission_label(p, lang),
             **{r: p in perms for r, perms in matrix.items()}} for p in permissions]


def roles_page(matrix: dict[str, set[str]], roles: list[str], permissions: list[str], lang: str) -> dbc.Container:
    # The role columns come right after the pinned permission, the description last: on a phone the first
    # roles are on screen and the grid scrolls sideways inside its own box for the others.
    columns = [{"field": "permission", "headerName": t("admin.col_permission", lang), "pinned": "left",
                "minWidth": 150, "tooltipField": "description"}]
    columns += [{"field": r, "headerName": role_label(r, lang), "editable": True, "cellDataType": "boolean",
                 "minWidth": 80} for r in roles]
    columns += [{"field": "description", "headerName": t("admin.col_description", lang), "minWidth": 240}]
    grid = dag.AgGrid(
        id=Roles.GRID, rowData=matrix_rows({r: matrix.get(r, set()) for r in roles}, permissions, lang),
        columnDefs=columns, getRowId="params.data.permission", columnSize="responsiveSizeToFit",
        defaultColDef={"resizable": True}, dashGridOptions={"domLayout": "autoHeight", "singleClickEdit": True,
                                                          "localeText": grid_locale(lang)},
        style={"width": "100%"})
    return dbc.Container([
        html.H1(t("admin.roles_heading", lang), className="h4"),
        html.P(t("admin.matrix_help", lang), className="text-muted"),
        html.Div(id=Roles.RESULT),
        grid,
        dbc.Button(t("admin.save_matrix", lang), id=Roles.SAVE, color="primary", className="mt-2"),
    ], fluid=True, id=Roles.PAGE)
