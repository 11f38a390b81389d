"""The cashier desk (/sell, 售电): meter search, the meter's card, sell / refund / reverse forms, the result
(a localized message or the triplicate receipt with its command state). Also the small pieces the other
billing pages share: money, times, state badges, BillingError alerts, the receipt block.

Pure builders: data from billing/ in, components out; component ids are the constants below."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import dash_bootstrap_components as dbc
from dash import dcc, html

from billing.errors import BillingError
from core.clock import show_local
from core.formatting import format_money
from dashboard.components.receipt import ReceiptData, receipt_sheet
from dashboard.i18n import t
from dashboard.ids import Sell as ID
from dashboard.ids import Shared

TICK_MS = 1000
FINAL_COMMAND_STATES = ("acked", "failed", "expired")
STATE_COLORS = {"queued": "secondary", "sent": "info", "acked": "success", "failed": "danger", "expired": "warning",
                "pending": "secondary", "confirmed": "success", "open": "success", "closing": "warning",
                "closed": "dark", "opened": "success", "not_opened": "secondary", "removed": "dark",
                "online": "success", "lost": "danger", "unknown": "secondary", "settled": "success",
                "in_flight": "info", "refused": "danger", "in_force": "success", "future": "info",
                "active": "success", "revoked": "dark"}


# ---------------------------------------------------------------------------------------------
# shared pieces
def when(value: dt.datetime | None) -> str:
    """A time billing/ already turned into site time (BillingContext.local)."""
    return show_local(value)


def state_badge(state: str | None, lang: str) -> dbc.Badge:
    """A command, entry, account or meter state in the operator's language."""
    state = state or "unknown"
    return dbc.Badge(t(f"cashier.state.{state}", lang), color=STATE_COLORS.get(state, "secondary"), className="me-1")


def error_alert(exc: BillingError, lang: str, ident: str = Shared.DESK_ERROR) -> html.Div:
    """A refused action: BillingError's message in the operator's language (nothing was written)."""
    return html.Div(dbc.Alert(exc.message(lang), color="danger", className="py-2 mb-2"), id=ident, role="alert",
                    **{"data-code": exc.code})


def notice(text: str, color: str = "warning", **kw) -> dbc.Alert:
    return dbc.Alert(text, color=color, className="py-2 mb-2", **kw)


def field(label: str, component, html_for: str | None = None, **col) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=html_for, className="small mb-1"), component], **col)


def receipt_block(data: dict, lang: str, *, command_state: str | None, entry_state: str | None,
                  failure: str | None = None, print_id: str = ID.PRINT, state_id: str = ID.COMMAND_STATE,
                  block_id: str = ID.RECEIPT_BLOCK) -> html.Div:
    """A receipt (billing.views.receipt's fields) with its command state and a Print button."""
    head = [html.Span(t("cashier.command", lang), className="me-1 small text-muted")]
    if command_state is not None:
        head.append(html.Span(state_badge(command_state, lang), id=state_id, **{"data-state": command_state}))
    if entry_state is not None:
        head += [html.Span(t("cashier.entry", lang), className="ms-2 me-1 small text-muted"),
                 html.Span(state_badge(entry_state, lang), id=Shared.entry_state(state_id),
                           **{"data-state": entry_state})]
    if command_state in ("queued", "sent"):
        head.append(dbc.Spinner(size="sm", spinner_class_name="ms-1", color="secondary"))
    info = []
    if entry_state == "failed":
        info.append(notice(t("cashier.entry_failed", lang, failure=failure or "—"), "danger", id=ID.FAILED))
    elif command_state in ("queued", "sent"):
        info.append(html.P(t("cashier.on_its_way", lang), className="small text-muted mb-2"))
    return html.Div([
        html.Div([html.Div(head, className="d-flex align-items-center flex-wrap"),
                  dbc.Button([html.I(className="bi bi-printer me-1"), t("receipt.print", lang)], id=print_id,
                             color="secondary", outline=True, size="sm")],
                 className="d-flex justify-content-between align-items-center flex-wrap gap-2 mb-2"),
        *info,
        receipt_sheet(ReceiptData(**data), lang),
    ], id=block_id, **{"data-receipt": data["receipt_no"]})


