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
from dashboard.ids import Shell as ID


@dataclass(frozen=True)
class NavPage:
    key: str           # catalog key of the label
    page: PageAccess   # the page's own rule: the link is shown to whoever the page would let in
    badge: bool = False  # a live count beside the link (the unacknowledged alarms; dashboard/pages/alarms.py)

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
    NavPage("control.nav", access.CONTROL),
    NavPage("meter_settings.heading", access.METER_SETTINGS),
    NavPage("alarms.nav", access.ALARMS, badge=True),
    NavGroup("nav.billing", "billing", (
        NavPage("accounts.nav", access.ACCOUNTS),
        NavPage("records.nav", access.RECORDS),
        NavPage("reconciliation.nav", access.RECONCILIATION),
        NavPage("tariffs.nav", access.TARIFFS),
        NavPage("qr.nav", access.QR_LABELS),
    )),
    # Analysis and the report centre share one menu: the admin's navbar keeps one row at 1280 px.
    NavGroup("report.nav_group", "reports", (
        NavPage("analysis.dash.nav", access.DASHBOARD),
        NavPage("analysis.energy.nav", access.ANALYSIS_ENERGY),
        NavPage("analysis.insights.nav", access.ANALYSIS_INSIGHTS),
        NavPage("analysis.anomalies.nav", access.ANALYSIS_ANOMALIES),
        NavPage("analysis.history.nav", access.ANALYSIS_HISTORY),
        NavPage("analysis.instrument.nav", access.ANALYSIS_INSTRUMENT),
        NavPage("line_loss.nav", access.GRID_LINE_LOSS),
        NavPage("grid_area.nav_list", access.GRID_AREAS),
        NavPage("grid_area.nav", access.GRID_AREA),
        NavPage("report.nav", access.REPORTS),
        NavPage("report.nav_view", access.REPORT_VIEW),
        NavPage("report.nav_settlement", access.SETTLEMENT),
    )),
    NavGroup("wo_office.nav", "workorders", (
        NavPage("work.nav", access.WORK),   # the field worker's home (the brand leads a worker there too)
        NavPage("wo_office.nav_list", access.WORKORDERS),
        NavPage("wo_office.nav_review", access.WORKORDER_REVIEW),
        NavPage("wo_kpi.nav", access.WORKORDER_KPIS),
        NavPage("terminals.nav", access.TERMINALS),
        NavPage("messages.nav", access.MESSAGES),
    )),
    NavGroup("nav.system", "system", (
        NavPage("nav.status", access.STATUS),
        NavPage("alarms.history_link", access.ALARM_HISTORY),
        NavPage("notifications.nav", access.NOTIFICATIONS),
        NavPage("nav.audit", access.AUDIT),
        NavPage("nav.users", access.USERS),
        NavPage("nav.roles", access.ROLES),
        NavPage("api_clients.nav", access.API_CLIENTS),
        NavPage("parameters.nav", access.PARAMETERS),
        NavPage("site.nav", access.SITE_SETUP),
        NavPage("area_edit.nav", access.GRID_AREA_EDIT),
        NavPage("simulator.nav", access.GRID_SIMULATOR),
    )),
)


def nav_pages() -> list[NavPage]:
    """Every page the navbar can link, top-level and inside dropdowns."""
    return [p for entry in NAV for p in (entry.pages if isinstance(entry, NavGroup) else (entry,))]


def _entry(entry: NavPage | NavGroup, lang: str, may: Callable[[str], bool]):
    if isinstance(entry, NavPage):
        if not entry.page.open_to(may):
            return None
        label = t(entry.key, lang)
        if entry.badge:   # filled by the page's callback at load and every 30 s (a cheap count)
            label = [label, " ", dbc.Badge("", id=ID.ALARM_BADGE, color="danger", pill=True),
                     dcc.Interval(id=ID.ALARM_TICK, interval=30_000)]
        return dbc.NavItem(dbc.NavLink(label, href=entry.path, active="exact", id=ID.nav_link(entry.path)))
    items = [dbc.DropdownMenuItem(t(p.key, lang), href=p.path, active=False,
                                  id=ID.nav_item(entry.name, p.path))
             for p in entry.pages if p.page.open_to(may)]
    if not items:
        return None
    return dbc.DropdownMenu(items, label=t(entry.key, lang), nav=True, in_navbar=True, toggle_class_name="",
                            id=ID.nav_group(entry.name))


def sign_out_form(lang: str, csrf_token: str) -> html.Form:
    """Signing out is a POST carrying the session's form token, so no link on another site can do it."""
    return html.Form([
        dcc.Input(type="hidden", name="csrf_token", value=csrf_token, id=ID.LOGOUT_CSRF),
        html.Button(t("nav.logout", lang), type="submit", className="dropdown-item", id=ID.LOGOUT_LINK),
    ], action="/logout", method="post", id=ID.LOGOUT_FORM)


def navbar(lang: str, user_name: str | None, allowed: Callable[[str], bool], csrf_token: str = "") -> dbc.Navbar:
    links = [e for e in (_entry(entry, lang, allowed) for entry in NAV) if e is not None]
    other = "zh" if lang == "en" else "en"
    right = [dbc.NavItem(html.A(t("lang.switch", lang), href=f"/lang/{other}", className="nav-link",
                                id=ID.LANG_SWITCH))]
    if user_name:
        right.append(dbc.DropdownMenu(label=user_name, nav=True, align_end=True, id=ID.USER_MENU, children=[
            dbc.DropdownMenuItem(t("nav.account", lang), href="/account"),
            sign_out_form(lang, csrf_token),
        ]))
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand(t("app.title", lang), href=access.home_path(allowed)),
        dbc.NavbarToggler(id=ID.NAV_TOGGLER),
        dbc.Collapse([dbc.Nav(links, navbar=True, className="me-auto"), dbc.Nav(right, navbar=True)],
                     id=ID.NAV_COLLAPSE, navbar=True),
    ], fluid=True), color="dark", dark=True, expand="md", className="mb-3")


def site_clock(lang: str, zone) -> html.Footer:
    """Every time a page shows is the site's (core.clock); this line, under every page, says so once."""
    return html.Footer(t("clock.note", lang, zone=zone_label(zone)), id=ID.SITE_CLOCK,
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
        Output(ID.nav_item(ALL, ALL), "active"),
        Output(ID.nav_group(ALL), "toggle_class_name"),
        Input(ID.LOCATION, "pathname"),
    )
    # On a narrow screen the links fold behind the toggler; opening a page folds them again.
    app.clientside_callback(
        """function (clicks, pathname, isOpen) {
            const cc = window.dash_clientside.callback_context;
            const byToggler = cc.triggered.some(t => t.prop_id === "%s.n_clicks");
            return byToggler ? !isOpen : false;
        }""" % ID.NAV_TOGGLER,
        Output(ID.NAV_COLLAPSE, "is_open"),
        Input(ID.NAV_TOGGLER, "n_clicks"), Input(ID.LOCATION, "pathname"), State(ID.NAV_COLLAPSE, "is_open"),
    )
