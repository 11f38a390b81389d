"""Accounts (/accounts, 开户/销户): open an account (opening receipt), find an account and show its meters,
balances and entries, add a meter, carry an old meter's balance over, close it (closing refund, progress
per meter), hand out the customer card, and query openings and closings. account.open, account.close."""
from __future__ import annotations

import base64
import datetime as dt
import re

import dash
from dash import ALL, Input, Output, State, clientside_callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from billing import accounts as billing_accounts
from billing import desk, transfers
from billing.errors import BillingError
from billing.ledger import get_entry
from billing.tariffs import tariff_list
from billing.views import receipt
from core import permissions as P
from core.formatting import format_money
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.accounts import (
    STATUSES, account_detail, account_rows, accounts_page, approval_list, approval_options, card_svg, event_rows,
    room_meter_options,
)
from dashboard.components.cashier import error_alert, notice, receipt_block
from dashboard.i18n import request_lang, t
from dashboard.ids import Accounts as ID
from dashboard.selfservice import public_base_url
from dashboard.services import actor, billing, operator_name

OPEN, CLOSE, ENTERED = P.ACCOUNT_OPEN, P.ACCOUNT_CLOSE, P.TRANSFER_ENTERED
FIND = (OPEN, CLOSE)  # finding an account and reading it: for whoever may open or close one
dash.register_page(__name__, path="/accounts", title="Wattline", name="accounts")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.ACCOUNTS, lang)
    if denied is not None:
        return denied
    ctx_ = billing()
    page = accounts_page(lang, may_open=allowed(OPEN), may_find=allowed(FIND), may_close=allowed(CLOSE),
                         may_enter=allowed(ENTERED),
                         approvals=transfers.transfers_awaiting(ctx_) if allowed(ENTERED) else None,
                         buildings=desk.buildings(ctx_),
                         tariffs=[{"id": x["id"], "name": x["name"], "mode": x["mode"]} for x in tariff_list(ctx_)
                                  if x["retired_at"] is None],   # a retired tariff is offered no more
                         operators=desk.account_operators(ctx_))
    page.children.append(dcc.Store(id=ID.RECEIPT_NO))
    return page


def _account_id(value) -> int | None:
    """An id that came back from the browser: a positive int (or its digits) that can name a row, else None."""
    return inputs.record_id(value)


def _addresses(text) -> list[str]:
    return [a for a in re.split(r"[\s,;，；]+", str(text or "")) if a]


# ---------------------------------------------------------------------------------------------
# opening
@guarded_callback("accounts.rooms", OPEN, Output(ID.ROOM, "options"), Output(ID.ROOM, "value"),
                  Input(ID.BUILDING, "value"), changes_state=False, prevent_initial_call=True)
def rooms_of_building(building):
    if not isinstance(building, str) or not building:
        return [], None
    return [{"label": r["name"], "value": r["id"]} for r in desk.rooms(billing(), building)], None


@guarded_callback("accounts.room_meters", OPEN, Output(ID.ROOM_METERS, "options"),
                  Output(ID.ROOM_METERS, "value"), Input(ID.ROOM, "value"), changes_state=False,
                  prevent_initial_call=True)
def meters_of_room(room_id):
    rid = _account_id(room_id)
    if rid is None:
        return [], []
    return room_meter_options(desk.openable_meters(billing(), rid), request_lang())


_OPEN_FIELDS = ("holder", "phone", "national_id", "extra_meters")   # emptied once the account is open


@guarded_callback("accounts.open", OPEN,
                  Input(ID.OPEN, "n_clicks"), State(ID.ROOM, "value"), State(ID.ROOM_METERS, "value"),
                  State(ID.EXTRA_METERS, "value"), State(ID.HOLDER, "value"), State(ID.PHONE, "value"),
                  State(ID.NATIONAL_ID, "value"), State(ID.TARIFF, "value"),
                  output={"result": Output(ID.OPEN_RESULT, "children"),
                          "selected": Output(ID.SELECTED, "data", allow_duplicate=True),
                          "holder": Output(ID.HOLDER, "value"), "phone": Output(ID.PHONE, "value"),
                          "national_id": Output(ID.NATIONAL_ID, "value"),
                          "extra_meters": Output(ID.EXTRA_METERS, "value"),
                          "room_meters": Output(ID.ROOM_METERS, "options", allow_duplicate=True)},
                  prevent_initial_call=True)