# ---------------------------------------------------------------------------------------------
# /sell
def meter_choices(rows: list[dict], lang: str) -> html.Div:
    """Several meters match the search: one button each."""
    return html.Div([
        html.P(t("cashier.pick", lang, n=len(rows)), className="small text-muted mb-1"),
        dbc.ListGroup([dbc.ListGroupItem(
            [html.Span(r["address"], className="font-monospace me-2"),
             html.Span(f"{r['building']} {r['room']}".strip() or "—", className="me-2"),
             state_badge(r["status"], lang)],
            id=ID.pick(r["address"]), action=True, n_clicks=0) for r in rows],
            className="mb-2"),
    ])


def meter_card(card: dict, lang: str) -> dbc.Card:
    """billing.desk.meter_card: holder (masked), room, balance, purchase count, states, latest entries."""
    acct = card.get("account")
    known = card["known"]
    pending = known.pending_credits + known.pending_debits
    rows = [
        (t("cashier.holder", lang), acct["holder"] if acct else "—"),
        (t("cashier.room", lang), f"{card['building']} {card['room']}".strip() or "—"),
        (t("cashier.status", lang), [state_badge(card["status"], lang)]
         + ([state_badge(acct["status"], lang)] if acct else [])),
        (t("cashier.balance", lang), html.Span(format_money(known.balance), id=ID.BALANCE, className="fs-5 fw-semibold")),
        (t("cashier.pending", lang), format_money(pending) if pending else "—"),
        (t("cashier.read_at", lang), when(card["read_at"]) if card["read_at"] else t("cashier.never_read", lang)),
        (t("cashier.purchase_count", lang), html.Span("—" if card["purchase_count"] is None
                                                       else str(card["purchase_count"]), id=ID.PURCHASE_COUNT)),
        (t("cashier.comm", lang), state_badge(card["comm_state"], lang)),
    ]
    entries = card["entries"]
    table = dbc.Table([
        html.Thead(html.Tr([html.Th(t(f"cashier.col_{c}", lang)) for c in ("time", "kind", "amount", "receipt",
                                                                              "state")])),
        html.Tbody([html.Tr([html.Td(show_local(e["created_at"], "short")),
                             html.Td(t(f"billing.kind.{e['kind']}", lang)),
                             html.Td(format_money(e["amount"]), className="text-end"),
                             html.Td(e["receipt_no"], className="font-monospace small entry-receipt"),
                             html.Td(state_badge(e["state"], lang))]) for e in entries]),
    ], size="sm", striped=True, responsive=True, className="mb-0 small text-nowrap latest-entries") if entries else \
        html.P(t("cashier.no_entries", lang), className="text-muted small mb-0")
    return dbc.Card([
        dbc.CardHeader([html.Span(t("cashier.meter", lang), className="me-2"),
                        html.Span(card["meter_address"], className="font-monospace fw-semibold", id=ID.ADDRESS)]),
        dbc.CardBody([
            html.Dl([x for k, v in rows for x in (html.Dt(k, className="col-5 fw-normal text-muted"),
                                                   html.Dd(v, className="col-7 mb-1"))], className="row mb-2 small"),
            html.H2(t("cashier.recent", lang), className="h6"),
            table,
        ]),
    ], id=ID.METER_CARD, className="mb-3")


def card_placeholder(lang: str) -> html.P:
    """Where the meter's card goes while no meter is chosen (also after a search that found none)."""
    return html.P(t("cashier.start", lang), className="text-muted small", id=ID.NO_METER)


