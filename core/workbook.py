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
DATE = "yyyy-mm-dd"
MONEY = "0.00"
KWH = "0.00"
INTEGER = "0"
PERCENT = "0.0%"
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


def csv_text(text: str) -> str:
    """Text as a CSV cell carries it safely: one a spreadsheet would read as a formula (or, from CSV, a DDE call)
    gets the quote prefix a person would type, so it opens as the same text; a workbook's unstorable characters
    are replaced as in a workbook."""
    text, _replaced, _cut = storable_text(text)
    return "'" + text if text.startswith(FORMULA_START) else text


class ExportSheet:
    """One worksheet of an ExportWorkbook; rows are streamed (write-only mode keeps memory flat)."""

    def __init__(self, book: ExportWorkbook, ws, formats: Mapping[int, str]):
        self._book, self._ws, self._formats = book, ws, dict(formats)

    def append(self, values: Iterable, *, bold: bool = False) -> None:
        """One row; column i is formatted with formats[i] when given (dates, money); bold: a totals row."""
        cells = [self._book.cell(self._ws, v, self._formats.get(i)) for i, v in enumerate(values)]
        if bold:
            cells = [None if c is None else self._book.bold(self._ws, c) for c in cells]
        self._ws.append(cells)


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
                  formats: Mapping[int, str] | None = None, freeze: str | None = "A2",
                  preamble: Sequence[Sequence] = ()) -> ExportSheet:
        """A sheet named `title` (cut to Excel's 31 characters) with `headers` as a bold row, column widths in
        characters, per-column number formats and the panes frozen at `freeze` (below the header). `preamble`:
        rows above the header (a report's title, in bold, and the filters it was run with), written by the
        same text rules; the frozen panes then start below the header all the same."""
        ws = self._wb.create_sheet(title[:TITLE_MAX])
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        if headers is not None and freeze == "A2" and preamble:
            freeze = f"A{len(preamble) + 2}"
        if headers is not None and freeze:
            ws.freeze_panes = freeze
        for n, row in enumerate(preamble):
            cells = [self.cell(ws, v) for v in row]
            ws.append([self.bold(ws, c) if n == 0 and c is not None else c for c in cells])
        if headers is not None:
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

    def bold(self, ws, value):
        """`value` (a plain value or a cell of this class) in bold."""
        c = self._styled(ws, value)
        c.font = self._bold
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


# ---------------------------------------------------------------------------------------------
# One large sheet, streamed. openpyxl spends ~0.6 ms of CPU per 15-cell row (a cell object, its style, an XML
# element each; lxml or not), XlsxWriter ~0.17 ms: a 100,000-row report took 64 s and 17 s of CPU on the site's
# two cores (bench/export.py), over its 10 s target. StreamingWorkbook writes the same cells as SpreadsheetML
# text straight into the zip, by the same text rules as ExportWorkbook (storable_text, strings always typed as
# strings, the quote prefix on formula-looking text), with a fixed style table for the number formats.
_XML_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_INFINITIES = (math.inf, -math.inf)
_UNSTORABLE_SEARCH = UNSTORABLE.search
_STREAM_FORMATS = (MONEY, DATETIME, DATE, INTEGER, PERCENT)   # custom numFmt ids 164.. (INTEGER: built-in 1)


def _column_letters(n: int) -> list[str]:
    return [get_column_letter(i) for i in range(1, n + 1)]


