"""What an export tells the operator about its workbook (core.workbook writes every export)."""
from __future__ import annotations

from dash import html

from core.workbook import ExportWorkbook
from dashboard.i18n import t


def export_notice(book: ExportWorkbook, lang: str) -> str | None:
    """A sentence in the operator's language when cells had to be changed to fit Excel, else None."""
    parts = []
    if book.replaced_cells:
        parts.append(t("export.cells_replaced", lang, n=book.replaced_cells))
    if book.truncated_cells:
        parts.append(t("export.cells_truncated", lang, n=book.truncated_cells))
    return " ".join(parts) or None


def exported_message(said: str, book: ExportWorkbook, lang: str, **props) -> html.Span:
    """`said` ("Exported 20 rows."), followed by the notice when there is one (then shown as a warning)."""
    notice = export_notice(book, lang)
    return html.Span(f"{said} {notice}" if notice else said, className="text-warning" if notice else "text-success",
                     **props)
