"""A field worker's home page (/work) until work orders exist: what the worker can do here now, and what is coming."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from operators.service import Operator
from dashboard import access
from dashboard.i18n import t
from dashboard.ids import Work as ID


def work_home(op: Operator, lang: str) -> dbc.Container:
    """Links to what a worker may open today (their account, the password form on it, the system status),
    then a short note on the work orders to come."""
    can = [
        (t("work.account", lang), "/account", ID.ACCOUNT_LINK),
        (t("work.password", lang), "/account", ID.PASSWORD_LINK),
        (t("work.status", lang), access.STATUS.path, ID.STATUS_LINK),
    ]
    return dbc.Container([
        html.H1(t("work.heading", lang, name=op.display_name or op.username), className="h4"),
        html.P(t("work.intro", lang), className="mb-2"),
        dbc.ListGroup([dbc.ListGroupItem(dcc.Link(text, href=href), id=ident) for text, href, ident in can],
                      className="mb-3", id=ID.CAN_DO),
        html.H2(t("work.coming_heading", lang), className="h6"),
        html.P(t("work.coming", lang), className="mb-1", id=ID.COMING),
        html.P(t("work.until_then", lang), className="text-muted small"),
    ], fluid=True, id=ID.PAGE, className="work-home")
