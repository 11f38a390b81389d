"""Tariffs (/tariffs, 电价): every tariff with its versions (each valid from a time, never rewritten); a new
flat, time-of-use or tiered tariff or a new version of one, a price of 0 only after a confirmation, renaming and
retiring a tariff (tariff.edit); assign a tariff to meters and push it to one meter, a building or every meter
on it, with the batch's command states (tariff.push)."""
from __future__ import annotations

import datetime as dt
import re

import dash
from dash import Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from billing import desk, tariffs
from billing.tariffs import MAX_TIERS
from billing.errors import BillingError
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.cashier import error_alert, notice
from dashboard.components.tariffs import (
    NEW, batch_view, parse_segments, parse_tiers, tariff_cards, tariff_options, tariffs_page, target_options,
    zero_prices_text,
)
from dashboard.i18n import request_lang, t
from dashboard.ids import Shared
from dashboard.ids import Tariffs as ID
from dashboard.services import actor, billing, operator_name

EDIT, PUSH = P.TARIFF_EDIT, P.TARIFF_PUSH
PRICE_FIELDS = ("sharp", "peak", "flat", "valley")
PUSH_SCOPES = ("tariff", "building", "list")   # the tariff's own meters, a building's, a typed list
dash.register_page(__name__, path="/tariffs", title="Wattline", name="tariffs")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.TARIFFS, lang)
    if denied is not None:
        return denied
    ctx_ = billing()
    return tariffs_page(desk.tariffs_overview(ctx_), desk.buildings(ctx_), lang, may_edit=allowed(EDIT),
                        may_push=allowed(PUSH))


def _shown(visible: bool) -> dict:
    return {"display": "block"} if visible else {"display": "none"}


@dash.callback(Input(ID.TARGET, "value"), Input(ID.MODE, "value"), State(ID.MODES, "data"),
               output={"new_only": Output(ID.NEW_ONLY, "style"), "flat": Output(ID.FLAT_BOX, "style"),
                       "tou": Output(ID.TOU_BOX, "style"), "tiered": Output(ID.TIER_BOX, "style")})
def show_mode_fields(target, mode, modes):
    """The price fields of the mode: the chosen new mode, or the mode of the tariff a version is added to
    (from the page's own store; nothing is read on the server)."""
    if target not in (None, NEW) and isinstance(modes, dict):
        mode = modes.get(str(target), mode)
    return {"new_only": _shown(target in (None, NEW)), "flat": _shown(mode == "flat"), "tou": _shown(mode == "tou"),
            "tiered": _shown(mode == "tiered")}


def _valid_from(value) -> dt.datetime | None:
    """The form's local date-time as naive UTC (None: from now)."""
    try:
        local = inputs.moment(value)
    except inputs.BadValue as exc:
        raise BillingError("filter_invalid", name="valid from", value=str(exc)) from None
    return desk.local_to_utc(billing(), local) if local else None


def _choices(lang: str) -> dict:
    """What changes on the page when a tariff is created, renamed or retired: the cards and every tariff choice."""
    listed = desk.tariffs_overview(billing())
    return {"cards": tariff_cards(listed, lang), "modes": {str(x["id"]): x["mode"] for x in listed},
            "targets": target_options(listed, lang), "push": tariff_options(listed),
            "manage": tariff_options(listed)}


def _choice_outputs() -> dict:
    return {"cards": Output(ID.LIST, "children", allow_duplicate=True),
            "modes": Output(ID.MODES, "data", allow_duplicate=True),
            "targets": Output(ID.TARGET, "options", allow_duplicate=True),
            "push": Output(ID.PUSH_TARIFF, "options", allow_duplicate=True),
            "manage": Output(ID.MANAGE_TARIFF, "options", allow_duplicate=True)}


def _unchanged() -> dict:
    return {key: no_update for key in _choice_outputs()}


@guarded_callback(
    "tariffs.save", EDIT,
    output={"result": Output(ID.SAVE_RESULT, "children"), "ask": Output(ID.ZERO_CONFIRM, "displayed"),
            "question": Output(ID.ZERO_CONFIRM, "message"), **_choice_outputs()},
    inputs={"n_clicks": Input(ID.SAVE, "n_clicks"), "confirmed": Input(ID.ZERO_CONFIRM, "submit_n_clicks"),
            "target": State(ID.TARGET, "value"), "name": State(ID.NAME, "value"), "mode": State(ID.MODE, "value"),
            "valid_from": State(ID.VALID_FROM, "value"), "flat_price": State(ID.FLAT_PRICE, "value"),
            "prices": {n: State(ID.price(n), "value") for n in PRICE_FIELDS},
            "segments_text": State(ID.SEGMENTS, "value"),
            "bounds": [State(ID.tier_bound(i), "value") for i in range(MAX_TIERS)],
            "tier_prices": [State(ID.tier_price(i), "value") for i in range(MAX_TIERS)]},
    prevent_initial_call=True)
