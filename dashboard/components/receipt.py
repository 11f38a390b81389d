"""Triplicate receipt (customer, finance and archive copies) for sales, refunds, reversals, transfers, closings and
openings: the amount that moved, positive, under a title and a line saying which way it went.

A pure builder: receipt data in, components out. Printing uses the browser (assets/print.css
shows only the receipt sheet, one copy per third of an A4 page, with cut lines).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dash import html

from core.clock import show_local
from core.formatting import format_money
from dashboard.i18n import t
from dashboard.ids import Shared

COPIES = ("customer", "finance", "archive")


@dataclass(frozen=True)
class ReceiptData:
    receipt_no: str
    kind: str                 # sale | refund | reversal | opening | transfer_in | closing_refund
    amount: Decimal           # yuan, exact: the sum that moved, positive (the title says which way)
    amount_in_words: str      # Chinese capital numerals (大写), from billing
    issued_at: datetime       # site local time
    operator: str
    meter_address: str
    room: str
    building: str
    holder: str               # as printed: masked where the law asks
    balance_after: Decimal | None
    purchase_count: int | None
    reverses: str | None = None  # receipt number this entry reverses
    title: str | None = None     # billing.views.RECEIPT_TITLES (what moved which way); None: the kind


def receipt_sheet(r: ReceiptData, lang: str) -> html.Div:
    return html.Div([receipt_copy(r, copy, lang) for copy in COPIES], className="receipt-sheet",
                    id=Shared.RECEIPT_SHEET)


def receipt_copy(r: ReceiptData, copy: str, lang: str) -> html.Section:
    rows = [
        (t("receipt.number", lang), r.receipt_no),
        (t("receipt.time", lang), show_local(r.issued_at)),
        (t("receipt.holder", lang), r.holder),
        (t("receipt.room", lang), f"{r.building} {r.room}".strip()),
        (t("receipt.meter", lang), r.meter_address),
        (t("receipt.amount", lang), format_money(r.amount)),
        (t("receipt.amount_words", lang), r.amount_in_words),
        (t("receipt.balance_after", lang), format_money(r.balance_after)),
        (t("receipt.purchase_count", lang), "—" if not r.purchase_count else str(r.purchase_count)),
        (t("receipt.operator", lang), r.operator),
    ]
    if r.reverses:
        rows.insert(1, (t("receipt.reverses", lang), r.reverses))
    title = r.title or r.kind
    return html.Section([
        html.Div([html.Span(t("app.title", lang), className="receipt-org"),
                  html.Span(t(f"receipt.kind.{title}", lang), className="receipt-kind"),
                  html.Span(t(f"receipt.copy.{copy}", lang), className="receipt-copy-name")],
                 className="receipt-head"),
        html.Div(t(f"receipt.moved.{title}", lang), className="receipt-moved"),
        html.Table(html.Tbody([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows]), className="receipt-table"),
        html.Div([html.Span(t("receipt.signature_cashier", lang)), html.Span(t("receipt.signature_customer", lang))],
                 className="receipt-sign"),
    ], className=f"receipt-copy receipt-copy-{copy}")
