"""Tariffs (/tariffs, 电价): every tariff with its versions (each valid from a time, never rewritten); a new
flat, time-of-use or tiered tariff or a new version of one (tariff.edit); assign a tariff to meters and push
it to one meter, a building or every meter on it, with the batch's command states (tariff.push)."""
from __future__ import annotations

import datetime as dt
import re

import dash
from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from billing import desk, tariffs
from billing.errors import BillingError
from dashboard import access, inputs
from dashboard.auth import allowed, forbidden_page, guarded_callback, source_address
from dashboard.components.cashier import error_alert, notice
from dashboard.components.tariffs import (
    NEW, TAR_BATCH, TAR_BATCH_VIEW, TAR_FLAT_BOX, TAR_FLAT_PRICE, TAR_LIST, TAR_MODE, TAR_MODES, TAR_NAME,
    TAR_NEW_ONLY, TAR_PRICE, TAR_PUSH, TAR_PUSH_BUILDING, TAR_PUSH_METERS, TAR_PUSH_RESULT, TAR_PUSH_TARIFF,
    TAR_ASSIGN, TAR_SAVE, TAR_SAVE_RESULT, TAR_SCOPE, TAR_SEGMENTS, TAR_TARGET, TAR_TICK, TAR_TIER_BOUND,
    TAR_TIER_BOX, TAR_TIER_PRICE, TAR_TOU_BOX, TAR_VALID_FROM, batch_view, parse_segments, parse_tiers,
    tariff_cards, tariffs_page,
)
from dashboard.i18n import request_lang, t
from dashboard.services import billing, operator_name

EDIT, PUSH = "tariff.edit", "tariff.push"
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


@dash.callback(Output(TAR_NEW_ONLY, "style"), Output(TAR_FLAT_BOX, "style"), Output(TAR_TOU_BOX, "style"),
               Output(TAR_TIER_BOX, "style"), Input(TAR_TARGET, "value"), Input(TAR_MODE, "value"),
               State(TAR_MODES, "data"))
def show_mode_fields(target, mode, modes):
    """The price fields of the mode: the chosen new mode, or the mode of the tariff a version is added to
    (from the page's own store; nothing is read on the server)."""
    if target not in (None, NEW) and isinstance(modes, dict):
        mode = modes.get(str(target), mode)
    return _shown(target in (None, NEW)), _shown(mode == "flat"), _shown(mode == "tou"), _shown(mode == "tiered")


def _valid_from(value) -> dt.datetime | None:
    """The form's local date-time as naive UTC (None: from now)."""
    try:
        local = inputs.moment(value)
    except inputs.BadValue as exc:
        raise BillingError("filter_invalid", name="valid from", value=str(exc)) from None
    return desk.local_to_utc(billing(), local) if local else None


@guarded_callback("tariffs.save", EDIT, Output(TAR_SAVE_RESULT, "children"), Output(TAR_LIST, "children"),
                  Input(TAR_SAVE, "n_clicks"), State(TAR_TARGET, "value"), State(TAR_NAME, "value"),
                  State(TAR_MODE, "value"), State(TAR_VALID_FROM, "value"),
                  State(TAR_FLAT_PRICE, "value"), *[State(TAR_PRICE[n], "value") for n in PRICE_FIELDS],
                  State(TAR_SEGMENTS, "value"), *[State(i, "value") for i in TAR_TIER_BOUND],
                  *[State(i, "value") for i in TAR_TIER_PRICE], prevent_initial_call=True)
