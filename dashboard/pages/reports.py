"""The report centre (/reports, 报表中心): every registered report with a link to it, the cashiers' day-end
settlement, and the records and logs kept elsewhere (openings and closings, sales records, the operation log)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import access
from dashboard.auth import allowed, forbidden_page
from dashboard.i18n import request_lang, t
from dashboard.ids import ReportCentre as ID
from reports.registry import REPORTS

dash.register_page(__name__, path=access.REPORTS.path, title="Wattline", name="reports")

# The records and logs the centre leads to: (catalog key of their name, the page's access rule)
ELSEWHERE = (("report.nav_settlement", access.SETTLEMENT), ("report.name.openings", access.ACCOUNTS),
             ("report.name.records", access.RECORDS), ("report.name.alarm-history", access.ALARM_HISTORY),
             ("report.name.audit", access.AUDIT))


def _card(title: str, href: str) -> dbc.ListGroupItem:
    return dbc.ListGroupItem(title, href=href, action=True)


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.REPORTS, lang)
    if denied is not None:
        return denied
    reports = [_card(t(spec.title_key, lang), f"{access.REPORT_VIEW.path}?name={name}") for name, spec in
               REPORTS.items()]
    others = [_card(t(key, lang), page.path) for key, page in ELSEWHERE if page.open_to(allowed)]
    return html.Div([
        html.H1(t("report.hub_heading", lang), className="h4"),
        html.P(t("report.hub_intro", lang), className="small text-muted"),
        dbc.Row([dbc.Col(dbc.ListGroup(reports), xs=12, md=6, className="mb-3"),
                 dbc.Col([html.H2(t("report.more_heading", lang), className="h6"), dbc.ListGroup(others)],
                         xs=12, md=6)]),
    ], className="container-fluid", id=ID.PAGE)
