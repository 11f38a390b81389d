"""My orders (/work): a field worker's phone home page ('/' leads a worker here, dashboard.access.home_path): the
worker's open orders, soonest due first, due soon and overdue flagged; each opens /work/order. A long list draws its
first cards with the page and the rest on "more" (added in the browser from the page's own store: no request)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, clientside_callback, html

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


# "More": the rest of the list's cards (the store holds them as the same builder made them: plain A, Strong, Span,
# Div, Small, Br with id, className, href and text) drawn straight into the list below the first ones, in order, and
# the button hidden. Not through Dash's renderer: 177 cards with ids given to it as a callback's output took 12 s on
# the loaded 2-core machine; as DOM elements they take milliseconds. React never redraws the list (no callback
# writes it), so the added cards stay until the page is left. Text goes in as text nodes, never as HTML.
clientside_callback(
    """function (n, rest) {
        var list = document.getElementById("%s");
        if (!n || !rest || !rest.length || !list) { return window.dash_clientside.no_update; }
        function draw(c) {
            if (c === null || c === undefined) { return null; }
            if (Array.isArray(c)) {
                var all = document.createDocumentFragment();
                c.forEach(function (x) { var e = draw(x); if (e) { all.appendChild(e); } });
                return all;
            }
            if (typeof c !== "object") { return document.createTextNode(String(c)); }
            var p = c.props || {}, el = document.createElement(String(c.type).toLowerCase());
            if (p.id) { el.id = p.id; }
            if (p.className) { el.className = p.className; }
            if (p.href) { el.setAttribute("href", p.href); }
            var inner = draw(p.children);
            if (inner) { el.appendChild(inner); }
            return el;
        }
        if (!document.getElementById(rest[0].props.id)) { list.appendChild(draw(rest)); }
        return true;
    }""" % ID.LIST,
    Output(ID.MORE, "hidden"), Input(ID.MORE, "n_clicks"), State(ID.REST, "data"), prevent_initial_call=True,
)