def open_account(n_clicks, room_id, room_meters, extra, holder, phone, national_id, tariff_id):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    meters = [m for m in (room_meters if isinstance(room_meters, list) else []) if isinstance(m, str)]
    meters += [m for m in _addresses(extra) if m not in meters]
    ctx_ = billing()
    try:
        view = billing_accounts.open_account(
            ctx_, holder_name=str(holder or ""), meter_addresses=meters, operator=operator_name(),
            phone=str(phone or "") or None, national_id=str(national_id or "") or None,
            room_id=_account_id(room_id), tariff_id=_account_id(tariff_id), remote=source_address())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), "selected": no_update, "room_meters": no_update,
                **dict.fromkeys(_OPEN_FIELDS, no_update)}
    batch = desk.batch_status(ctx_, view.batch_id)
    result = [notice(t("accounts.opened_ok", lang, id=view.id, holder=view.holder_name,
                       n=len(batch["commands"])), "success", id=ID.OPENED),
              receipt_block(desk.opening_receipt(ctx_, view), lang, command_state=None, entry_state=None,
                            print_id=ID.OPEN_PRINT, state_id=ID.OPEN_STATE, block_id=ID.OPEN_RECEIPT)]
    options = no_update
    rid = _account_id(room_id)
    if rid is not None:
        options, _ = room_meter_options(desk.openable_meters(ctx_, rid), lang)
    return {"result": result, "selected": view.id, "room_meters": options, **dict.fromkeys(_OPEN_FIELDS, "")}


# ---------------------------------------------------------------------------------------------
# finding an account and its detail
@guarded_callback("accounts.find", FIND, Output(ID.GRID, "rowData"), Input(ID.FIND, "n_clicks"),
                  Input(ID.SEARCH, "n_submit"), State(ID.SEARCH, "value"), State(ID.STATUS, "value"),
                  changes_state=False, prevent_initial_call=True)
def find_accounts(n_clicks, n_submit, text, status):
    if not n_clicks and not n_submit:
        raise PreventUpdate
    status = status if status in STATUSES else None
    rows = billing_accounts.find_accounts(billing(), text if isinstance(text, str) else None, status, limit=200)
    return account_rows(rows, request_lang())


@dash.callback(Output(ID.SELECTED, "data", allow_duplicate=True), Input(ID.GRID, "selectedRows"),
               prevent_initial_call=True)
def select_account(rows):
    """The row the browser selected (its rows came from accounts.find): nothing stored is read here."""
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and _account_id(rows[0].get("id")):
        return _account_id(rows[0]["id"])
    raise PreventUpdate


def _detail(account_id: int, lang: str):
    """(detail, meters dropdown options, keep following?, style of the actions) of an account; a BillingError
    alert if there is none. The actions show while the account is open (or closing: closing can be retried)."""
    try:
        detail = desk.account_detail(billing(), account_id)
    except BillingError as exc:
        return error_alert(exc, lang), [], False, {"display": "none"}
    a = detail["account"]
    in_flight = a.status == "closing" or any(e["state"] == "pending" for e in detail["entries"])
    options = [{"label": m.address, "value": m.address} for m in a.meters]
    actions = {"display": "block" if a.status in ("open", "closing") else "none"}
    return account_detail(detail, lang, may_sell=allowed(access.SELL.any_of)), options, in_flight, actions


@guarded_callback("accounts.detail", FIND,
                  output={"detail": Output(ID.DETAIL, "children"), "actions": Output(ID.ACTIONS, "style"),
                          "new_meters": Output(ID.NEW_METER, "options"), "new_meter": Output(ID.NEW_METER, "value"),
                          "stopped": Output(ID.TICK, "disabled"), "card": Output(ID.CARD_PREVIEW, "children"),
                          "receipt": Output(ID.RECEIPT, "children"), "result": Output(ID.ACTION_RESULT, "children")},
                  inputs=Input(ID.SELECTED, "data"), changes_state=False, prevent_initial_call=True)