def sell_page(lang: str, request_id: str, hoarding_limit: Decimal | None, *, meter: str | None = None,
              card=None, may_sell: bool = True, may_refund: bool = True, may_reverse: bool = True) -> dbc.Container:
    """The desk; `meter` and its `card` when the page is opened for one meter. Only the forms the operator may
    use are shown (sale.create, sale.refund, sale.reverse); finding a meter is for each of them."""
    search = dbc.InputGroup([
        dbc.Label(t("cashier.search", lang), html_for=ID.SEARCH, className="visually-hidden"),
        dbc.Input(id=ID.SEARCH, placeholder=t("cashier.search_placeholder", lang), autoComplete="off",
                  type="search"),
        dbc.Button([html.I(className="bi bi-search me-1"), t("cashier.find", lang)], id=ID.FIND, color="primary"),
    ], className="mb-2")
    limit = t("cashier.limit", lang, limit=format_money(hoarding_limit)) if hoarding_limit is not None else ""
    sell_form = dbc.Card(dbc.CardBody([
        html.H2(t("cashier.sell", lang), className="h6"),
        dbc.Label(t("cashier.amount", lang), html_for=ID.AMOUNT, className="visually-hidden"),
        dbc.InputGroup([
            dbc.InputGroupText("¥"),
            dbc.Input(id=ID.AMOUNT, type="text", inputMode="decimal", autoComplete="off"),
            dbc.Button(t("cashier.sell_button", lang), id=ID.SELL, color="success"),
        ]),
        html.Div(limit, className="form-text"),
    ]), className="mb-3")
    refund_form = [
        dbc.Row([field(t("cashier.amount", lang), dbc.Input(id=ID.REFUND_AMOUNT, type="text", inputMode="decimal",
                                                            autoComplete="off"), ID.REFUND_AMOUNT, xs=12, sm=4),
                 field(t("cashier.reason", lang), dbc.Input(id=ID.REFUND_REASON, autoComplete="off"),
                       ID.REFUND_REASON, xs=12, sm=8)], className="g-2 mb-2"),
        dbc.Button(t("cashier.refund_button", lang), id=ID.REFUND, color="warning"),
    ]
    reverse_form = [
        dbc.Row([field(t("cashier.receipt_no", lang), dbc.Input(id=ID.REVERSE_RECEIPT, autoComplete="off"),
                       ID.REVERSE_RECEIPT, xs=12, sm=5),
                 field(t("cashier.reason", lang), dbc.Input(id=ID.REVERSE_REASON, autoComplete="off"),
                       ID.REVERSE_REASON, xs=12, sm=7)], className="g-2 mb-2"),
        html.P(t("cashier.reverse_help", lang), className="form-text"),
        dbc.Button(t("cashier.reverse_button", lang), id=ID.REVERSE, color="danger"),
    ]
    items = ([dbc.AccordionItem(refund_form, title=t("cashier.refund", lang), item_id="refund")] if may_refund else []) \
        + ([dbc.AccordionItem(reverse_form, title=t("cashier.reverse", lang), item_id="reverse")] if may_reverse else [])
    more = dbc.Accordion(items, start_collapsed=True, always_open=True, id=ID.MORE, className="mb-3") \
        if items else None
    return dbc.Container([
        html.H1(t("cashier.heading", lang), className="h4"),
        dbc.Row([
            dbc.Col([search, html.Div(id=ID.MATCHES, role="status"),
                     html.Div(card or card_placeholder(lang), id=ID.CARD)],
                    lg=5, className="mb-2"),
            dbc.Col([sell_form if may_sell else None, more, html.Div(id=ID.RESULT, role="status", **{"aria-live": "polite"})], lg=7),
        ]),
        dcc.Store(id=ID.METER, data=meter),
        dcc.Store(id=ID.REQUEST, data=request_id),
        dcc.Store(id=ID.WATCH),
        dcc.Store(id=ID.PRINTED),
        dcc.Interval(id=ID.TICK, interval=TICK_MS, disabled=True),
    ], fluid=True, id=ID.PAGE)
