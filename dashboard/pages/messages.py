"""Messages (/messages, the seed's mail module): between the office and workers, with attachments (evidence files
by id, from the same store), read state, and the deadline reminders of the worker's orders."""
from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, html, no_update, dcc

from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.field import message_form, messages_list
from dashboard.i18n import request_lang, t
from dashboard.ids import Messages as ID
from dashboard.services import actor, field, site_zone
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
        message_form(service.partners(), who.username, lang),
        html.Div(_list(lang), id=ID.LIST),
        dcc.Store(id=ID.VERSION, data=0),
    ], fluid=True, id=ID.PAGE, className="field-page py-2")


def _attachments(text) -> list[str] | None:
    """Evidence ids typed as "12, 15" (ASCII digits, commas or spaces); None when something else is there."""
    if not isinstance(text, str) or not text.strip():
        return []
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not all(re.fullmatch(r"[0-9]{1,9}", p) for p in parts) or len(parts) > 20:
        return None
    return parts


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
    if isinstance(trigger, dict) and any(clicks or []):
        try:
            field().mark_read(actor(), trigger.get("message"))
        except REFUSALS:
            pass  # not the reader's message: the list as it stands
    return _list(lang)