def show_account(account_id):
    """Another account chosen: its detail, and what the previous one left (card, receipt, message) cleared."""
    aid = _account_id(account_id)
    if aid is None:
        raise PreventUpdate
    detail, options, in_flight, actions = _detail(aid, request_lang())
    return {"detail": detail, "actions": actions, "new_meters": options,
            "new_meter": options[0]["value"] if options else None, "stopped": not in_flight,
            "card": None, "receipt": None, "result": None}


@guarded_callback("accounts.follow", FIND, Input(ID.TICK, "n_intervals"), State(ID.SELECTED, "data"),
                  output={"detail": Output(ID.DETAIL, "children", allow_duplicate=True),
                          "stopped": Output(ID.TICK, "disabled", allow_duplicate=True),
                          "actions": Output(ID.ACTIONS, "style", allow_duplicate=True)},
                  changes_state=False, prevent_initial_call=True)
def follow_account(_n, account_id):
    """Entries on their way and closing steps, until every command of the account has an answer."""
    aid = _account_id(account_id)
    if aid is None:
        return {"detail": no_update, "stopped": True, "actions": no_update}
    detail, _options, in_flight, actions = _detail(aid, request_lang())
    return {"detail": detail, "stopped": not in_flight, "actions": actions}


def _after_action(aid: int, lang: str, message, **fields) -> dict:
    """An action done: its message, the account as it is now, and `fields` (the action's own outputs)."""
    detail, options, in_flight, actions = _detail(aid, lang)
    return {"result": message, "detail": detail, "stopped": not in_flight, "new_meters": options, "actions": actions,
            **fields}


def _refused(message, fields: tuple[str, ...] = ()) -> dict:
    """An action refused: its message, nothing else changes (neither the account nor the action's `fields`)."""
    return {"result": message, **dict.fromkeys(("detail", "stopped", "new_meters", "actions", *fields), no_update)}


def _action_outputs(**fields) -> dict:
    """The outputs every account action shares, and `fields`: the action's own."""
    return {"result": Output(ID.ACTION_RESULT, "children", allow_duplicate=True),
            "detail": Output(ID.DETAIL, "children", allow_duplicate=True),
            "stopped": Output(ID.TICK, "disabled", allow_duplicate=True),
            "new_meters": Output(ID.NEW_METER, "options", allow_duplicate=True),
            "actions": Output(ID.ACTIONS, "style", allow_duplicate=True), **fields}


@guarded_callback("accounts.add_meter", OPEN, Input(ID.ADD, "n_clicks"), State(ID.SELECTED, "data"),
                  State(ID.ADD_METER, "value"), output=_action_outputs(address=Output(ID.ADD_METER, "value")),
                  prevent_initial_call=True)
def add_meter(n_clicks, account_id, address):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    aid = _account_id(account_id)
    if aid is None:
        return _refused(notice(t("accounts.pick_account", lang)), ("address",))
    try:
        billing_accounts.add_meter(billing(), aid, str(address or "").strip(), operator_name(), remote=source_address())
    except BillingError as exc:
        return _refused(error_alert(exc, lang), ("address",))
    done = notice(t("accounts.meter_added", lang, meter=str(address).strip()), "success", id=ID.ACTION_OK)
    return _after_action(aid, lang, done, address="")


@guarded_callback("accounts.transfer", OPEN,
                  Input(ID.TRANSFER, "n_clicks"), State(ID.SELECTED, "data"), State(ID.OLD_METER, "value"),
                  State(ID.NEW_METER, "value"), State(ID.TRANSFER_MODE, "value"), State(ID.TRANSFER_AMOUNT, "value"),
                  State(ID.TRANSFER_REASON, "value"),
                  output=_action_outputs(receipt=Output(ID.RECEIPT, "children", allow_duplicate=True)),
                  prevent_initial_call=True)
