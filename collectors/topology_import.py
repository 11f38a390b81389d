"""Topology import from CSV or XLSX: every row validated first, streaming; any error lists row and column and
writes nothing.

Files: CSV in UTF-8 (with or without a byte-order mark) or GB18030 (what Excel in Chinese saves as "CSV"),
or XLSX (read with python-calamine; a sheet larger than XLSX_SHEET_BYTES is refused). A CSV is *declared* UTF-8 by its byte-order mark or by
`encoding="utf-8"` (the CLI's --encoding), GB18030 by `encoding="gb18030"`; a declared file must decode
as declared, and a row that does not is reported. Without either, the encoding is detected: UTF-8 if the
whole file decodes as UTF-8, else GB18030. The result names the encoding used.

Rows are read and checked one at a time, so memory grows with what must be remembered across rows
(meter numbers, units, buses, gateways: a few hundred bytes a meter), not with the file. Issues carry a
code and parameters (plain JSON) besides their English text, so a page can translate them.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import ipaddress
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from storage.audit import record
from storage.topology import KnownTopology, insert_topology, known_topology

REQUIRED = ("building", "gateway", "host", "framing", "bus", "port", "unit", "profile", "meter_address")
OPTIONAL = ("floor", "room", "area", "baud", "timeout_s", "retries",
            # the transformer area's (grid/): a row's meter as the area's master meter (with its CT ratio) or
            # terminal, and the area's nameplate, given on any of its rows (the same on each that gives them)
            "area_role", "ct_ratio", "rating_kva", "nominal_voltage", "connection_group")
AREA_ROLES = ("master", "terminal")
AREA_FIELDS = ("rating_kva", "nominal_voltage", "connection_group")
COLUMNS = REQUIRED + OPTIONAL
NUMBER_COLUMNS = ("meter_address", "bus", "port", "unit", "baud", "floor", "timeout_s", "retries", "ct_ratio",
                  "rating_kva", "nominal_voltage")

# Longest text per column, in characters. Names: the database's VARCHAR(100). Host: a DNS name's 253.
# Numbers: room for any sane spelling of the allowed ranges (a longer one is not a number we take).
# framing: "socket" or "rtu". meter_address: 12 digits, with room to report a mistyped one as such.
MAX_LENGTH = {"building": 100, "room": 100, "area": 100, "gateway": 100, "profile": 100, "host": 253,
              "framing": 10, "meter_address": 40, **{c: 20 for c in NUMBER_COLUMNS if c != "meter_address"},
              "area_role": 10, "connection_group": 20,
              "group": 100}   # group: a building group's name (the site setup pages; not an import column)
# The whole numbers a row may hold, and the gateway's timeout in seconds (the site setup pages check the same).
RANGES = {"bus": (1, 64), "port": (1, 65535), "unit": (1, 247), "baud": (300, 115200), "floor": (-20, 300),
          "retries": (0, 5)}
TIMEOUT_RANGE = (0.05, 30.0)
# The area's numbers: a CT ratio (a 4000/5 A transformer is 800), a rating in kVA, a nominal phase voltage in V.
AREA_NUMBER_RANGES = {"ct_ratio": (1.0, 100000.0), "rating_kva": (1.0, 100000.0), "nominal_voltage": (50.0, 1000.0)}

# Rows a file may hold (one meter a row). The largest site we model has 10,080 meters; a million rows
# is a hundred times that and still validates in well under a minute in under 500 MB (docs/BENCHMARKS.md),
# while a file past it is almost surely not a topology. Raise it with row_limit (the CLI's --max-rows).
ROW_LIMIT = 1_000_000
KEEP_ISSUES = 1000        # issues kept for the report; the rest are counted
SHOWN_ISSUES = 50         # issues printed in the error's text
MAX_LINE_BYTES = 1 << 20  # a CSV line longer than this is not a topology row (and would cost memory)
CSV_FIELD_LIMIT = csv.field_size_limit()
# An XLSX sheet is read whole into memory (about 2.4 bytes of memory per byte of its XML): a sheet whose
# XML is larger than this is refused with the advice to save it as CSV, which is read one row at a time.
# 300,000 meters as Excel saves them are about 120 MB (docs/BENCHMARKS.md).
XLSX_SHEET_BYTES = 160 << 20
ENCODINGS = ("utf-8", "gb18030")

# Site spreadsheets are often in Chinese: accept the usual headers.
HEADER_ALIASES = {
    "楼栋": "building", "楼宇": "building", "楼层": "floor", "房间": "room", "房间号": "room",
    "台区": "area", "网关": "gateway", "通讯管理机": "gateway", "ip": "host", "地址": "host",
    "规约": "framing", "帧格式": "framing", "总线": "bus", "端口": "port", "站号": "unit",
    "通讯地址": "unit", "表型": "profile", "档案": "profile", "表号": "meter_address", "波特率": "baud",
    "台区角色": "area_role", "ct变比": "ct_ratio", "变比": "ct_ratio", "容量": "rating_kva", "额定容量": "rating_kva",
    "额定电压": "nominal_voltage", "联结组别": "connection_group",
}

# English texts of the issue codes; parameters are plain JSON values.
ISSUE_TEXT = {
    "file_missing": "file {path} does not exist",
    "file_type": "only .csv and .xlsx files can be imported",
    "workbook_unreadable": "cannot read workbook: {error}",
    "sheet_too_large": "the sheet is {megabytes} MB of XML, more than the {limit} MB read at once: save it as CSV UTF-8",
    "utf16": "the file is UTF-16 (Excel's \"Unicode text\"): save it as \"CSV UTF-8\" or \"CSV\"",
    "bom_conflict": "the file starts with a UTF-8 byte-order mark but the encoding was given as {encoding}",
    "empty_file": "the file is empty",
    "column_missing": "required column is missing",
    "column_twice": "the column is named twice (header cells {first} and {second})",
    "too_many_rows": "the file has more than {limit} rows: split it, or raise the limit (--max-rows)",
    "undecodable_bom": "bytes that are not UTF-8 (the file's byte-order mark declares UTF-8)",
    "undecodable": "bytes that are not {encoding} (the encoding given)",
    "undecodable_detected": "bytes that are neither UTF-8 nor GB18030",
    "line_too_long": "the line is longer than {limit} bytes; reading stopped here",
    "field_too_large": "a field is longer than {limit} characters (an unclosed quote?); reading stopped here",
    "csv_unreadable": "cannot be read as CSV ({error}); reading stopped here",
    "control_character": "holds the control character {char} at position {position}",
    "too_long": "is {length} characters long; at most {limit}",
    "non_ascii_digits": "{value!r} has digits other than 0-9 (full-width or another script's): type them as 0-9",
    "empty": "is empty",
    "not_meter_number": "{value!r} is not a 12-digit meter number",
    "not_whole_number": "{value!r} is not a whole number",
    "not_number": "{value!r} is not a number",
    "out_of_range": "{value} is outside {low}..{high}",
    "bad_framing": "{value!r} must be socket (Modbus TCP) or rtu (RTU over TCP)",
    "bad_host": "{value!r} is not an IP address or host name",
    "unknown_profile": "unknown profile {value!r} (known: {known})",
    "meter_twice": "{address} appears again (first on row {first_row})",
    "unit_twice": "unit {unit} on {gateway} bus {bus} appears again (first on row {first_row})",
    "gateway_settings_differ": "gateway {gateway} was given other timeout/retries on row {first_row}",
    "gateway_differs": "gateway {gateway} was given {host} / {framing} on row {first_row}",
    "bus_port_differs": "{gateway} bus {bus} was given port {port} on row {first_row}",
    "endpoint_taken": "{host}:{port} is already {gateway} bus {bus} (row {first_row})",
    "gateway_exists": "gateway {gateway} exists as {host} / {framing}",
    "bus_exists": "{gateway} bus {bus} exists on port {port}",
    "endpoint_exists": "{host}:{port} is already {gateway} bus {bus}",
    "meter_exists": "meter {address} exists on {gateway} bus {bus} unit {unit}",
    "unit_taken": "unit {unit} on {gateway} bus {bus} belongs to meter {address}",
    # the site setup pages' own (collectors.site_setup)
    "name_taken": "{value!r} is taken already",
    "unknown_record": "{value!r} no longer exists (reload the page)",
    "bus_twice": "bus {bus} is given twice",
    "port_twice": "port {port} is given to two buses",
    "no_buses": "give at least one bus (bus:port)",
    "bus_unreadable": "{value!r} is not bus:port or bus:port:baud",
    "meter_on_account": "meter {address} is on open account {account}: close the account first (its closing "
                        "refund settles the balance), then retire or move the meter",
    "meter_retired": "meter {address} is retired",
    "still_referenced": "this database (DuckDB) cannot change the name, bus or unit of {value!r} while other records "
                        "point to it, so nothing was changed (a limit of DuckDB: docs/OPERATIONS.md, Site setup, says "
                        "what still works; on PostgreSQL it can be changed)",
    "file_too_large": "the file is {megabytes} MB, more than the {limit} MB a page accepts: import it on the "
                      "command line (app.py import)",
    # the transformer area's columns
    "bad_area_role": "{value!r} must be master, terminal or empty (a customer's meter)",
    "role_without_area": "a master meter or terminal needs its area",
    "ct_ratio_not_master": "a CT ratio belongs to the area's master meter (area_role master)",
    "area_role_twice": "area {area} was given another {role} on row {first_row}",
    "area_differs": "area {area} was given another value on row {first_row}",
}

_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_METER_RE = re.compile(r"[0-9]{12}")
_XLSX_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")   # how OOXML writes characters XML cannot carry


@dataclass(frozen=True)
class ImportIssue:
    row: int      # as the spreadsheet numbers it: header is row 1; 0 for the file as a whole
    column: str
    code: str     # a key of ISSUE_TEXT
    params: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        return ISSUE_TEXT[self.code].format(**self.params)

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "code": self.code, "params": self.params}

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class TopologyImportError(ValueError):
    def __init__(self, issues: list[ImportIssue], source: str, total: int | None = None):
        self.issues = issues
        self.total = len(issues) if total is None else total
        shown = "\n".join(f"  {i}" for i in issues[:SHOWN_ISSUES])
        more = f"\n  ... and {self.total - SHOWN_ISSUES} more" if self.total > SHOWN_ISSUES else ""
        super().__init__(f"{source}: {self.total} problem(s), nothing was imported:\n{shown}{more}")


class Issues:
    """The issues of one import: the first KEEP_ISSUES kept, all counted."""

    def __init__(self):
        self.kept: list[ImportIssue] = []
        self.count = 0

    def add(self, row: int, column: str, code: str, **params) -> None:
        self.count += 1
        if len(self.kept) < KEEP_ISSUES:
            self.kept.append(ImportIssue(row, column, code, params))

    def raise_if_any(self, source: str) -> None:
        if self.count:
            raise TopologyImportError(self.kept, source, self.count)


# ---------------------------------------------------------------------------------------------
# Reading

@dataclass
class TableFile:
    """An open CSV or XLSX file: `rows()` yields (row number, {column: text}) for each non-blank data row
    and reports what it cannot read into `issues` (then stops, or goes on where the rest stays readable)."""
    path: Path
    issues: Issues
    format: str = "csv"                  # csv | xlsx
    encoding: str | None = None          # utf-8-sig | utf-8 | gb18030 (CSV); None for XLSX
    declared_by: str | None = None       # "bom" | "option" | None (detected)
    row_limit: int = ROW_LIMIT
    data_rows: int = 0
    _record: int = 1                     # the CSV record being read (csv pulls lines lazily)

    def rows(self) -> Iterator[tuple[int, dict]]:
        records = self._xlsx_records() if self.format == "xlsx" else self._csv_records()
        header: dict[str, int] | None = None
        for n, cells in records:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = self._header(n, cells)
                if header is None:
                    return
                continue
            self.data_rows += 1
            if self.data_rows > self.row_limit:
                self.issues.add(n, "-", "too_many_rows", limit=self.row_limit)
                return
            yield n, {col: (cells[i].strip() if i < len(cells) else "") for col, i in header.items()}
        if header is None and not self.issues.count:
            self.issues.add(1, "-", "empty_file")

    def _header(self, n: int, cells: list[str]) -> dict[str, int] | None:
        """Column name -> index; None (with issues) if columns are missing or named twice."""
        where: dict[str, int] = {}
        before = self.issues.count
        for i, text in enumerate(cells):
            name = _canonical(text)
            if name not in REQUIRED and name not in OPTIONAL:
                continue  # a column we do not read (notes, a contact ...)
            if name in where:
                self.issues.add(n, name, "column_twice", first=_letter(where[name]), second=_letter(i))
                continue
            where[name] = i
        for c in REQUIRED:
            if c not in where:
                self.issues.add(n, c, "column_missing")
        return where if self.issues.count == before else None

    def _csv_records(self) -> Iterator[tuple[int, list[str]]]:
        with self.path.open("rb") as raw:
            if self.encoding == "utf-8-sig":
                raw.read(3)
            reader = csv.reader(self._lines(raw))
            number = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except _StopReading:
                    return
                except csv.Error as exc:
                    if "field larger than field limit" in str(exc):
                        self.issues.add(number + 1, "-", "field_too_large", limit=CSV_FIELD_LIMIT)
                    else:
                        self.issues.add(number + 1, "-", "csv_unreadable", error=str(exc))
                    return
                number += 1
                self._record = number + 1
                yield number, cells

    def _lines(self, raw) -> Iterator[str]:
        """Decoded lines, each checked on its own so a bad byte is reported at its row. A line that does
        not decode is reported and read with replacement characters, so the rows after it are checked."""
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        while True:
            line = raw.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                self.issues.add(self._record, "-", "line_too_long", limit=MAX_LINE_BYTES)
                raise _StopReading
            try:
                yield line.decode(encoding)
            except UnicodeDecodeError:
                if self.declared_by == "bom":
                    self.issues.add(self._record, "-", "undecodable_bom")
                elif self.declared_by:
                    self.issues.add(self._record, "-", "undecodable", encoding=_encoding_name(encoding))
                else:
                    self.issues.add(self._record, "-", "undecodable_detected")
                yield line.decode(encoding, errors="replace")

    def _xlsx_records(self) -> Iterator[tuple[int, list[str]]]:
        # python-calamine (Rust) reads a sheet about ten times faster than openpyxl's read-only mode;
        # it holds the sheet's cells in memory, so a sheet too large for that is refused before loading.
        import zipfile

        from python_calamine import CalamineWorkbook
        try:
            with zipfile.ZipFile(self.path) as z:
                sheets = [i for i in z.infolist() if i.filename.startswith("xl/worksheets/sheet")]
                size = max((i.file_size for i in sheets), default=0)
            if size > XLSX_SHEET_BYTES:
                self.issues.add(0, "-", "sheet_too_large", megabytes=size >> 20, limit=XLSX_SHEET_BYTES >> 20)
                return
            sheet = CalamineWorkbook.from_path(str(self.path)).get_sheet_by_index(0)
            rows = sheet.iter_rows()
        except Exception as exc:  # not a workbook (or a damaged one): say what the reader says
            self.issues.add(0, "-", "workbook_unreadable", error=str(exc) or type(exc).__name__)
            return
        for n, values in enumerate(rows, start=1):
            yield n, [_xlsx_text(v) for v in values]


class _StopReading(Exception):
    """A CSV that cannot be read further (reported already)."""


def _xlsx_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        # Excel writes characters XML cannot carry as _xHHHH_ (and a literal "_x" as _x005F_x).
        return _XLSX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), v) if "_x" in v else v
    return str(v)


def _canonical(text: str) -> str:
    h = text.strip()
    return HEADER_ALIASES.get(h.lower(), HEADER_ALIASES.get(h, h.lower()))


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter
    return get_column_letter(index + 1)


def _encoding_name(encoding: str) -> str:
    return {"utf-8": "UTF-8", "gb18030": "GB18030"}.get(encoding, encoding)


def open_table(path: str | Path, issues: Issues, *, encoding: str | None = None,
               row_limit: int = ROW_LIMIT) -> TableFile:
    """The file at `path`, its format and encoding settled (see the module's docstring). Problems with the
    file as a whole go into `issues`; its rows are then empty."""
    p = Path(path)
    table = TableFile(p, issues, row_limit=row_limit)
    if not p.is_file():
        issues.add(0, "-", "file_missing", path=str(p))
        return table
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        table.format = "xlsx"
        return table
    if suffix != ".csv":
        issues.add(0, "-", "file_type")
        return table
    if encoding is not None and encoding.lower().replace("_", "-") not in ENCODINGS:
        raise ValueError(f"encoding {encoding!r}: use one of {', '.join(ENCODINGS)}")
    wanted = encoding.lower().replace("_", "-") if encoding else None
    with p.open("rb") as f:
        start = f.read(4)
    if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        issues.add(0, "-", "utf16")
        return table
    if start.startswith(codecs.BOM_UTF8):
        if wanted not in (None, "utf-8"):
            issues.add(0, "-", "bom_conflict", encoding=_encoding_name(wanted))
            return table
        table.encoding, table.declared_by = "utf-8-sig", "bom"
    elif wanted:
        table.encoding, table.declared_by = wanted, "option"
    else:
        table.encoding = "utf-8" if _decodes_as_utf8(p) else "gb18030"
    return table


def _decodes_as_utf8(path: Path) -> bool:
    """Does the whole file decode as UTF-8? Read in 1 MiB pieces (memory stays flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Validation

class TopologyValidator:
    """Checks rows one at a time, against each other and what the database holds. `clean` collects the
    checked rows for writing unless keep_clean is False (a check only)."""

    def __init__(self, profile_names: set[str], known: KnownTopology, issues: Issues | None = None,
                 keep_clean: bool = True):
        self.profile_names, self.known = profile_names, known
        self.issues = issues if issues is not None else Issues()
        self.keep_clean = keep_clean
        self.clean: list[dict] = []
        self.rows = 0
        self._known_profiles = ", ".join(sorted(profile_names))
        self._hosts: dict[str, bool] = {}       # host -> valid (a gateway's host repeats on each of its rows)
        self._seen_address: dict[str, int] = {}
        self._seen_unit: dict[tuple[str, int, int], int] = {}
        self._gw_def: dict[str, tuple[str, str, int]] = {}
        self._gw_settings: dict[str, tuple[tuple, int]] = {}
        self._bus_port: dict[tuple[str, int], tuple[int, int]] = {}
        self._endpoint: dict[tuple[str, int], tuple[str, int, int]] = {}
        self._area_role: dict[tuple[str, str], int] = {}                 # (area, role) -> first row
        self._area_field: dict[tuple[str, str], tuple[object, int]] = {}  # (area, column) -> (value, first row)

    def check(self, n: int, raw: dict) -> None:
        self.rows += 1
        before = self.issues.count
        bad = lambda col, code, **params: self.issues.add(n, col, code, **params)  # noqa: E731
        text: dict[str, str] = {}
        for col, limit, number, required in _CELL_PLAN:
            value = raw.get(col)
            value = "" if value is None else value if isinstance(value, str) else str(value)
            # The common case in one line (checked per cell, 15 cells a row); _cell_ok says what is wrong.
            if (value.isprintable() and len(value) <= limit and (not number or value.isascii())) \
                    or _cell_ok(value, col, bad):
                if required and not value:
                    bad(col, "empty")
                text[col] = value
            else:
                text[col] = "-" if required else ""    # refused already
        if self.issues.count > before:
            return  # names and numbers that could not be read are not compared with other rows
        r = self._typed(text, bad)
        if self.issues.count > before:
            return
        self._compare(n, r, bad)
        if self.keep_clean and self.issues.count == before:
            self.clean.append(r)

    def _typed(self, text: dict[str, str], bad) -> dict:
        r: dict = {}
        addr = text["meter_address"]
        if not _METER_RE.fullmatch(addr):
            bad("meter_address", "not_meter_number", value=addr)
        r["meter_address"] = addr
        for col, (lo, hi) in RANGES.items():
            value = text[col]
            r[col] = None
            if not value:
                continue
            if not _INT_RE.fullmatch(value):
                bad(col, "not_whole_number", value=value)
                continue
            r[col] = int(value)
            if not lo <= r[col] <= hi:
                bad(col, "out_of_range", value=r[col], low=lo, high=hi)
        value = text["timeout_s"]
        r["timeout_s"] = None
        if value:
            if not _FLOAT_RE.fullmatch(value):
                bad("timeout_s", "not_number", value=value)
            else:
                r["timeout_s"] = float(value)
                if not TIMEOUT_RANGE[0] <= r["timeout_s"] <= TIMEOUT_RANGE[1]:
                    bad("timeout_s", "out_of_range", value=value, low=TIMEOUT_RANGE[0], high=TIMEOUT_RANGE[1])
        framing = text["framing"].lower()
        if framing not in ("socket", "rtu"):
            bad("framing", "bad_framing", value=framing)
        r["framing"] = sys.intern(framing)
        host = text["host"]
        valid = self._hosts.get(host)
        if valid is None:
            valid = self._hosts[host] = _valid_host(host)
        if not valid:
            bad("host", "bad_host", value=host)
        r["host"] = sys.intern(host)
        profile = text["profile"]
        if profile not in self.profile_names:
            bad("profile", "unknown_profile", value=profile, known=self._known_profiles)
        r["profile"] = sys.intern(profile)
        for col in ("building", "area", "gateway"):   # shared by many rows: one string each
            r[col] = sys.intern(text[col]) if text[col] else None
        r["room"] = text["room"] or None
        self._area_columns(text, r, bad)
        return r

    def _area_columns(self, text: dict[str, str], r: dict, bad) -> None:
        """area_role, ct_ratio and the area's nameplate (all optional: files of before have none)."""
        role = text["area_role"].lower()
        if role and role not in AREA_ROLES:
            bad("area_role", "bad_area_role", value=role)
        if role and not r["area"]:
            bad("area", "role_without_area")
        r["area_role"] = role or None
        for col, (lo, hi) in AREA_NUMBER_RANGES.items():
            value, r[col] = text[col], None
            if not value:
                continue
            if not _FLOAT_RE.fullmatch(value):
                bad(col, "not_number", value=value)
                continue
            r[col] = float(value)
            if not lo <= r[col] <= hi:
                bad(col, "out_of_range", value=value, low=f"{lo:g}", high=f"{hi:g}")
        if r["ct_ratio"] is not None and role != "master":
            bad("ct_ratio", "ct_ratio_not_master")
        r["connection_group"] = text["connection_group"] or None

    def _compare(self, n: int, r: dict, bad) -> None:
        addr, gw, bus_no, unit, port = r["meter_address"], r["gateway"], r["bus"], r["unit"], r["port"]
        host, framing, known = r["host"], r["framing"], self.known
        if addr in self._seen_address:
            bad("meter_address", "meter_twice", address=addr, first_row=self._seen_address[addr])
        self._seen_address.setdefault(addr, n)
        if (gw, bus_no, unit) in self._seen_unit:
            bad("unit", "unit_twice", unit=unit, gateway=gw, bus=bus_no, first_row=self._seen_unit[(gw, bus_no, unit)])
        self._seen_unit.setdefault((gw, bus_no, unit), n)
        settings = (r["timeout_s"], r["retries"])
        if settings != (None, None):
            if gw in self._gw_settings and self._gw_settings[gw][0] != settings:
                bad("timeout_s", "gateway_settings_differ", gateway=gw, first_row=self._gw_settings[gw][1])
            self._gw_settings.setdefault(gw, (settings, n))
        if gw in self._gw_def and self._gw_def[gw][:2] != (host, framing):
            first = self._gw_def[gw]
            bad("host", "gateway_differs", gateway=gw, host=first[0], framing=first[1], first_row=first[2])
        self._gw_def.setdefault(gw, (host, framing, n))
        if (gw, bus_no) in self._bus_port and self._bus_port[(gw, bus_no)][0] != port:
            first = self._bus_port[(gw, bus_no)]
            bad("port", "bus_port_differs", gateway=gw, bus=bus_no, port=first[0], first_row=first[1])
        self._bus_port.setdefault((gw, bus_no), (port, n))
        if (host, port) in self._endpoint and self._endpoint[(host, port)][:2] != (gw, bus_no):
            other = self._endpoint[(host, port)]
            bad("port", "endpoint_taken", host=host, port=port, gateway=other[0], bus=other[1], first_row=other[2])
        self._endpoint.setdefault((host, port), (gw, bus_no, n))
        area = r["area"]
        if area and r["area_role"]:
            first = self._area_role.setdefault((area, r["area_role"]), n)
            if first != n:
                bad("area_role", "area_role_twice", area=area, role=r["area_role"], first_row=first)
        for col in AREA_FIELDS if area else ():
            if r[col] is not None:
                value, first = self._area_field.setdefault((area, col), (r[col], n))
                if value != r[col]:
                    bad(col, "area_differs", area=area, first_row=first)
        # Against what the database holds.
        if gw in known.gateways and known.gateways[gw] != (host, framing):
            bad("host", "gateway_exists", gateway=gw, host=known.gateways[gw][0], framing=known.gateways[gw][1])
        if (gw, bus_no) in known.buses and known.buses[(gw, bus_no)] != port:
            bad("port", "bus_exists", gateway=gw, bus=bus_no, port=known.buses[(gw, bus_no)])
        if (host, port) in known.endpoints and known.endpoints[(host, port)] != (gw, bus_no):
            g, b = known.endpoints[(host, port)]
            bad("port", "endpoint_exists", host=host, port=port, gateway=g, bus=b)
        if addr in known.meters and known.meters[addr] != (gw, bus_no, unit):
            g, b, u = known.meters[addr]
            bad("meter_address", "meter_exists", address=addr, gateway=g, bus=b, unit=u)
        holder = known.units.get((gw, bus_no, unit))
        if holder and holder != addr:
            bad("unit", "unit_taken", unit=unit, gateway=gw, bus=bus_no, address=holder)


_CELL_PLAN = tuple((c, MAX_LENGTH[c], c in NUMBER_COLUMNS, c in REQUIRED) for c in COLUMNS)


def _cell_ok(value: str, col: str, bad) -> bool:
    """Control characters, length and non-ASCII digits: checked before the value is echoed anywhere."""
    if not value.isprintable():   # rare: look closer (a full-width space is not "printable" either)
        for i, ch in enumerate(value):
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):   # controls, invisible formatting, surrogates
                bad(col, "control_character", char=f"U+{ord(ch):04X}", position=i + 1)
                return False
    if len(value) > MAX_LENGTH[col]:
        bad(col, "too_long", length=len(value), limit=MAX_LENGTH[col])
        return False
    if col in NUMBER_COLUMNS and not value.isascii() and any(ch.isdecimal() for ch in value):
        bad(col, "non_ascii_digits", value=value)
        return False
    return True


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.match(host))


