"""The frame around every page: navigation (filtered by permission), language switch, operator menu."""
from __future__ import annotations

from typing import Callable

import dash_bootstrap_components as dbc
from dash import html

from dashboard.i18n import t

# (catalog key, path, permission needed to see the link or None for every signed-in operator)
NAV: list[tuple[str, str, str | None]] = [
    ("nav.overview", "/", None),
    ("nav.meters", "/meters", None),
    ("cashier.nav", "/sell", "sale.create"),
    ("accounts.nav", "/accounts", "account.open"),
    ("records.nav", "/records", "report.view"),
    ("reconciliation.nav", "/reconciliation", "report.view"),
    ("tariffs.nav", "/tariffs", "tariff.push"),
    ("qr.nav", "/qr", "account.open"),
    ("nav.status", "/status", None),
    ("nav.audit", "/audit", "audit.view"),
    ("nav.users", "/admin/users", "user.manage"),
    ("nav.roles", "/admin/roles", "user.manage"),
    ("api_clients.nav", "/admin/api-clients", "api_client.manage"),
]


def navbar(lang: str, user_name: str | None, allowed: Callable[[str], bool]) -> dbc.Navbar:
    links = [dbc.NavItem(dbc.NavLink(t(key, lang), href=path, active="exact", id=f"nav-{path.strip('/').replace('/', '-') or 'home'}"))
             for key, path, perm in NAV if perm is None or allowed(perm)]
    other = "zh" if lang == "en" else "en"
    right = [dbc.NavItem(html.A(t("lang.switch", lang), href=f"/lang/{other}", className="nav-link", id="lang-switch"))]
    if user_name:
        right.append(dbc.DropdownMenu(label=user_name, nav=True, align_end=True, id="user-menu", children=[
            dbc.DropdownMenuItem(t("nav.account", lang), href="/account"),
            dbc.DropdownMenuItem(t("nav.logout", lang), href="/logout", external_link=True, id="logout-link"),
        ]))
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand(t("app.title", lang), href="/"),
        dbc.NavbarToggler(id="nav-toggler"),
        dbc.Collapse([dbc.Nav(links, navbar=True, className="me-auto"), dbc.Nav(right, navbar=True)],
                     id="nav-collapse", navbar=True),
    ], fluid=True), color="dark", dark=True, expand="md", className="mb-3")