def save_version(n_clicks, confirmed, target, name, mode, valid_from, flat_price, prices, segments_text, bounds,
                 tier_prices):
    """A new tariff (version 1) or the next version of one; billing checks every price and segment, and refuses a
    version that could never be in force. A price of 0 is saved only from the confirmation dialog's OK."""
    if not n_clicks and not confirmed:
        raise PreventUpdate
    zero_confirmed = ctx.triggered_id == ID.ZERO_CONFIRM
    lang = request_lang()
    prices = prices if isinstance(prices, dict) else {}
    bounds, tier_prices = list(bounds or []), list(tier_prices or [])
    ctx_ = billing()

    def refused(exc: BillingError) -> dict:
        return {"result": error_alert(exc, lang), "ask": False, "question": no_update, **_unchanged()}

    existing = target not in (None, "", NEW)
    if existing:  # the tariff's own mode, read here (the browser's copy only chose which fields to show)
        mode = next((x["mode"] for x in tariffs.tariff_list(ctx_) if str(x["id"]) == str(target)), None)
        if mode is None:
            return refused(BillingError("tariff_unknown", tariff=target))
    body: dict = {}
    if mode == "flat":
        body["prices"] = {"flat": str(flat_price or "")}
    elif mode == "tou":
        body["prices"] = {n: str(v or "") for n, v in prices.items()}
        body["segments"] = parse_segments(segments_text if isinstance(segments_text, str) else "", lang)
    elif mode == "tiered":
        body["tiers"] = parse_tiers(bounds, tier_prices)
    try:
        start = _valid_from(valid_from)
        if existing:
            tariffs.add_tariff_version(ctx_, int(target), operator_name(), valid_from=start,
                                       remote=source_address(), zero_confirmed=zero_confirmed, **body)
            message = t("tariffs.version_added", lang)
        else:
            tariffs.create_tariff(ctx_, str(name or ""), str(mode or ""), operator_name(), valid_from=start,
                                  remote=source_address(), zero_confirmed=zero_confirmed, **body)
            message = t("tariffs.created", lang, name=" ".join(str(name).split()))
    except (BillingError, ValueError) as exc:
        if not isinstance(exc, BillingError):
            exc = BillingError("tariff_unknown", tariff=target)
        if exc.code == "price_zero_unconfirmed":   # ask; its OK saves the same form again, confirmed
            question = t("tariffs.zero_confirm", lang, prices=zero_prices_text(exc.params["prices"].split(", "), lang))
            return {"result": None, "ask": True, "question": question, **_unchanged()}
        return refused(exc)
    return {"result": notice(message, "success", id=ID.SAVED), "ask": False, "question": no_update,
            **_choices(lang)}


def _chosen_tariff(value) -> int | None:
    return inputs.record_id(value)


@guarded_callback("tariffs.rename", EDIT, output={"result": Output(ID.MANAGE_RESULT, "children"),
                                                 "name": Output(ID.NEW_NAME, "value"), **_choice_outputs()},
                  inputs={"n_clicks": Input(ID.RENAME, "n_clicks"), "tariff_id": State(ID.MANAGE_TARIFF, "value"),
                          "name": State(ID.NEW_NAME, "value")}, prevent_initial_call=True)
