"""The review queue (/workorders/review, 审核归档): completed work orders waiting to be approved or rejected (oldest
completion first), then approved ones to call the customer back (回访) and archive. Each number opens the order's
page, where the reviewer approves, rejects with a reason, records the call and archives."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import access
from dashboard.auth import forbidden_page
from dashboard.components.workorders_office import QUEUE_FIELDS, order_grid, order_grid_rows, type_names
from dashboard.i18n import request_lang, t
from dashboard.ids import WorkOrderReview as ID
from dashboard.services import actor, site_zone, workorders
from workorders.office import Office

dash.register_page(__name__, path=access.WORKORDER_REVIEW.path, title="Wattline", name="workorder_review")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.WORKORDER_REVIEW, lang)
    if denied is not None:
        return denied
    service = workorders()
    rows = Office(service).review_queue(actor())
    types = type_names(service.order_types(active_only=False), lang)
    waiting = sum(r["state"] == "completed" for r in rows)
    return dbc.Container([
        html.H1(t("wo_office.review_heading", lang), className="h4"),
        html.P(t("wo_office.review_count", lang, waiting=waiting, approved=len(rows) - waiting),
               className="text-muted small", role="status"),
        order_grid(ID.GRID, order_grid_rows(rows, types, site_zone(), lang), QUEUE_FIELDS, lang),
    ], fluid=True, id=ID.PAGE)
