"""QR labels (/qr, 二维码标签): a printable sheet of meter labels per building, each the QR code of the
meter's customer page (inline PNG) with the meter number and room under it. Pure builders."""
from __future__ import annotations

import base64

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.components.cashier import field
from dashboard.i18n import t
from dashboard.ids import QrLabels as ID



def label_sheet(labels: list[dict], building: str, lang: str) -> html.Div:
    """billing.desk.label_sheet as a grid of labels (prints four to a row on A4)."""
    return html.Div([
        html.Div([
            html.Img(src="data:image/png;base64," + base64.b64encode(x["png"]).decode("ascii"),
                     alt=t("qr.label_alt", lang, meter=x["address"]), className="qr-label-code"),
            html.Div(x["address"], className="qr-label-address"),
            html.Div(f"{building} {x['room']}".strip(), className="qr-label-room"),
        ], className="qr-label", **{"data-address": x["address"], "data-token": x["token"]})
        for x in labels
    ], className="qr-label-sheet", id=ID.LABEL_SHEET)


def qr_page(buildings: list[str], lang: str) -> dbc.Container:
    return dbc.Container([
        html.H1(t("qr.heading", lang), className="h4"),
        html.P(t("qr.intro", lang), className="text-muted small"),
        dbc.Row([
            field(t("qr.building", lang), dcc.Dropdown(id=ID.BUILDING, options=buildings,
                                                      value=buildings[0] if buildings else None, clearable=False),
                  ID.BUILDING, xs=12, md=4),
            dbc.Col([dbc.Button(t("qr.show", lang), id=ID.SHOW, color="primary", className="me-2"),
                     dbc.Button([html.I(className="bi bi-printer me-1"), t("qr.print", lang)], id=ID.PRINT,
                                color="secondary", outline=True)],
                    xs=12, md=8, className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.COUNT, role="status", className="small text-muted mb-2"),
        html.Div(id=ID.SHEET),
        dcc.Store(id=ID.PRINTED),
    ], fluid=True, id=ID.PAGE)