def transfer(n_clicks, account_id, old, new, mode, amount, reason):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    aid = _account_id(account_id)
    if aid is None:
        return _refused(notice(t("accounts.pick_account", lang)), ("receipt",))
    ctx_ = billing()
    entered = mode == "entered"
    try:
        result = transfers.transfer_old_meter_balance(
            ctx_, aid, str(old or ""), str(new or ""), actor(), entered=entered,
            amount=amount if entered and isinstance(amount, (str, int)) else None,
            reason=reason if isinstance(reason, str) else None)
    except BillingError as exc:
        return _refused(error_alert(exc, lang), ("receipt",))
    if result is None:   # a meter replaced in place with nothing left to carry over
        done = notice(t("accounts.replaced_in_place", lang, meter=str(old).strip()), "success", id=ID.ACTION_OK)
        return _after_action(aid, lang, done, receipt=None)
    if isinstance(result, transfers.TransferRequestView):   # waits for a second operator
        done = html.Div(notice(t("accounts.transfer_requested", lang, request=result.id,
                                 amount=format_money(result.amount), old=result.old_address), "info"),
                        id=ID.ACTION_OK, **{"data-request": str(result.id)})
        return _after_action(aid, lang, done, receipt=None)
    done = notice(t("accounts.transferred", lang, amount=format_money(result.amount), old=str(old).strip(),
                    new=result.meter_address), "success", id=ID.ACTION_OK)
    block = receipt_block(receipt(ctx_, result.receipt_no), lang, command_state=result.command_state,
                          entry_state=result.state, print_id=ID.RECEIPT_PRINT, state_id=ID.RECEIPT_STATE,
                          block_id=ID.RECEIPT_BLOCK)
    return _after_action(aid, lang, done, receipt=block)


@guarded_callback("accounts.close", CLOSE, Input(ID.CLOSE_CONFIRM, "submit_n_clicks"), State(ID.SELECTED, "data"),
                  State(ID.CLOSE_REASON, "value"), output=_action_outputs(), prevent_initial_call=True)
def close_account(n_clicks, account_id, reason):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    aid = _account_id(account_id)
    if aid is None:
        return _refused(notice(t("accounts.pick_account", lang)))
    try:
        billing_accounts.close_account(billing(), aid, actor(), reason=reason if isinstance(reason, str) else None)
    except BillingError as exc:
        return _refused(error_alert(exc, lang))
    return _after_action(aid, lang, notice(t("accounts.closing_started", lang, id=aid), "info", id=ID.ACTION_OK))


@guarded_callback("accounts.settle_by_hand", CLOSE,
                  Input(ID.HAND_CONFIRM, "submit_n_clicks"), State(ID.SELECTED, "data"),
                  State(ID.HAND_METER, "value"), State(ID.HAND_AMOUNT, "value"), State(ID.HAND_REASON, "value"),
                  output=_action_outputs(receipt=Output(ID.RECEIPT, "children", allow_duplicate=True),
                                         amount=Output(ID.HAND_AMOUNT, "value"),
                                         reason=Output(ID.HAND_REASON, "value")), prevent_initial_call=True)
