"""The one Excel writer for every export: text is written as text (never a formula), numbers as numbers,
and characters a workbook cannot hold are replaced and counted so the caller can tell the operator.

openpyxl turns any string that starts with "=" into a live formula and one that spells an error code
("#N/A") into an error cell, and refuses control characters with IllegalCharacterError. Exported text
comes from people (a login name typed at the sign-in form, a refund reason, an imported room name), so
every string cell here is typed as a string explicitly (`t="inlineStr"`, no `<f>` element). Text that a
spreadsheet would read as the start of a formula when typed (= + - @, a tab or carriage return) also
gets Excel's quote prefix, the invisible leading apostrophe, so editing the cell keeps it text.

Usage:
    book = ExportWorkbook()
    sheet = book.add_sheet("Meters", ["Meter", "Balance"], widths=(15, 12), formats={1: MONEY})
    sheet.append(["202611210001", Decimal("-1.50")])
    data = book.to_bytes()          # book.replaced_cells, book.truncated_cells: tell the operator
"""
from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

DATETIME = "yyyy-mm-dd hh:mm:ss"
MONEY = "0.00"
REPLACEMENT = "\ufffd"          # shown where a character could not be stored
MAX_TEXT = 32767                # Excel's limit of characters in one cell
TITLE_MAX = 31                  # Excel's limit of characters in a sheet name

# What XML 1.0 (and so a .xlsx file) cannot carry: C0 controls but tab, line feed and carriage return,
# the non-characters U+FFFE / U+FFFF, and lone surrogates (which cannot even be encoded as UTF-8).
UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# A cell typed with one of these first would be read as a formula (or, from CSV, a DDE call).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Text openpyxl would type as a formula ("=") or an error ("#N/A"): written through a cell of type string.
RETYPED_START = (*FORMULA_START, "#")


def storable_text(text: str) -> tuple[str, bool, bool]:
    """`text` as a cell can hold it: (text, whether characters were replaced, whether it was cut)."""
    cleaned, replaced = UNSTORABLE.subn(REPLACEMENT, text)
    cut = len(cleaned) > MAX_TEXT
    return (cleaned[:MAX_TEXT] if cut else cleaned), replaced > 0, cut


class ExportSheet:
    """One worksheet of an ExportWorkbook; rows are streamed (write-only mode keeps memory flat)."""

    def __init__(self, book: ExportWorkbook, ws, formats: Mapping[int, str]):
        self._book, self._ws, self._formats = book, ws, dict(formats)

    def append(self, values: Iterable) -> None:
        """One row; column i is formatted with formats[i] when given (dates, money)."""
        self._ws.append([self._book.cell(self._ws, v, self._formats.get(i)) for i, v in enumerate(values)])


class ExportWorkbook:
    """A workbook for download. Strings are text, numbers (int, Decimal, float) are numbers, dates are
    dates (naive: the caller chooses the zone), None is an empty cell, anything else is written as its
    str(). NaN and infinities, which a workbook cannot hold, become empty cells."""

    def __init__(self):
        self._wb = Workbook(write_only=True)
        self._bold = Font(bold=True)
        self.replaced_cells = 0     # cells where characters a workbook cannot hold were replaced
        self.truncated_cells = 0    # cells cut to Excel's 32,767 characters

    def add_sheet(self, title: str, headers: Sequence[str] | None = None, *, widths: Sequence[float] = (),
                  formats: Mapping[int, str] | None = None, freeze: str | None = "A2") -> ExportSheet:
        """A sheet named `title` (cut to Excel's 31 characters) with `headers` as a bold first row,
        column widths in characters, per-column number formats and the panes frozen at `freeze`."""
        ws = self._wb.create_sheet(title[:TITLE_MAX])
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        if headers is not None:
            if freeze:
                ws.freeze_panes = freeze
            row = []
            for h in headers:
                c = self._styled(ws, self.cell(ws, h))
                c.font = self._bold
                row.append(c)
            ws.append(row)
        return ExportSheet(self, ws, formats or {})

    def cell(self, ws, value, number_format: str | None = None):
        """`value` as the rules of this class write it: a plain value openpyxl types right by itself, or a
        write-only cell (a number format, or text openpyxl would read as a formula or an error code)."""
        if value is None:
            return None
        if isinstance(value, bool):
            pass
        elif isinstance(value, (int, Decimal, float)) or _is_number(value):
            if not _finite(value):
                return None
        elif isinstance(value, (dt.datetime, dt.date, dt.time)):
            if value != value:      # pandas' NaT is a datetime that equals nothing
                return None
        else:
            value = self._text(ws, value if isinstance(value, str) else str(value))
        if number_format:
            value = self._styled(ws, value)
            value.number_format = number_format
        return value

    def _text(self, ws, text: str):
        text, replaced, cut = storable_text(text)
        self.replaced_cells += replaced
        self.truncated_cells += cut
        if not text.startswith(RETYPED_START):
            return text     # openpyxl writes it as an inline string
        c = WriteOnlyCell(ws, text)
        # Set after the value: openpyxl types "=..." as a formula and "#N/A" as an error on assignment.
        c.data_type = "s"
        if text.startswith(FORMULA_START):
            c.quotePrefix = True
        return c

    @staticmethod
    def _styled(ws, value):
        return value if isinstance(value, Cell) else WriteOnlyCell(ws, value)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self._wb.save(buf)
        return buf.getvalue()


def _is_number(value) -> bool:
    """numpy's integers and floats (pandas hands them out) without importing numpy here."""
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf"


def _finite(value) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    try:
        return math.isfinite(value)
    except OverflowError:   # an int beyond a float's range is still a (finite) number
        return True
