"""The frame around every page: navigation (filtered by permission, grouped to fit one row), language switch, operator menu."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html

from core.clock import zone_label
from dashboard import access
from dashboard.access import PageAccess
from dashboard.i18n import t

NAV_ITEM = "nav-item"    # pattern-matching id type of a page link inside a dropdown
NAV_GROUP = "nav-group"  # ... and of the dropdown itself
SITE_CLOCK = "site-clock"  # the line under every page naming the zone its times are in


@dataclass(frozen=True)
class NavPage:
    key: str           # catalog key of the label
    page: PageAccess   # the page's own rule: the link is shown to whoever the page would let in

    @property
    def path(self) -> str:
        return self.page.path


@dataclass(frozen=True)
class NavGroup:
    key: str
    name: str          # in the dropdown's id
    pages: tuple[NavPage, ...]


NAV: tuple[NavPage | NavGroup, ...] = (
    NavPage("nav.overview", access.OVERVIEW),
    NavPage("nav.meters", access.METERS),
    NavPage("cashier.nav", access.SELL),
    NavPage("work.nav", access.WORK),
    NavGroup("nav.billing", "billing", (
        NavPage("accounts.nav", access.ACCOUNTS),
        NavPage("records.nav", access.RECORDS),
        NavPage("reconciliation.nav", access.RECONCILIATION),
        NavPage("tariffs.nav", access.TARIFFS),
        NavPage("qr.nav", access.QR_LABELS),
    )),
    NavGroup("nav.system", "system", (
        NavPage("nav.status", access.STATUS),
        NavPage("nav.audit", access.AUDIT),
        NavPage("nav.users", access.USERS),
        NavPage("nav.roles", access.ROLES),
        NavPage("api_clients.nav", access.API_CLIENTS),
    )),
)


def nav_pages() -> list[NavPage]:
    """Every page the navbar can link, top-level and inside dropdowns."""
    return [p for entry in NAV for p in (entry.pages if isinstance(entry, NavGroup) else (entry,))]


def nav_id(path: str) -> str:
    return f"nav-{path.strip('/').replace('/', '-') or 'home'}"


def _entry(entry: NavPage | NavGroup, lang: str, may: Callable[[str], bool]):
    if isinstance(entry, NavPage):
        if not entry.page.open_to(may):
            return None
        return dbc.NavItem(dbc.NavLink(t(entry.key, lang), href=entry.path, active="exact", id=nav_id(entry.path)))
    items = [dbc.DropdownMenuItem(t(p.key, lang), href=p.path, active=False,
                                  id={"type": NAV_ITEM, "group": entry.name, "path": p.path})
             for p in entry.pages if p.page.open_to(may)]
    if not items:
        return None
    return dbc.DropdownMenu(items, label=t(entry.key, lang), nav=True, in_navbar=True, toggle_class_name="",
                            id={"type": NAV_GROUP, "group": entry.name})


def sign_out_form(lang: str, csrf_token: str) -> html.Form:
    """Signing out is a POST carrying the session's form token, so no link on another site can do it."""
    return html.Form([
        dcc.Input(type="hidden", name="csrf_token", value=csrf_token, id="logout-csrf"),
        html.Button(t("nav.logout", lang), type="submit", className="dropdown-item", id="logout-link"),
    ], action="/logout", method="post", id="logout-form")


def navbar(lang: str, user_name: str | None, allowed: Callable[[str], bool], csrf_token: str = "") -> dbc.Navbar:
    links = [e for e in (_entry(entry, lang, allowed) for entry in NAV) if e is not None]
    other = "zh" if lang == "en" else "en"
    right = [dbc.NavItem(html.A(t("lang.switch", lang), href=f"/lang/{other}", className="nav-link", id="lang-switch"))]
    if user_name:
        right.append(dbc.DropdownMenu(label=user_name, nav=True, align_end=True, id="user-menu", children=[
            dbc.DropdownMenuItem(t("nav.account", lang), href="/account"),
            sign_out_form(lang, csrf_token),
        ]))
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand(t("app.title", lang), href=access.home_path(allowed)),
        dbc.NavbarToggler(id="nav-toggler"),
        dbc.Collapse([dbc.Nav(links, navbar=True, className="me-auto"), dbc.Nav(right, navbar=True)],
                     id="nav-collapse", navbar=True),
    ], fluid=True), color="dark", dark=True, expand="md", className="mb-3")


def site_clock(lang: str, zone) -> html.Footer:
    """Every time a page shows is the site's (core.clock); this line, under every page, says so once."""
    return html.Footer(t("clock.note", lang, zone=zone_label(zone)), id=SITE_CLOCK,
                       className="container-fluid text-muted small py-2")


def register_nav_callbacks(app: dash.Dash) -> None:
    """Highlight the open page inside its dropdown, and the dropdown, as NavLink(active="exact") does for
    top-level links (Dash pages navigate without reloading the navbar); open and fold the phone menu."""
    app.clientside_callback(
        """function (pathname) {
            const cc = window.dash_clientside.callback_context;
            const items = cc.outputs_list[0].map(o => o.id);
            const groups = new Set(items.filter(id => id.path === pathname).map(id => id.group));
            return [items.map(id => id.path === pathname),
                    cc.outputs_list[1].map(o => groups.has(o.id.group) ? "active" : "")];
        }""",
        Output({"type": NAV_ITEM, "group": ALL, "path": ALL}, "active"),
        Output({"type": NAV_GROUP, "group": ALL}, "toggle_class_name"),
        Input("_pages_location", "pathname"),
    )
    # On a narrow screen the links fold behind the toggler; opening a page folds them again.
    app.clientside_callback(
        """function (clicks, pathname, isOpen) {
            const cc = window.dash_clientside.callback_context;
            const byToggler = cc.triggered.some(t => t.prop_id === "nav-toggler.n_clicks");
            return byToggler ? !isOpen : false;
        }""",
        Output("nav-collapse", "is_open"),
        Input("nav-toggler", "n_clicks"), Input("_pages_location", "pathname"), State("nav-collapse", "is_open"),
    )
