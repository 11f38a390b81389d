"""One order on the worker's phone (/work/order?id=N): the order, the customer with a map link, the meter's live
balance and relay, the customer's confirmation (QR code scanned or typed, signature, rating), the operating card,
materials and fees, evidence (uploaded by assets/field.js through /_field/uploads). Every change goes through the
work-order services, which check the order is the worker's own; another worker's order is "no such order" here
and in the operation log."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, MATCH, ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update

from billing.errors import BillingError
from core import permissions as P
from dashboard import access
from dashboard.auth import csrf_token, forbidden_page, guarded_callback
from dashboard.components.field import evidence_list, field_root, order_body
from dashboard.i18n import request_lang, t
from dashboard.ids import FieldOrder as ID
from dashboard.inputs import record_id
from dashboard.services import actor, field, runtime, site_zone
from workorders.errors import WorkOrderError
from workorders.evidence import FieldError

dash.register_page(__name__, path=access.WORK_ORDER.path, title="Wattline", name="work_order")

REFUSALS = (WorkOrderError, FieldError, BillingError)


def _types() -> dict[str, dict]:
    return {r["key"]: r for r in field().orders.order_types(active_only=False)}


def _blocked() -> bool:
    from dashboard.field_routes import device_blocked
    return device_blocked(field)


def _check_device() -> None:
    """A phone the office blocked changes nothing (dashboard.field_routes refuses its uploads and reports)."""
    if _blocked():
        raise FieldError("terminal_blocked", 403)


def _body(order_id, lang: str):
    """The order's body, or a notice when it is not one of the worker's (the service logs the attempt) or when this
    phone is blocked."""
    if _blocked():
        return [dbc.Alert(t("field.error.terminal_blocked", lang), color="danger", id=ID.BLOCKED)]
    try:
        view = field().order(actor(), order_id)
    except REFUSALS as exc:
        return [dbc.Alert(exc.message(lang), color="warning", id=ID.MESSAGE + "-none")]
    view["catalogue"] = field().orders.material_catalogue(view["order"]["type"])
    return order_body(view, _types(), lang, site_zone())


def layout(id=None, **_query):  # noqa: A002 - the query parameter's name
    lang = request_lang()
    denied = forbidden_page(access.WORK_ORDER, lang)
    if denied is not None:
        return denied
    order_id = record_id(id)
    cfg = runtime().cfg.evidence
    return dbc.Container([
        dcc.Link(t("field.back", lang), href=access.WORK.path, className="small"),
        html.Div(id=ID.MESSAGE, role="status", className="mt-1"),
        html.Div(_body(order_id if order_id is not None else id, lang), id=ID.BODY, className="mt-1"),
        dcc.Store(id=ID.ORDER_ID, data=order_id),
        dcc.Store(id=ID.VERSION, data=0),
        field_root(lang, csrf_token(), cfg.defer_bytes, cfg.chunk_bytes),
    ], fluid=True, id=ID.PAGE, className="field-page py-2")


def _said(text: str, color: str = "success"):
    return dbc.Alert(text, color=color, dismissable=True, className="py-1 small")


def _refused(exc: Exception, lang: str):
    return _said(exc.message(lang), "danger")


@guarded_callback("field.act", P.WORKORDER_EXECUTE,
                  Output(ID.MESSAGE, "children"), Output(ID.VERSION, "data"),
                  Input({"type": ID.ACTION, "action": ALL}, "n_clicks"),
                  State(ID.REASON, "value"), State(ID.ORDER_ID, "data"), State(ID.VERSION, "data"),
                  prevent_initial_call=True)
def take_action(clicks, reason, order_id, version):
    """Accept, decline, hold, release, rework: the core's transition, its rules and its refusals."""
    lang = request_lang()
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(clicks if isinstance(clicks, list) else []):
        return no_update, no_update
    action = trigger.get("action")
    try:
        _check_device()
        after = field().act(actor(), order_id, action, reason=reason)
    except REFUSALS as exc:
        return _refused(exc, lang), no_update
    return _said(t("field.done_action", lang, action=t(f"workorder.action.{action}", lang),
                   state=t(f"workorder.state.{after['state']}", lang))), (version or 0) + 1