def save_version(n_clicks, target, name, mode, valid_from, flat_price, *rest):
    """A new tariff (version 1) or the next version of one; billing checks every price and segment."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    prices = dict(zip(PRICE_FIELDS, rest[:4]))
    segments_text = rest[4]
    bounds, tier_prices = list(rest[5:9]), list(rest[9:13])
    ctx_ = billing()
    existing = target not in (None, "", NEW)
    if existing:  # the tariff's own mode, read here (the browser's copy only chose which fields to show)
        mode = next((x["mode"] for x in tariffs.tariff_list(ctx_) if str(x["id"]) == str(target)), None)
        if mode is None:
            return error_alert(BillingError("tariff_unknown", tariff=target), lang), no_update
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
                                       remote=source_address(), **body)
            message = t("tariffs.version_added", lang)
        else:
            tariffs.create_tariff(ctx_, str(name or ""), str(mode or ""), operator_name(), valid_from=start,
                                  remote=source_address(), **body)
            message = t("tariffs.created", lang, name=" ".join(str(name).split()))
    except (BillingError, ValueError) as exc:
        if not isinstance(exc, BillingError):
            exc = BillingError("tariff_unknown", tariff=target)
        return error_alert(exc, lang), no_update
    return notice(message, "success", id="tar-saved"), tariff_cards(desk.tariffs_overview(ctx_), lang)


@guarded_callback("tariffs.push", PUSH, Output(TAR_PUSH_RESULT, "children"), Output(TAR_BATCH, "data"),
                  Output(TAR_BATCH_VIEW, "children"), Output(TAR_TICK, "disabled"),
                  Output(TAR_LIST, "children", allow_duplicate=True),
                  Input(TAR_PUSH, "n_clicks"), State(TAR_PUSH_TARIFF, "value"), State(TAR_SCOPE, "value"),
                  State(TAR_PUSH_BUILDING, "value"), State(TAR_PUSH_METERS, "value"), State(TAR_ASSIGN, "value"),
                  prevent_initial_call=True)
def push(n_clicks, tariff_id, scope, building, meters_text, assign):
    """Queue SET_TARIFF to the chosen meters under one batch id (assigning the tariff first if asked)."""
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    ctx_ = billing()
    tid = inputs.record_id(tariff_id)
    if tid is None:
        refused = error_alert(BillingError("tariff_unknown", tariff=str(tariff_id)[:40]), lang)
        return refused, no_update, no_update, True, no_update
    if scope not in PUSH_SCOPES:  # never "every meter" by default: an unreadable scope pushes nothing
        return notice(t("inputs.push_scope", lang), id="desk-error"), no_update, no_update, True, no_update
    if scope == "building":
        addresses = desk.building_addresses(ctx_, building) if isinstance(building, str) and building else []
    else:
        addresses = [a for a in re.split(r"[\s,;，；]+", str(meters_text or "")) if a]
    try:
        if scope in ("building", "list") and not addresses:
            raise BillingError("meters_missing")
        if scope in ("building", "list") and assign is True:
            batch = tariffs.assign_tariff(ctx_, addresses, tid, operator_name(), push=True, remote=source_address())
        else:
            batch = tariffs.push_tariff(ctx_, tid, operator_name(), remote=source_address(),
                                        meter_addresses=addresses if scope in ("building", "list") else None).batch_id
    except BillingError as exc:
        return error_alert(exc, lang), no_update, no_update, True, no_update
    status = desk.batch_status(ctx_, batch)
    message = notice(t("tariffs.pushed", lang, n=len(status["commands"]), batch=batch), "success", id="tar-pushed")
    cards = tariff_cards(desk.tariffs_overview(ctx_), lang) if assign is True else no_update
    return message, batch, batch_view(status, lang), status["done"], cards


@guarded_callback("tariffs.batch", PUSH, Output(TAR_BATCH_VIEW, "children", allow_duplicate=True),
                  Output(TAR_TICK, "disabled", allow_duplicate=True), Input(TAR_TICK, "n_intervals"),
                  State(TAR_BATCH, "data"), changes_state=False, prevent_initial_call=True)
def follow_batch(_n, batch):
    """The batch's command states until every command has an answer."""
    if not isinstance(batch, str) or not batch:
        return no_update, True
    status = desk.batch_status(billing(), batch)
    return batch_view(status, request_lang()), status["done"]
