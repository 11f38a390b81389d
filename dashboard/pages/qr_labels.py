"""QR labels (/qr, 二维码标签): the printable label sheet of a building's meters (account.open). Each code
is a signed token of billing.qr leading to the customer page /c/<token>; handing the sheet out is logged."""
from __future__ import annotations

import dash
from dash import Input, Output, State, clientside_callback
from dash.exceptions import PreventUpdate
from flask import current_app

from billing import desk
from billing.errors import BillingError
from core import permissions as P
from dashboard import access, inputs
from dashboard.auth import forbidden_page, guarded_callback, signed_in, source_address
from dashboard.components.cashier import error_alert, notice
from dashboard.components.qr_labels import label_sheet, qr_page
from dashboard.i18n import request_lang, t
from dashboard.ids import QrLabels as ID
from dashboard.selfservice import public_base_url

PERMISSION = P.ACCOUNT_OPEN
dash.register_page(__name__, path="/qr", title="Wattline", name="qr-labels")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.QR_LABELS, lang)
    if denied is not None:
        return denied
    return qr_page(desk.buildings(current_app.config["WATTLINE_SERVICES"].billing), lang)


@guarded_callback("qr.labels", PERMISSION, Output(ID.SHEET, "children"), Output(ID.COUNT, "children"),
                  Input(ID.SHOW, "n_clicks"), State(ID.BUILDING, "value"), changes_state=False,
                  prevent_initial_call=True)
def labels(n_clicks, building):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    if inputs.key_text(building) is None:  # a building's name, as the dropdown offers it
        return None, notice(t("qr.choose_building", lang))
    services = current_app.config["WATTLINE_SERVICES"]
    op = signed_in()
    try:
        base = public_base_url()
    except BillingError as exc:
        return None, error_alert(exc, lang)
    sheet = desk.label_sheet(services.billing, services.qr_key, base, building,
                             op.username if op else "-", source=source_address())
    return label_sheet(sheet, building, lang), t("qr.count", lang, n=len(sheet), building=building)


clientside_callback(
    "function (n) { if (n) { window.print(); } return n || 0; }",
    Output(ID.PRINTED, "data"), Input(ID.PRINT, "n_clicks"), prevent_initial_call=True,
)