@guarded_callback("field.render", P.WORKORDER_EXECUTE,
                  Output(ID.BODY, "children"), Input(ID.VERSION, "data"), State(ID.ORDER_ID, "data"),
                  prevent_initial_call=True, changes_state=False)
def render(_version, order_id):
    return _body(order_id, request_lang())


# the confirm button: assets/field.js puts the drawn signature and the position into the request
dash.clientside_callback(ClientsideFunction("wattlineField", "confirmRequest"),
                         Output(ID.CONFIRM_REQUEST, "data"), Input(ID.CONFIRM, "n_clicks"),
                         prevent_initial_call=True)


@guarded_callback("field.confirm", P.WORKORDER_EXECUTE,
                  Output(ID.MESSAGE, "children", allow_duplicate=True),
                  Output(ID.VERSION, "data", allow_duplicate=True),
                  Input(ID.CONFIRM_REQUEST, "data"),
                  State(ID.QR_INPUT, "value"), State(ID.RATING, "value"), State(ID.STAGE, "data"),
                  State(ID.ORDER_ID, "data"), State(ID.VERSION, "data"), prevent_initial_call=True)
def confirm(request, token, rating, stage, order_id, version):
    """The customer's QR code (verified on the server), signature and rating: arrival or completion."""
    lang = request_lang()
    request = request if isinstance(request, dict) else {}
    signature = request.get("signature") if isinstance(request.get("signature"), str) else None
    try:
        _check_device()
        field().confirm(actor(), order_id, stage if isinstance(stage, str) else "", token, signature=signature,
                        rating=rating, lat=request.get("lat"), lon=request.get("lon"))
    except REFUSALS as exc:
        return _refused(exc, lang), no_update
    return _said(t(f"field.confirmed_{stage}_now", lang)), (version or 0) + 1


@guarded_callback("field.step", P.WORKORDER_EXECUTE,
                  Output({"type": ID.STEP_MESSAGE, "step": MATCH}, "children"),
                  Input({"type": ID.STEP_SAVE, "step": MATCH}, "n_clicks"),
                  Input({"type": ID.STEP_DONE, "step": MATCH}, "value"),
                  State({"type": ID.STEP_VALUE, "step": MATCH}, "value"), State(ID.ORDER_ID, "data"),
                  prevent_initial_call=True)
def save_step(_n, done, value, order_id):
    step_id = ctx.triggered_id.get("step") if isinstance(ctx.triggered_id, dict) else None
    return _saved(lambda: field().orders.record_step(actor(), record_id(order_id) or 0, record_id(step_id) or 0,
                                                     done=done is True,
                                                     value=value if isinstance(value, str) else None))


def _saved(change) -> html.Span:
    """A line's own answer: saved, or the service's refusal in the operator's language."""
    lang = request_lang()
    try:
        _check_device()
        change()
    except REFUSALS as exc:
        return html.Span(exc.message(lang), className="text-danger")
    return html.Span(t("field.saved", lang), className="text-success")


@guarded_callback("field.material", P.WORKORDER_EXECUTE,
                  Output({"type": ID.MATERIAL_MESSAGE, "material": MATCH}, "children"),
                  Input({"type": ID.MATERIAL_SAVE, "material": MATCH}, "n_clicks"),
                  State({"type": ID.MATERIAL_QTY, "material": MATCH}, "value"),
                  State({"type": ID.MATERIAL_PRICE, "material": MATCH}, "value"), State(ID.ORDER_ID, "data"),
                  prevent_initial_call=True)
def save_material(_n, quantity, price, order_id):
    """A material's or paid service's quantity and unit price (Decimal; "50,5", full-width digits, formulas and
    huge values are refused with the core's message)."""
    material_id = ctx.triggered_id.get("material") if isinstance(ctx.triggered_id, dict) else None
    return _saved(lambda: field().orders.set_material(
        actor(), record_id(order_id) or 0, record_id(material_id) or 0,
        quantity=quantity if isinstance(quantity, str) else None, unit_price=price if isinstance(price, str) else None))


