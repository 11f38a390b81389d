"""Cashier desk (/sell, 售电): find a meter by number, room or scanned QR code; sell, refund, reverse by
receipt number. Each action runs one billing service (which checks the amount, writes the entry and its
command in one transaction and logs it); the result is the localized refusal or the triplicate receipt,
whose command state is followed until the meter answers."""
from __future__ import annotations

import time
import uuid

import dash
from dash import ALL, Input, Output, State, clientside_callback, ctx, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from billing import desk, ledger
from billing.errors import BillingError
from billing.qr import BadToken
from billing.views import receipt
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback
from dashboard.components.cashier import (
    FINAL_COMMAND_STATES, card_placeholder, error_alert, meter_card, meter_choices, notice, receipt_block, sell_page,
)
from dashboard.i18n import request_lang, t
from dashboard.ids import Sell as ID
from dashboard.ids import Shared
from dashboard.services import actor, billing

SELL, REFUND, REVERSE = P.SALE_CREATE, P.SALE_REFUND, P.SALE_REVERSE
DESK = access.SELL   # finding a meter and following a receipt: for whoever may sell, refund or reverse
WATCH_S = 300  # follow a command this long; the receipt keeps its last state after that
dash.register_page(__name__, path="/sell", title="Wattline", name="sell")


def _new_request_id() -> str:
    return f"desk-{uuid.uuid4().hex}"


def layout(meter: str | None = None, **_query):
    lang = request_lang()
    denied = forbidden_page(access.SELL, lang)
    if denied is not None:
        return denied
    # /sell?meter=202611210001 (from the account page); a repeated or unprintable meter= names none
    chosen = meter if isinstance(meter, str) and meter.isprintable() and meter else None
    return sell_page(lang, _new_request_id(), desk.sale_limit(billing()), meter=chosen,
                     card=_card(chosen, lang) if chosen else None, may_sell=allowed(SELL), may_refund=allowed(REFUND),
                     may_reverse=allowed(REVERSE))


def _card(address: str, lang: str):
    try:
        return meter_card(desk.meter_card(billing(), address), lang)
    except BillingError as exc:
        return error_alert(exc, lang)


def _receipt_view(receipt_no: str, lang: str):
    """The receipt block of an entry and the watch record of its command."""
    ctx_ = billing()
    entry = ledger.get_entry(ctx_, receipt_no)
    block = receipt_block(receipt(ctx_, receipt_no), lang, command_state=entry.command_state,
                          entry_state=entry.state, failure=entry.failure)
    return block, {"receipt": entry.receipt_no, "state": entry.command_state, "entry": entry.state,
                   "since": time.time()}, _final(entry)


def _final(entry) -> bool:
    return entry.state != "pending" or entry.command_state in FINAL_COMMAND_STATES


def _a_meter(address) -> bool:
    """The chosen-meter store holds what find or pick put there: a meter number (anything else names none)."""
    return isinstance(address, str) and bool(address) and address.isprintable()


# ---------------------------------------------------------------------------------------------
# finding the meter
@guarded_callback("sell.find", DESK, Output(ID.METER, "data"), Output(ID.MATCHES, "children"),
                  Input(ID.FIND, "n_clicks"), Input(ID.SEARCH, "n_submit"), State(ID.SEARCH, "value"),
                  changes_state=False, prevent_initial_call=True)
def find(n_clicks, n_submit, text):
    if not n_clicks and not n_submit:
        raise PreventUpdate
    lang = request_lang()
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        return no_update, notice(t("cashier.search_empty", lang), id=ID.NO_MATCH)
    try:
        rows = desk.find_meters(billing(), text, current_app.config["WATTLINE_SERVICES"].qr_key)
    except BadToken:
        return None, notice(t("cashier.qr_invalid", lang), "danger", id=ID.NO_MATCH)
    if not rows:
        return None, notice(t("cashier.no_match", lang, text=text), id=ID.NO_MATCH)
    if len(rows) == 1:
        return rows[0]["address"], None
    return None, meter_choices(rows, lang)


@dash.callback(Output(ID.METER, "data", allow_duplicate=True), Input(ID.pick(ALL), "n_clicks"),
               prevent_initial_call=True)
def pick(_clicks):
    """One of several matches chosen: its address is the button's id (nothing stored is read here)."""
    if not ctx.triggered or not ctx.triggered[0]["value"] or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    return str(ctx.triggered_id["index"])


@guarded_callback("sell.card", DESK, Output(ID.CARD, "children"), Input(ID.METER, "data"),
                  Input(ID.WATCH, "data"), changes_state=False, prevent_initial_call=True)
def show_meter(address, _watch):
    """The chosen meter's card; none chosen (a search that found no meter, or several): the card goes, so no
    earlier meter's card stays beside a form that answers "find and choose a meter first"."""
    if not _a_meter(address):
        return card_placeholder(request_lang())
    return _card(address, request_lang())


# ---------------------------------------------------------------------------------------------
# money: each refusal writes nothing and says why; each success shows the receipt and follows its command
def _result_outputs(**fields) -> dict:
    """The outputs of a money action: the receipt (or refusal), the command it follows and the follow tick, and
    `fields`: the form fields cleared after a success (and the request id renewed)."""
    return {"result": Output(ID.RESULT, "children", allow_duplicate=True),
            "watch": Output(ID.WATCH, "data", allow_duplicate=True),
            "stopped": Output(ID.TICK, "disabled", allow_duplicate=True), **fields}