def settle_by_hand(n_clicks, account_id, address, amount, reason):
    """A meter that cannot answer its closing trip: its remaining money typed in, refunded without a command."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    aid = _account_id(account_id)
    if aid is None:
        return _refused(notice(t("accounts.pick_account", lang)), ("receipt", "amount", "reason"))
    ctx_ = billing()
    address = str(address or "").strip()
    try:
        done_ = billing_accounts.settle_meter_by_hand(
            ctx_, aid, address, actor(), amount=amount if isinstance(amount, (str, int)) else None,
            reason=reason if isinstance(reason, str) else None)
    except BillingError as exc:
        return _refused(error_alert(exc, lang), ("receipt", "amount", "reason"))
    amount_text = format_money(done_.refund)
    done = notice(t("accounts.by_hand_done", lang, meter=address, amount=amount_text), "success", id=ID.ACTION_OK)
    block = no_update
    if done_.receipt_no is not None:
        block = receipt_block(receipt(ctx_, done_.receipt_no), lang, command_state=None, entry_state="confirmed",
                              print_id=ID.RECEIPT_PRINT, state_id=ID.RECEIPT_STATE, block_id=ID.RECEIPT_BLOCK)
    return _after_action(aid, lang, done, receipt=block, amount="", reason="")


# ---------------------------------------------------------------------------------------------
# entered transfers awaiting a second operator
def _approvals(lang: str):
    waiting = transfers.transfers_awaiting(billing())
    return approval_list(waiting, lang), approval_options(waiting)


@guarded_callback("accounts.approvals", ENTERED, Output(ID.APPROVAL_LIST, "children"),
                  Output(ID.APPROVAL_PICK, "options"), Input(ID.APPROVAL_REFRESH, "n_clicks"),
                  changes_state=False, prevent_initial_call=True)
def refresh_approvals(n_clicks):
    if not n_clicks:
        raise PreventUpdate
    return _approvals(request_lang())


def _decide(decision, request_id, note):
    """Approve or reject the chosen request: its message; once decided, the list without it and the form cleared."""
    lang = request_lang()
    unchanged = dict.fromkeys(("listing", "options", "chosen", "note"), no_update)
    request_id = inputs.record_id(request_id)  # the dropdown's value: a request's id
    if request_id is None:
        return {"result": notice(t("accounts.approval_pick_first", lang), id=ID.APPROVAL_ERROR), **unchanged}
    try:
        message = decision(request_id, note if isinstance(note, str) else None, lang)
    except BillingError as exc:
        return {"result": error_alert(exc, lang, ident=ID.APPROVAL_ERROR), **unchanged}
    listing, options = _approvals(lang)
    return {"result": message, "listing": listing, "options": options, "chosen": None, "note": ""}


def _decision_outputs() -> dict:
    return {"result": Output(ID.APPROVAL_RESULT, "children", allow_duplicate=True),
            "listing": Output(ID.APPROVAL_LIST, "children", allow_duplicate=True),
            "options": Output(ID.APPROVAL_PICK, "options", allow_duplicate=True),
            "chosen": Output(ID.APPROVAL_PICK, "value"), "note": Output(ID.APPROVAL_NOTE, "value")}


@guarded_callback("accounts.approve", ENTERED, Input(ID.APPROVE, "n_clicks"), State(ID.APPROVAL_PICK, "value"),
                  State(ID.APPROVAL_NOTE, "value"), output=_decision_outputs(), prevent_initial_call=True)
def approve_transfer(n_clicks, request_id, note):
    if not n_clicks:
        raise PreventUpdate

    def approve(rid, text, lang):
        entry = transfers.approve_transfer(billing(), rid, actor(), note=text)
        return html.Div(notice(t("accounts.approved", lang, request=rid, receipt=entry.receipt_no,
                                 amount=format_money(entry.amount), meter=entry.meter_address), "success"),
                        id=ID.APPROVAL_OK, **{"data-receipt": entry.receipt_no})
    return _decide(approve, request_id, note)


@guarded_callback("accounts.reject", ENTERED, Input(ID.REJECT, "n_clicks"), State(ID.APPROVAL_PICK, "value"),
                  State(ID.APPROVAL_NOTE, "value"), output=_decision_outputs(), prevent_initial_call=True)
def reject_transfer(n_clicks, request_id, note):
    if not n_clicks:
        raise PreventUpdate

    def reject(rid, text, lang):
        view = transfers.reject_transfer(billing(), rid, actor(), reason=text)
        return notice(t("accounts.rejected", lang, request=view.id, old=view.old_address), "info",
                      id=ID.APPROVAL_OK)
    return _decide(reject, request_id, note)


# ---------------------------------------------------------------------------------------------
# receipts of the account's entries, the customer card
@dash.callback(Output(ID.RECEIPT_NO, "data"), Input(ID.entry(ALL), "n_clicks"),
               prevent_initial_call=True)
def choose_receipt(_clicks):
    """A receipt number clicked in the entries table (the button's id; nothing stored is read)."""
    if not ctx.triggered or not ctx.triggered[0]["value"] or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    return str(ctx.triggered_id["index"])


@guarded_callback("accounts.receipt", FIND, Output(ID.RECEIPT, "children", allow_duplicate=True),
                  Input(ID.RECEIPT_NO, "data"), changes_state=False, prevent_initial_call=True)
def show_receipt(receipt_no):
    if inputs.key_text(receipt_no) is None:  # the receipt number the entry's button carries
        raise PreventUpdate
    lang = request_lang()
    ctx_ = billing()
    try:
        entry = get_entry(ctx_, receipt_no)
        data = receipt(ctx_, receipt_no)
    except BillingError as exc:
        return error_alert(exc, lang)
    return receipt_block(data, lang, command_state=entry.command_state, entry_state=entry.state,
                         failure=entry.failure, print_id=ID.RECEIPT_PRINT, state_id=ID.RECEIPT_STATE,
                         block_id=ID.RECEIPT_BLOCK)


@guarded_callback("accounts.card", OPEN, Output(ID.CARD_SVG, "data"), Output(ID.CARD_PREVIEW, "children",
                                                                               allow_duplicate=True),
                  Input(ID.CARD, "n_clicks"), State(ID.SELECTED, "data"), changes_state=False,
                  prevent_initial_call=True)
def customer_card(n_clicks, account_id):
    """The account's card (QR code of its customer page, holder masked, room); the browser saves it as PNG."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    aid = _account_id(account_id)
    if aid is None:
        return None, notice(t("accounts.pick_account", lang))
    services = current_app.config["WATTLINE_SERVICES"]
    try:
        card = desk.customer_card(billing(), services.qr_key, public_base_url(), aid, operator_name(),
                                  source=source_address())
    except BillingError as exc:
        return None, error_alert(exc, lang)
    drawn = card_svg(card, lang, t("app.title", lang))
    src = "data:image/svg+xml;base64," + base64.b64encode(drawn.svg.encode("utf-8")).decode("ascii")
    return ({"svg": drawn.svg, "width": drawn.width, "height": drawn.height, "filename": f"customer-card-{aid}.png",
             "token": card["token"]},
            html.Img(src=src, alt=t("accounts.card", lang), id=ID.CARD_IMG, className="img-fluid border rounded",
                     style={"maxWidth": "360px"}, **{"data-token": card["token"]}))


# The browser draws the card's SVG on a canvas at twice its size (sharp when printed) and saves it as a PNG (the
# server has no imaging library); the card is as tall as its text (card_svg).
clientside_callback(
    """function (card) {
        if (!card || !card.svg) { return window.dash_clientside.no_update; }
        return new Promise(function (resolve) {
            var img = new Image();
            img.onload = function () {
                var canvas = document.createElement("canvas");
                canvas.width = 2 * card.width; canvas.height = 2 * card.height;
                var g = canvas.getContext("2d");
                g.fillStyle = "#ffffff"; g.fillRect(0, 0, canvas.width, canvas.height);
                g.drawImage(img, 0, 0, canvas.width, canvas.height);
                var a = document.createElement("a");
                a.href = canvas.toDataURL("image/png");
                a.download = card.filename;
                document.body.appendChild(a); a.click(); a.remove();
                resolve(card.filename);
            };
            img.onerror = function () { resolve(null); };
            img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(card.svg);
        });
    }""",
    Output(ID.CARD_SAVED, "data"), Input(ID.CARD_SVG, "data"), prevent_initial_call=True,
)

# One callback per Print button: the two are never on screen together, and Dash refuses (console error) a
# callback fired while one of its inputs is missing.
_PRINT = "function (n) { if (n) { window.print(); } return n || 0; }"
clientside_callback(_PRINT, Output(ID.PRINTED, "data"), Input(ID.OPEN_PRINT, "n_clicks"), prevent_initial_call=True)
clientside_callback(_PRINT, Output(ID.PRINTED, "data", allow_duplicate=True), Input(ID.RECEIPT_PRINT, "n_clicks"),
                    prevent_initial_call=True)


# ---------------------------------------------------------------------------------------------
# openings and closings
def _day(value) -> dt.date | None:
    return inputs.day(value)


@guarded_callback("accounts.events", FIND, Output(ID.EV_GRID, "rowData"), Output(ID.EV_COUNT, "children"),
                  Input(ID.EV_SEARCH, "n_clicks"), State(ID.EV_KIND, "value"), State(ID.EV_FROM, "value"),
                  State(ID.EV_TO, "value"), State(ID.EV_BUILDING, "value"), State(ID.EV_OPERATOR, "value"),
                  State(ID.EV_TEXT, "value"), changes_state=False, prevent_initial_call=True)
def openings_and_closings(n_clicks, event, first, last, building, operator, text):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    event = event if event in ("opened", "closed") else "opened"
    try:
        first_day, last_day = _day(first), _day(last)
    except inputs.BadValue as exc:
        return no_update, t("records.bad_date", lang, value=str(exc))
    rows = desk.account_events(billing(), event, first_day=first_day, last_day=last_day,
                               building=building if isinstance(building, str) else None,
                               operator=operator if isinstance(operator, str) else None,
                               text=text if isinstance(text, str) else None)
    return event_rows(rows, event, lang), t("records.count", lang, n=len(rows))