def rename(n_clicks, tariff_id, name):
    """Another name for a tariff (billing checks tariff.edit, the name, and logs before and after)."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    tid = _chosen_tariff(tariff_id)
    if tid is None:
        return {"result": notice(t("tariffs.choose_tariff", lang), id=Shared.DESK_ERROR), "name": no_update,
                **_unchanged()}
    old = next((x["name"] for x in tariffs.tariff_list(billing()) if x["id"] == tid), str(tid))
    try:
        tariffs.rename_tariff(billing(), tid, name if isinstance(name, str) else "", actor())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), "name": no_update, **_unchanged()}
    new = " ".join(name.split())
    return {"result": notice(t("tariffs.renamed", lang, old=old, name=new), "success", id=ID.RENAMED), "name": "",
            **_choices(lang)}


@guarded_callback("tariffs.retire", EDIT, output={"result": Output(ID.MANAGE_RESULT, "children", allow_duplicate=True),
                                                 **_choice_outputs()},
                  inputs={"confirmed": Input(ID.RETIRE_CONFIRM, "submit_n_clicks"),
                          "tariff_id": State(ID.MANAGE_TARIFF, "value")}, prevent_initial_call=True)
def retire(confirmed, tariff_id):
    """Retire a tariff no meter bills by (billing refuses otherwise, saying why)."""
    if not confirmed:
        raise PreventUpdate
    lang = request_lang()
    tid = _chosen_tariff(tariff_id)
    if tid is None:
        return {"result": notice(t("tariffs.choose_tariff", lang), id=Shared.DESK_ERROR), **_unchanged()}
    name = next((x["name"] for x in tariffs.tariff_list(billing()) if x["id"] == tid), str(tid))
    try:
        tariffs.retire_tariff(billing(), tid, actor())
    except BillingError as exc:
        return {"result": error_alert(exc, lang), **_unchanged()}
    return {"result": notice(t("tariffs.retired", lang, name=name), "success", id=ID.RETIRED), **_choices(lang)}


def _push_refused(message) -> dict:
    """A push refused: its message; no batch to follow, nothing else changes."""
    return {"result": message, "batch": no_update, "batch_view": no_update, "stopped": True, "cards": no_update}


@guarded_callback("tariffs.push", PUSH,
                  Input(ID.PUSH, "n_clicks"), State(ID.PUSH_TARIFF, "value"), State(ID.SCOPE, "value"),
                  State(ID.PUSH_BUILDING, "value"), State(ID.PUSH_METERS, "value"), State(ID.ASSIGN, "value"),
                  output={"result": Output(ID.PUSH_RESULT, "children"), "batch": Output(ID.BATCH, "data"),
                          "batch_view": Output(ID.BATCH_VIEW, "children"), "stopped": Output(ID.TICK, "disabled"),
                          "cards": Output(ID.LIST, "children", allow_duplicate=True)},
                  prevent_initial_call=True)
def push(n_clicks, tariff_id, scope, building, meters_text, assign):
    """Queue SET_TARIFF to the chosen meters under one batch id (assigning the tariff first if asked)."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    ctx_ = billing()
    tid = inputs.record_id(tariff_id)
    if tid is None:
        return _push_refused(error_alert(BillingError("tariff_unknown", tariff=str(tariff_id)[:40]), lang))
    if scope not in PUSH_SCOPES:  # never "every meter" by default: an unreadable scope pushes nothing
        return _push_refused(notice(t("inputs.push_scope", lang), id=Shared.DESK_ERROR))
    if scope == "building":
        addresses = desk.building_addresses(ctx_, building) if isinstance(building, str) and building else []
    else:
        addresses = [a for a in re.split(r"[\s,;，；]+", str(meters_text or "")) if a]
    try:
        unreadable = next((a for a in addresses if inputs.key_text(a, 40) is None), None)
        if unreadable is not None:  # no meter number is longer, or holds a control character
            raise BillingError("meter_unknown", meter=inputs.shown(unreadable))
        if scope in ("building", "list") and not addresses:
            raise BillingError("push_meters_missing")
        if scope in ("building", "list") and assign is True:
            batch = tariffs.assign_tariff(ctx_, addresses, tid, operator_name(), push=True, remote=source_address())
        else:
            batch = tariffs.push_tariff(ctx_, tid, operator_name(), remote=source_address(),
                                        meter_addresses=addresses if scope in ("building", "list") else None).batch_id
    except BillingError as exc:
        return _push_refused(error_alert(exc, lang))
    status = desk.batch_status(ctx_, batch)
    message = notice(t("tariffs.pushed", lang, n=len(status["commands"]), batch=batch), "success", id=ID.PUSHED)
    cards = tariff_cards(desk.tariffs_overview(ctx_), lang) if assign is True else no_update
    return {"result": message, "batch": batch, "batch_view": batch_view(status, lang), "stopped": status["done"],
            "cards": cards}


@guarded_callback("tariffs.batch", PUSH, Output(ID.BATCH_VIEW, "children", allow_duplicate=True),
                  Output(ID.TICK, "disabled", allow_duplicate=True), Input(ID.TICK, "n_intervals"),
                  State(ID.BATCH, "data"), changes_state=False, prevent_initial_call=True)
def follow_batch(_n, batch):
    """The batch's command states until every command has an answer."""
    if inputs.key_text(batch) is None:  # the batch id push() stored
        return no_update, True
    status = desk.batch_status(billing(), batch)
    return batch_view(status, request_lang()), status["done"]