@guarded_callback("field.material_add", P.WORKORDER_EXECUTE,
                  Output(ID.MESSAGE, "children", allow_duplicate=True),
                  Output(ID.VERSION, "data", allow_duplicate=True),
                  Input(ID.NEW_ADD, "n_clicks"), State(ID.NEW_PICK, "value"), State(ID.NEW_NAME, "value"),
                  State(ID.NEW_QTY, "value"), State(ID.NEW_PRICE, "value"), State(ID.ORDER_ID, "data"),
                  State(ID.VERSION, "data"), prevent_initial_call=True)
def add_material(n, pick, name, quantity, price, order_id, version):
    """A new line from the type's catalogue or typed (the core refuses a quantity of 0, "2,5", formulas and huge
    values with its message); the body is drawn again with the new totals."""
    lang = request_lang()
    if not n:
        return no_update, no_update
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    try:
        _check_device()
        line = field().orders.add_material_line(
            actor(), record_id(order_id) or 0, card_item_id=text(pick) or None, name=text(name),
            quantity=text(quantity), unit_price=text(price))
    except REFUSALS as exc:
        return _refused(exc, lang), no_update
    return _said(t("field.new_line_added", lang, name=line[f"text_{lang}"] or line["text_en"])), (version or 0) + 1


@guarded_callback("field.material_remove", P.WORKORDER_EXECUTE,
                  Output(ID.MESSAGE, "children", allow_duplicate=True),
                  Output(ID.VERSION, "data", allow_duplicate=True),
                  Input({"type": ID.MATERIAL_REMOVE, "material": ALL}, "n_clicks"), State(ID.ORDER_ID, "data"),
                  State(ID.VERSION, "data"), prevent_initial_call=True)
def remove_material(clicks, order_id, version):
    """Remove a line the worker added (the card's own lines stay)."""
    lang = request_lang()
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(clicks if isinstance(clicks, list) else []):
        return no_update, no_update
    try:
        _check_device()
        field().orders.remove_material_line(actor(), record_id(order_id) or 0, record_id(trigger.get("material")) or 0)
    except REFUSALS as exc:
        return _refused(exc, lang), no_update
    return _said(t("field.line_removed", lang)), (version or 0) + 1


@guarded_callback("field.fee", P.WORKORDER_EXECUTE,
                  Output(ID.MESSAGE, "children", allow_duplicate=True),
                  Output(ID.VERSION, "data", allow_duplicate=True),
                  Input(ID.FEE_COLLECT, "n_clicks"), State(ID.FEE_AMOUNT, "value"), State(ID.FEE_METHOD, "value"),
                  State(ID.ORDER_ID, "data"), State(ID.VERSION, "data"), prevent_initial_call=True)
def collect_fee(_n, amount, method, order_id, version):
    lang = request_lang()
    try:
        _check_device()
        field().orders.collect_fee(actor(), record_id(order_id) or 0, amount if isinstance(amount, str) else "",
                                   method=method if isinstance(method, str) else "")
    except REFUSALS as exc:
        return _refused(exc, lang), no_update
    return _said(t("field.fee_collected", lang)), (version or 0) + 1


@guarded_callback("field.evidence", P.WORKORDER_EXECUTE,
                  Output(ID.EVIDENCE_LIST, "children"), Input(ID.UPLOADED, "data"), State(ID.ORDER_ID, "data"),
                  prevent_initial_call=True, changes_state=False)
def refresh_evidence(_n, order_id):
    """The order's files again after assets/field.js finished an upload."""
    lang = request_lang()
    try:
        view = field().order(actor(), order_id)
    except REFUSALS as exc:
        return [html.P(exc.message(lang), className="text-danger small")]
    return evidence_list(view["evidence"], lang, site_zone())
