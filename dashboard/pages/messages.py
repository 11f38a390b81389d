"""Messages (/messages, the seed's mail module): between the office and workers, with attachments (evidence files
picked from those the writer may see: a worker's own orders', any for the office; a file of an order goes only to
someone who may see that order), read state, and the deadline reminders of the worker's orders."""
from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, html, no_update, dcc

from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from core import permissions as P
from dashboard.auth import csrf_token
from dashboard.components.field import attachable_options, field_root, message_form, messages_list
from dashboard.ids import FieldOrder as FO
from dashboard.i18n import request_lang, t
from dashboard.ids import Messages as ID
from dashboard.services import actor, field, runtime, site_zone
from workorders.errors import WorkOrderError
from workorders.evidence import FieldError

dash.register_page(__name__, path=access.MESSAGES.path, title="Wattline", name="messages")

REFUSALS = (WorkOrderError, FieldError)


def _list(lang: str):
    who = actor()
    return messages_list(field().messages(who), who.username, lang, site_zone())


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.MESSAGES, lang)
    if denied is not None:
        return denied
    service = field()
    who = actor()
    return dbc.Container([
        html.H1(t("messages.heading", lang), className="h4"),
        message_form(service.partners(), who.username, lang,
                     attachable_options(service.attachable(who), lang, site_zone())),
        html.Div(_list(lang), id=ID.LIST),
        dcc.Store(id=ID.VERSION, data=0),
        field_root(lang, csrf_token(), runtime().cfg.evidence.defer_bytes, runtime().cfg.evidence.chunk_bytes,
                   report_seen=who.may(P.WORKORDER_EXECUTE)),
    ], fluid=True, id=ID.PAGE, className="field-page py-2")


def _attachments(picked) -> list[str] | None:
    """The evidence ids picked (a list of digit strings; the service checks each may be seen and sent), also typed
    as "12, 15" by a client; None when something else is there."""
    if picked is None or picked == "" or picked == []:
        return []
    if isinstance(picked, str):
        picked = [p for p in re.split(r"[,\s]+", picked.strip()) if p]
    if not isinstance(picked, list) or len(picked) > 20 or \
            not all(isinstance(p, str) and re.fullmatch(r"[0-9]{1,9}", p) for p in picked):
        return None
    return picked


@guarded_callback("messages.send", access.MESSAGES,
                  Output(ID.RESULT, "children"), Output(ID.VERSION, "data"),
                  Input(ID.SEND, "n_clicks"), State(ID.TO, "value"), State(ID.ORDER, "value"),
                  State(ID.SUBJECT, "value"), State(ID.BODY, "value"), State(ID.ATTACH, "value"),
                  State(ID.VERSION, "data"), prevent_initial_call=True)
def send(_n, to, order, subject, body, attach, version):
    lang = request_lang()
    files = _attachments(attach)
    if files is None:
        return html.Span(t("messages.attach_invalid", lang), className="text-danger"), no_update
    try:
        field().send_message(actor(), to, subject, body, order_id=order or None, attachments=files)
    except REFUSALS as exc:
        return html.Span(exc.message(lang), className="text-danger"), no_update
    return html.Span(t("messages.sent", lang), className="text-success"), (version or 0) + 1


@guarded_callback("messages.read", access.MESSAGES,
                  Output(ID.LIST, "children"),
                  Input({"type": ID.READ, "message": ALL}, "n_clicks"), Input(ID.VERSION, "data"),
                  prevent_initial_call=True)
def mark_read(clicks, _version):
    lang = request_lang()
    trigger = ctx.triggered_id
    if isinstance(trigger, dict) and any(clicks if isinstance(clicks, list) else []):
        try:
            field().mark_read(actor(), trigger.get("message"))
        except REFUSALS:
            pass  # not the reader's message: the list as it stands
    return _list(lang)


@guarded_callback("messages.uploaded", access.MESSAGES,
                  Output(ID.ATTACH, "options"), Output(ID.ATTACH, "value"),
                  Input(FO.UPLOADED, "data"), State(ID.ATTACH, "value"),
                  prevent_initial_call=True, changes_state=False)
def uploaded(_n, picked):
    """After assets/field.js uploaded a file with the message: the list of files again, the new one picked."""
    who = actor()
    files = field().attachable(who)
    picked = [p for p in picked if isinstance(p, str)] if isinstance(picked, list) else []
    newest = next((f for f in files if f["order_id"] is None and f["uploaded_by"] == who.username), None)
    if newest is not None and str(newest["id"]) not in picked:
        picked = [*picked, str(newest["id"])][-20:]
    return attachable_options(files, request_lang(), site_zone()), picked