class StreamingWorkbook:
    """One sheet: `preamble` rows (the first in bold), a bold header, frozen below it, widths, per-column number
    formats (the constants of this module), rows appended one at a time (bold: a totals row)."""

    def __init__(self, title: str, headers: Sequence[str], *, widths: Sequence[float] = (),
                 formats: Mapping[int, str] | None = None, preamble: Sequence[Sequence] = ()):
        import tempfile
        import zipfile
        self.replaced_cells = 0
        self.truncated_cells = 0
        self._title = storable_text(title[:TITLE_MAX])[0]
        self._letters = _column_letters(max(len(headers), *(len(p) for p in preamble), 1))
        self._formats = {i: _STREAM_FORMATS.index(f) for i, f in (formats or {}).items() if f in _STREAM_FORMATS}
        self._file = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self._zip = zipfile.ZipFile(self._file, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w")
        self._buffer: list[str] = []
        self._styles = {(fmt, bold): self._style(fmt, bold) for fmt in (None, *range(len(_STREAM_FORMATS)))
                        for bold in (False, True)}
        self._row = 0
        frozen = len(preamble) + 1
        cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>' for i, w in enumerate(widths, 1))
        self._put('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                  '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                  f'<sheetViews><sheetView workbookViewId="0"><pane ySplit="{frozen}" topLeftCell="A{frozen + 1}" '
                  f'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
                  f'<sheetFormatPr defaultRowHeight="15"/>{f"<cols>{cols}</cols>" if cols else ""}<sheetData>')
        for n, row in enumerate(preamble):
            self._append(row, bold=n == 0, formatted=False)
        self._append(headers, bold=True, formatted=False)

    def _put(self, text: str) -> None:
        self._buffer.append(text)
        if len(self._buffer) >= 500:
            self._flush()

    def _flush(self) -> None:
        self._sheet.write("".join(self._buffer).encode("utf-8"))
        self._buffer.clear()

    def append(self, values: Iterable, *, bold: bool = False) -> None:
        self._append(values, bold=bold, formatted=True)

    def append_rows(self, rows: Iterable[Sequence]) -> None:
        """Many plain (not bold) rows, written exactly as append() writes them with less work per cell: each
        column's cell start and style prepared once, numbers and plain text inline, anything else through _cell."""
        letters, cell, put, formats = self._letters, self._cell, self._put, self._formats
        heads = [f'<c r="{letter}' for letter in letters]
        number_tails = [f'"{self._styles[(formats.get(i), False)]}><v>' for i in range(len(letters))]
        text_tail = '" t="inlineStr"><is><t xml:space="preserve">'
        for values in rows:
            self._row += 1
            r = str(self._row)
            out = [f'<row r="{r}">']
            for i, value in enumerate(values):
                if value is None:
                    continue
                kind = type(value)
                if kind is float or kind is int:
                    if value != value or value in _INFINITIES:
                        continue
                    out.append(f"{heads[i]}{r}{number_tails[i]}{value}</v></c>")
                elif kind is Decimal:
                    if value.is_finite():
                        out.append(f"{heads[i]}{r}{number_tails[i]}{value}</v></c>")
                elif kind is str and len(value) <= MAX_TEXT and not value.startswith(FORMULA_START) \
                        and not _UNSTORABLE_SEARCH(value):
                    out.append(f"{heads[i]}{r}{text_tail}{value.translate(_XML_ESCAPE)}</t></is></c>")
                else:
                    body = cell(value, formats.get(i), False)
                    if body is not None:
                        out.append(f'<c r="{letters[i]}{r}"{body}</c>')
            out.append("</row>")
            put("".join(out))

    def _append(self, values: Iterable, *, bold: bool, formatted: bool) -> None:
        self._row += 1
        r = self._row
        out = [f'<row r="{r}">']
        for i, value in enumerate(values):
            if value is None:
                continue
            kind = type(value)
            if kind is float or kind is int or kind is Decimal:     # the common case, kept short
                if kind is not int and not _finite(value):
                    continue
                style = self._styles[(self._formats.get(i) if formatted else None, bold)]
                out.append(f'<c r="{self._letters[i]}{r}"{style}><v>{value}</v></c>')
                continue
            cell = self._cell(value, self._formats.get(i) if formatted else None, bold)
            if cell:
                out.append(f'<c r="{self._letters[i]}{r}"{cell}</c>')
        out.append("</row>")
        self._put("".join(out))

    def _cell(self, value, fmt: int | None, bold: bool) -> str | None:
        """A cell's attributes and content (after its opening `<c r=".."`), or None for an empty cell.
        Styles: 0 plain, 1 bold, 2 text with the quote prefix, 3 bold quoted; 4 + 2k (+1 bold): format k."""
        if isinstance(value, bool):
            return f' t="b"{self._styles[(None, bold)]}><v>{int(value)}</v>'
        if isinstance(value, (int, Decimal, float)) or _is_number(value):
            if not _finite(value):
                return None
            return f'{self._styles[(fmt, bold)]}><v>{value}</v>'
        if isinstance(value, (dt.datetime, dt.date)):
            if value != value:
                return None
            moment = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
            serial = (moment.replace(tzinfo=None) - _EXCEL_EPOCH) / dt.timedelta(days=1)
            return f'{self._styles[(fmt, bold)]}><v>{serial!r}</v>'
        text, replaced, cut = storable_text(value if isinstance(value, str) else str(value))
        self.replaced_cells += replaced
        self.truncated_cells += cut
        quoted = text.startswith(FORMULA_START)
        style = (3 if bold else 2) if quoted else (1 if bold else 0)
        return (f' t="inlineStr"{f" s={chr(34)}{style}{chr(34)}" if style else ""}>'
                f'<is><t xml:space="preserve">{text.translate(_XML_ESCAPE)}</t></is>')

    @staticmethod
    def _style(fmt: int | None, bold: bool) -> str:
        style = (4 + 2 * fmt + bold) if fmt is not None else int(bold)
        return f' s="{style}"' if style else ""

    def to_bytes(self) -> bytes:
        self._put("</sheetData></worksheet>")
        self._flush()
        self._sheet.close()
        title = self._title.translate(_XML_ESCAPE)
        main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
        rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
        pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
        ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        custom = [(164 + k, f) for k, f in enumerate(_STREAM_FORMATS) if f != INTEGER]
        ids = [164 + k if f != INTEGER else 1 for k, f in enumerate(_STREAM_FORMATS)]
        xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
               '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>',
               '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/>',
               '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" quotePrefix="1"/>']
        for num in ids:
            for font in (0, 1):
                xfs.append(f'<xf numFmtId="{num}" fontId="{font}" fillId="0" borderId="0" xfId="0" '
                           f'applyNumberFormat="1"{" applyFont=" + chr(34) + "1" + chr(34) if font else ""}/>')
        parts = {
            "[Content_Types].xml": (
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
                f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
                f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/></Types>'),
            "_rels/.rels": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{pkg}">'
                f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
            "xl/workbook.xml": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{main}" '
                f'xmlns:r="{rel}"><sheets><sheet name="{title}" sheetId="1" r:id="rId1"/></sheets></workbook>'),
            "xl/_rels/workbook.xml.rels": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{pkg}">'
                f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
                f'<Relationship Id="rId2" Type="{rel}/styles" Target="styles.xml"/></Relationships>'),
            "xl/styles.xml": (
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{main}">'
                f'<numFmts count="{len(custom)}">'
                + "".join(f'<numFmt numFmtId="{i}" formatCode="{f.translate(_XML_ESCAPE)}"/>' for i, f in custom)
                + '</numFmts><fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
                '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
                '<fills count="2"><fill><patternFill patternType="none"/></fill>'
                '<fill><patternFill patternType="gray125"/></fill></fills>'
                '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
                '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
                f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
                '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                '</styleSheet>'),
        }
        for name, text in parts.items():
            self._zip.writestr(name, text.encode("utf-8"))
        self._zip.close()
        self._file.seek(0)
        data = self._file.read()
        self._file.close()
        return data