# ---------------------------------------------------------------------------------------------
# Importing

def import_topology(engine: sa.Engine, raw_rows: list[dict], profile_names: set[str], now: dt.datetime,
                    source: str = "import", operator: str = "cli", origin: str = "cli") -> dict[str, int]:
    """Validate all rows against each other and the database; write all of them or nothing."""
    with engine.begin() as conn:
        v = TopologyValidator(profile_names, known_topology(conn))
        for n, raw in enumerate(raw_rows, start=2):
            v.check(n, raw)
        v.issues.raise_if_any(source)
        return _write(conn, v, now, source, operator, origin)


def _write(conn: sa.Connection, v: TopologyValidator, now: dt.datetime, source: str, operator: str,
           origin: str) -> dict[str, int]:
    created = insert_topology(conn, v.clean, now)
    record(conn, operator=operator, action="topology.import", target=source, ts=now,
           after={"rows": len(v.clean), **created}, source=origin)
    return created


def import_file(engine: sa.Engine, path: str | Path, profile_names: set[str], now: dt.datetime,
                operator: str = "cli", *, encoding: str | None = None, row_limit: int = ROW_LIMIT,
                check_only: bool = False, origin: str = "cli", source: str | None = None) -> dict:
    """Read, check and (unless check_only) write a topology file: all rows or nothing. The answer: what was
    created, the rows read, the file's format and encoding."""
    issues = Issues()
    table = open_table(path, issues, encoding=encoding, row_limit=row_limit)
    with (engine.connect() if check_only else engine.begin()) as conn:
        v = TopologyValidator(profile_names, known_topology(conn), issues, keep_clean=not check_only)
        if not issues.count:
            for n, raw in table.rows():
                v.check(n, raw)
        issues.raise_if_any(source or str(path))
        created = {} if check_only else _write(conn, v, now, source or str(path), operator, origin)
    return {**created, "rows": v.rows, "format": table.format, "encoding": table.encoding}


def check_file(engine: sa.Engine, path: str | Path, profile_names: set[str], *, encoding: str | None = None,
               row_limit: int = ROW_LIMIT) -> dict:
    """Every check of an import, nothing written: rows read, format, encoding (or TopologyImportError)."""
    return import_file(engine, path, profile_names, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                       encoding=encoding, row_limit=row_limit, check_only=True)
