"""Work orders, the office's list (/workorders, 工单管理): orders filtered by type, state, worker, district (building)
and due soon / overdue, a search box (number, customer, account, meter, pole: WorkOrderService.search), and a new
order by hand or from a customer's request at the counter (the customer's account number, or their QR code typed
or read by a scanner: the service verifies it and the district)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.workorders_office import (ORDER_FIELDS, order_grid, order_grid_rows, order_link,
                                                    options, type_names)
from dashboard.i18n import request_lang, t
from dashboard.ids import WorkOrders as ID
from dashboard.services import actor, site_zone, workorders
from workorders import model as M
from workorders.errors import WorkOrderError
from workorders.office import DUE_FILTERS, Office
from workorders.service import parse_district

dash.register_page(__name__, path=access.WORKORDERS.path, title="Wattline", name="workorders")
LIMIT = 500


def _filters(lang: str, types: dict[str, str], workers: list[dict], buildings: list[str]) -> dbc.Row:
    def select(id_, opts, key):
        return dbc.Col(dcc.Dropdown(id=id_, options=opts, placeholder=t(f"wo_office.filter.{key}", lang),
                                    clearable=True), xs=12, sm=6, lg=2, className="mb-2")
    return dbc.Row([
        select(ID.TYPE, [{"label": v, "value": k} for k, v in types.items()], "type"),
        select(ID.STATE, options(M.STATES, lambda s: t(f"workorder.state.{s}", lang)), "state"),
        select(ID.WORKER, [{"label": w["display_name"] or w["username"], "value": w["operator_id"]} for w in workers],
               "worker"),
        select(ID.DISTRICT, [{"label": b, "value": b} for b in buildings], "district"),
        select(ID.DUE, options(DUE_FILTERS, lambda f: t(f"workorder.flag.{f}", lang)), "due"),
        dbc.Col(dbc.InputGroup([
            dbc.Input(id=ID.TEXT, type="search", maxLength=60, placeholder=t("wo_office.filter.text", lang),
                      debounce=True),
            dbc.Button(t("wo_office.search", lang), id=ID.SEARCH, color="primary"),
        ]), xs=12, lg=2, className="mb-2"),
    ], className="g-2")


def _district_options(districts: dict[str, dict[int, str]], lang: str) -> list[dict]:
    return [{"label": t("wo_office.new_district_none", lang), "value": ""}] + [
        {"label": f"{t(f'wo_office.district_{kind}', lang)}: {name}", "value": f"{kind}:{ident}"}
        for kind in M.DISTRICT_KINDS for ident, name in districts.get(kind, {}).items()]


def _new_order(lang: str, types: dict[str, str], districts: dict[str, dict[int, str]]) -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H2(t("wo_office.new_heading", lang), className="h6"),
        dbc.Row([
            dbc.Col([dbc.Label(t("wo_office.new_type", lang), html_for=ID.NEW_TYPE),
                     dbc.Select(id=ID.NEW_TYPE, options=[{"label": v, "value": k} for k, v in types.items()],
                                value="repair")], xs=12, md=3),
            dbc.Col([dbc.Label(t("wo_office.new_priority", lang), html_for=ID.NEW_PRIORITY),
                     dbc.Select(id=ID.NEW_PRIORITY, value=M.DEFAULT_PRIORITY,
                                options=options(M.PRIORITIES, lambda p: t(f"workorder.priority.{p}", lang)))],
                    xs=12, md=3),
            dbc.Col([dbc.Label(t("wo_office.new_customer", lang), html_for=ID.NEW_CUSTOMER),
                     dbc.Input(id=ID.NEW_CUSTOMER, maxLength=2000, autoComplete="off",
                               placeholder=t("wo_office.new_customer_hint", lang))], xs=12, md=6),
            dbc.Col([dbc.Label(t("wo_office.new_description", lang), html_for=ID.NEW_DESCRIPTION),
                     dbc.Textarea(id=ID.NEW_DESCRIPTION, maxLength=1000, rows=2)], xs=12, md=6),
            dbc.Col([dbc.Label(t("wo_office.new_pole", lang), html_for=ID.NEW_POLE),
                     dbc.Input(id=ID.NEW_POLE, maxLength=40)], xs=12, md=3),
            dbc.Col([dbc.Label(t("wo_office.new_location", lang), html_for=ID.NEW_LOCATION),
                     dbc.Input(id=ID.NEW_LOCATION, maxLength=300)], xs=12, md=3),
            dbc.Col([dbc.Label(t("wo_office.new_district", lang), html_for=ID.NEW_DISTRICT),
                     dbc.Select(id=ID.NEW_DISTRICT, value="", options=_district_options(districts, lang))],
                    xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.Button(t("wo_office.new_create", lang), id=ID.NEW_CREATE, color="success"),
        html.Div(id=ID.NEW_RESULT, role="status", className="small mt-2"),
    ]), className="mb-3")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.WORKORDERS, lang)
    if denied is not None:
        return denied
    service = workorders()
    types = type_names(service.order_types(active_only=False), lang)
    workers = service.workers()
    rows = Office(service).orders(actor(), limit=LIMIT)
    buildings = sorted({r["building_name"] for r in rows if r.get("building_name")} |
                       set(_buildings()))
    return dbc.Container([
        html.H1(t("wo_office.heading", lang), className="h4"),
        _new_order(lang, types, service.districts()) if allowed(P.WORKORDER_DISPATCH) else None,
        _filters(lang, types, workers, buildings),
        html.P(_count(rows, lang), id=ID.COUNT, className="text-muted small mb-1", role="status"),
        order_grid(ID.GRID, order_grid_rows(rows, types, site_zone(), lang), ORDER_FIELDS, lang),
        _card_editor(lang, types, service) if allowed(P.WORKORDER_DISPATCH) else None,
    ], fluid=True, id=ID.PAGE)


def _card_editor(lang: str, types: dict[str, str], service) -> dbc.Card:
    """The operating card (标准化作业指导书/卡) of a type as lines to edit: new orders copy the saved card, orders
    made before keep theirs."""
    from workorders.cards import card_text
    first = next(iter(types), "")
    return dbc.Card(dbc.CardBody([
        html.H2(t("wo_office.card_heading", lang), className="h6"),
        html.P(t("wo_office.card_help", lang), className="small text-muted mb-1", style={"whiteSpace": "pre-wrap"}),
        dbc.Select(id=ID.CARD_TYPE, value=first, className="mb-1",
                   options=[{"label": v, "value": k} for k, v in types.items()]),
        dbc.Textarea(id=ID.CARD_TEXT, value=card_text(service.card(first)) if first else "", rows=12,
                     maxLength=20000, className="mb-1 font-monospace small", spellCheck=False),
        dbc.Button(t("wo_office.card_save", lang), id=ID.CARD_SAVE, color="primary", size="sm"),
        html.Div(id=ID.CARD_RESULT, role="status", className="small mt-1"),
    ]), className="mt-3")


def _buildings() -> list[str]:
    from billing import desk
    from dashboard.services import billing
    return desk.buildings(billing())


def _count(rows: list[dict], lang: str) -> str:
    return t("wo_office.count_more" if len(rows) >= LIMIT else "wo_office.count", lang, n=len(rows))


@guarded_callback("workorders.search", access.WORKORDERS,
                  Input(ID.SEARCH, "n_clicks"), Input(ID.TEXT, "n_submit"), Input(ID.TYPE, "value"),
                  Input(ID.STATE, "value"), Input(ID.WORKER, "value"), Input(ID.DISTRICT, "value"),
                  Input(ID.DUE, "value"), State(ID.TEXT, "value"),
                  output={"rows": Output(ID.GRID, "rowData"), "count": Output(ID.COUNT, "children")},
                  changes_state=False, prevent_initial_call=True)
def search(_n, _submit, type_, state, worker, district, due, text):
    lang = request_lang()
    service = workorders()
    try:
        rows = Office(service).orders(
            actor(), text=inputs.text(text), types=[type_] if inputs.key_text(type_, 30) else None,
            states=[state] if inputs.key_text(state, 12) else None, worker_id=inputs.record_id(worker),
            building=inputs.key_text(district), due=inputs.key_text(due, 12), limit=LIMIT)
    except WorkOrderError as exc:
        return {"rows": no_update, "count": html.Span(exc.message(lang), className="text-danger")}
    types = type_names(service.order_types(active_only=False), lang)
    return {"rows": order_grid_rows(rows, types, site_zone(), lang), "count": _count(rows, lang)}


@guarded_callback("workorders.create", P.WORKORDER_DISPATCH,
                  Output(ID.NEW_RESULT, "children"), Input(ID.NEW_CREATE, "n_clicks"),
                  State(ID.NEW_TYPE, "value"), State(ID.NEW_PRIORITY, "value"), State(ID.NEW_CUSTOMER, "value"),
                  State(ID.NEW_DESCRIPTION, "value"), State(ID.NEW_POLE, "value"), State(ID.NEW_LOCATION, "value"),
                  State(ID.NEW_DISTRICT, "value"), prevent_initial_call=True)
def create(n, type_, priority, customer, description, pole, location, district):
    if not n:
        raise PreventUpdate
    lang = request_lang()
    who = (inputs.text(customer) or "").strip()
    # an account number is digits; anything else typed here is taken as the customer's QR code (a scanner types it)
    by_account = who.isascii() and who.isdigit()
    place = inputs.key_text(district, 30) or None     # "building:3" / "area:5": the service checks it
    try:
        if who:
            made = workorders().create_from_request(
                actor(), type=inputs.text(type_) or "", priority=inputs.text(priority), channel="counter",
                description=inputs.text(description), account=who if by_account else None,
                qr_token=None if by_account else who, pole_number=inputs.text(pole), location=inputs.text(location),
                district=parse_district(place) if place else None)
        else:
            made = workorders().create(actor(), type=inputs.text(type_) or "", priority=inputs.text(priority),
                                       description=inputs.text(description), pole_number=inputs.text(pole),
                                       location=inputs.text(location), district=place)
    except WorkOrderError as exc:
        return html.Span(exc.message(lang), className="text-danger")
    number = made.order["number"]
    return html.Span([t("wo_office.created", lang, number=number), " ",
                      html.A(t("wo_office.open", lang), href=order_link(number))], className="text-success")


@guarded_callback("workorders.card_load", P.WORKORDER_DISPATCH,
                  Output(ID.CARD_TEXT, "value"), Input(ID.CARD_TYPE, "value"),
                  prevent_initial_call=True, changes_state=False)
def load_card(type_key):
    from workorders.cards import card_text
    key = inputs.key_text(type_key, 30)
    return card_text(workorders().card(key)) if key else ""


@guarded_callback("workorders.card_save", P.WORKORDER_DISPATCH,
                  Output(ID.CARD_RESULT, "children"), Input(ID.CARD_SAVE, "n_clicks"),
                  State(ID.CARD_TYPE, "value"), State(ID.CARD_TEXT, "value"), prevent_initial_call=True)
def save_card(n, type_key, text):
    """The type's card replaced by the lines (refused naming the line, nothing written; audited)."""
    if not n:
        raise PreventUpdate
    lang = request_lang()
    try:
        items = workorders().save_card(actor(), inputs.key_text(type_key, 30) or "", inputs.text(text))
    except WorkOrderError as exc:
        return html.Span(exc.message(lang), className="text-danger")
    return html.Span(t("wo_office.card_saved", lang, n=len(items)), className="text-success")