def _money_action(action, cleared: tuple[str, ...]) -> dict:
    """Run one money service: the receipt, its watch record, whether following stops, and the `cleared` fields
    emptied after a success (left as typed after a refusal)."""
    lang = request_lang()
    try:
        entry = action(actor())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), "watch": None, "stopped": True, **dict.fromkeys(cleared, no_update)}
    block, watch, final = _receipt_view(entry.receipt_no, lang)
    return {"result": block, "watch": watch, "stopped": final, **dict.fromkeys(cleared, "")}


def _need_meter(address, untouched: tuple[str, ...]) -> dict | None:
    if _a_meter(address):
        return None
    return {"result": notice(t("cashier.no_meter", request_lang()), id=Shared.DESK_ERROR), "watch": None,
            "stopped": True,
            **dict.fromkeys(untouched, no_update)}


def _renewed_request(out: dict) -> dict:
    """After a sale or refund that went through, the next one gets a new request id (a repeat of this one is
    recognised by its id); after a refusal the same id is kept."""
    return {**out, "request": _new_request_id() if out["watch"] else no_update}


@guarded_callback("sell.sell", SELL, Input(ID.SELL, "n_clicks"), Input(ID.AMOUNT, "n_submit"),
                  State(ID.METER, "data"), State(ID.AMOUNT, "value"), State(ID.REQUEST, "data"),
                  output=_result_outputs(amount=Output(ID.AMOUNT, "value"),
                                         request=Output(ID.REQUEST, "data", allow_duplicate=True)),
                  prevent_initial_call=True)
def sell(n_clicks, n_submit, address, amount, request_id):
    if not n_clicks and not n_submit:
        raise PreventUpdate
    missing = _need_meter(address, ("amount", "request"))
    if missing:
        return missing
    rid = request_id if isinstance(request_id, str) else None
    return _renewed_request(_money_action(lambda who: ledger.sell(billing(), address, amount, who, request_id=rid),
                                          ("amount",)))


@guarded_callback("sell.refund", REFUND, Input(ID.REFUND, "n_clicks"), State(ID.METER, "data"),
                  State(ID.REFUND_AMOUNT, "value"), State(ID.REFUND_REASON, "value"), State(ID.REQUEST, "data"),
                  output=_result_outputs(amount=Output(ID.REFUND_AMOUNT, "value"),
                                         reason=Output(ID.REFUND_REASON, "value"),
                                         request=Output(ID.REQUEST, "data", allow_duplicate=True)),
                  prevent_initial_call=True)
def refund(n_clicks, address, amount, reason, request_id):
    if not n_clicks:
        raise PreventUpdate
    missing = _need_meter(address, ("amount", "reason", "request"))
    if missing:
        return missing
    rid = request_id if isinstance(request_id, str) else None
    return _renewed_request(_money_action(
        lambda who: ledger.refund(billing(), address, amount, who, reason=reason, request_id=rid), ("amount", "reason")))


@guarded_callback("sell.reverse", REVERSE, Input(ID.REVERSE, "n_clicks"), State(ID.REVERSE_RECEIPT, "value"),
                  State(ID.REVERSE_REASON, "value"),
                  output=_result_outputs(receipt=Output(ID.REVERSE_RECEIPT, "value"),
                                         reason=Output(ID.REVERSE_REASON, "value")),
                  prevent_initial_call=True)
def reverse(n_clicks, receipt_no, reason):
    if not n_clicks:
        raise PreventUpdate
    typed = str(receipt_no or "")

    def reverse_typed(who):
        if typed.strip() and inputs.key_text(typed.strip(), 40) is None:  # no receipt number is longer or unprintable
            raise BillingError("entry_unknown", receipt=inputs.shown(typed))
        return ledger.reverse_entry(billing(), typed, who, str(reason or ""))
    return _money_action(reverse_typed, ("receipt", "reason"))


@guarded_callback("sell.follow", DESK, Input(ID.TICK, "n_intervals"), State(ID.WATCH, "data"),
                  output=_result_outputs(), changes_state=False, prevent_initial_call=True)
def follow(_n, watch):
    """The receipt's command state, until the meter answered (acked / failed / expired) or WATCH_S passed."""
    if not isinstance(watch, dict) or inputs.key_text(watch.get("receipt")) is None:
        return {"result": no_update, "watch": no_update, "stopped": True}
    lang = request_lang()
    try:
        entry = ledger.get_entry(billing(), watch["receipt"])
    except BillingError:
        return {"result": no_update, "watch": None, "stopped": True}
    if (entry.command_state, entry.state) == (watch.get("state"), watch.get("entry")):
        if time.time() - float(watch.get("since") or 0) > WATCH_S:
            return {"result": no_update, "watch": no_update, "stopped": True}
        raise PreventUpdate
    block, fresh, final = _receipt_view(entry.receipt_no, lang)
    return {"result": block, "watch": {**fresh, "since": watch.get("since") or fresh["since"]}, "stopped": final}


clientside_callback(
    "function (n) { if (n) { window.print(); } return n || 0; }",
    Output(ID.PRINTED, "data"), Input(ID.PRINT, "n_clicks"), prevent_initial_call=True,
)
