"""Excel exports: a workbook whose first sheet has a bold header row (sheet names fit Excel's 31 characters)."""
from __future__ import annotations


def header_workbook(title: str, headers: list[str]):
    """(workbook, sheet) with `headers` as a bold first row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    return wb, ws
