"""My orders (/work): a field worker's phone home page ('/' leads a worker here, dashboard.access.home_path): the
worker's open orders, soonest due first, due soon and overdue flagged; each opens /work/order."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import access
from dashboard.auth import csrf_token, forbidden_page
from dashboard.components.field import field_root, orders_list
from dashboard.i18n import request_lang
from dashboard.ids import Work as ID
from dashboard.services import actor, field, runtime, site_zone

dash.register_page(__name__, path=access.WORK.path, title="Wattline", name="work")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.WORK, lang)
    if denied is not None:
        return denied
    service = field()
    who = actor()
    rows = service.orders.my_orders(who)
    types = {r["key"]: r for r in service.orders.order_types(active_only=False)}
    cfg = runtime().cfg.evidence
    return dbc.Container([*orders_list(rows, types, lang, site_zone(), service.unread(who)),
                          field_root(lang, csrf_token(), cfg.defer_bytes, cfg.chunk_bytes),
                          html.Div(id=ID.SHOW_CLOSED)],
                         fluid=True, id=ID.PAGE, className="field-page py-2")
