"""Topology import from CSV or XLSX: every row validated first; any error lists row and column and writes nothing."""
from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from storage.audit import record
from storage.topology import KnownTopology, insert_topology, known_topology

REQUIRED = ("building", "gateway", "host", "framing", "bus", "port", "unit", "profile", "meter_address")
OPTIONAL = ("floor", "room", "area", "baud", "timeout_s", "retries")

# Site spreadsheets are often in Chinese: accept the usual headers.
HEADER_ALIASES = {
    "楼栋": "building", "楼宇": "building", "楼层": "floor", "房间": "room", "房间号": "room",
    "台区": "area", "网关": "gateway", "通讯管理机": "gateway", "ip": "host", "地址": "host",
    "规约": "framing", "帧格式": "framing", "总线": "bus", "端口": "port", "站号": "unit",
    "通讯地址": "unit", "表型": "profile", "档案": "profile", "表号": "meter_address", "波特率": "baud",
}

_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class ImportIssue:
    row: int      # as the spreadsheet numbers it: header is row 1
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class TopologyImportError(ValueError):
    def __init__(self, issues: list[ImportIssue], source: str):
        self.issues = issues
        shown = "\n".join(f"  {i}" for i in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(f"{source}: {len(issues)} problem(s), nothing was imported:\n{shown}{more}")


def read_table(path: str | Path) -> list[dict]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX file as header -> text dicts."""
    p = Path(path)
    if not p.exists():
        raise TopologyImportError([ImportIssue(0, "-", f"file {p} does not exist")], str(p))
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    elif suffix in (".xlsx", ".xlsm"):
        import openpyxl
        try:
            wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
        except Exception as exc:  # not a workbook
            raise TopologyImportError([ImportIssue(0, "-", f"cannot read workbook: {exc}")], str(p)) from None
        ws = wb.worksheets[0]
        rows = [["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                 for v in r] for r in ws.iter_rows(values_only=True)]
        wb.close()
    else:
        raise TopologyImportError([ImportIssue(0, "-", "only .csv and .xlsx files can be imported")], str(p))
    rows = [r for r in rows if any(str(c).strip() for c in r)]
    if not rows:
        raise TopologyImportError([ImportIssue(1, "-", "the file is empty")], str(p))
    header = [HEADER_ALIASES.get(h.strip().lower(), HEADER_ALIASES.get(h.strip(), h.strip().lower())) for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise TopologyImportError([ImportIssue(1, c, "required column is missing") for c in missing], str(p))
    return [{h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header)} for r in rows[1:]]


def validate_rows(raw_rows: list[dict], profile_names: set[str], known: KnownTopology) -> tuple[list[dict], list[ImportIssue]]:
    issues: list[ImportIssue] = []
    clean: list[dict] = []
    seen_address: dict[str, int] = {}
    seen_unit: dict[tuple[str, int, int], int] = {}
    gw_def: dict[str, tuple[str, str, int]] = {}
    gw_settings: dict[str, tuple[tuple, int]] = {}
    bus_port: dict[tuple[str, int], tuple[int, int]] = {}
    endpoint: dict[tuple[str, int], tuple[str, int, int]] = {}

    for n, raw in enumerate(raw_rows, start=2):
        bad = lambda col, msg: issues.append(ImportIssue(n, col, msg))  # noqa: E731
        r: dict = {}
        for col in REQUIRED:
            if not raw.get(col, ""):
                bad(col, "is empty")
        addr = raw.get("meter_address", "")
        if addr and not re.fullmatch(r"\d{12}", addr):
            bad("meter_address", f"{addr!r} is not a 12-digit meter number")
        r["meter_address"] = addr
        for col, lo, hi in (("bus", 1, 64), ("port", 1, 65535), ("unit", 1, 247), ("baud", 300, 115200)):
            text = raw.get(col, "")
            if not text:
                r[col] = None
                continue
            try:
                val = int(text)
            except ValueError:
                bad(col, f"{text!r} is not a whole number")
                r[col] = None
                continue
            if not lo <= val <= hi:
                bad(col, f"{val} is outside {lo}..{hi}")
            r[col] = val
        for col, lo, hi, kind in (("timeout_s", 0.05, 30.0, float), ("retries", 0, 5, int)):
            text = raw.get(col, "")
            r[col] = None
            if text:
                try:
                    r[col] = kind(text)
                except ValueError:
                    bad(col, f"{text!r} is not a {'number' if kind is float else 'whole number'}")
                    continue
                if not lo <= r[col] <= hi:
                    bad(col, f"{text} is outside {lo}..{hi}")
        floor = raw.get("floor", "")
        r["floor"] = None
        if floor:
            try:
                r["floor"] = int(floor)
            except ValueError:
                bad("floor", f"{floor!r} is not a whole number")
        framing = raw.get("framing", "").lower()
        if framing and framing not in ("socket", "rtu"):
            bad("framing", f"{framing!r} must be socket (Modbus TCP) or rtu (RTU over TCP)")
        r["framing"] = framing
        host = raw.get("host", "")
        if host and not _valid_host(host):
            bad("host", f"{host!r} is not an IP address or host name")
        r["host"] = host
        profile = raw.get("profile", "")
        if profile and profile not in profile_names:
            bad("profile", f"unknown profile {profile!r} (known: {', '.join(sorted(profile_names))})")
        r["profile"] = profile
        for col in ("building", "room", "area", "gateway"):
            r[col] = raw.get(col, "") or None
        if any(i.row == n for i in issues):
            continue

        gw, bus_no, unit, port = r["gateway"], r["bus"], r["unit"], r["port"]
        if addr in seen_address:
            bad("meter_address", f"{addr} appears again (first on row {seen_address[addr]})")
        seen_address.setdefault(addr, n)
        if (gw, bus_no, unit) in seen_unit:
            bad("unit", f"unit {unit} on {gw} bus {bus_no} appears again (first on row {seen_unit[(gw, bus_no, unit)]})")
        seen_unit.setdefault((gw, bus_no, unit), n)
        settings = (r["timeout_s"], r["retries"])
        if settings != (None, None):
            if gw in gw_settings and gw_settings[gw][0] != settings:
                bad("timeout_s", f"gateway {gw} was given other timeout/retries on row {gw_settings[gw][1]}")
            gw_settings.setdefault(gw, (settings, n))
        if gw in gw_def and gw_def[gw][:2] != (host, framing):
            bad("host", f"gateway {gw} was given {gw_def[gw][0]} / {gw_def[gw][1]} on row {gw_def[gw][2]}")
        gw_def.setdefault(gw, (host, framing, n))
        if (gw, bus_no) in bus_port and bus_port[(gw, bus_no)][0] != port:
            bad("port", f"{gw} bus {bus_no} was given port {bus_port[(gw, bus_no)][0]} on row {bus_port[(gw, bus_no)][1]}")
        bus_port.setdefault((gw, bus_no), (port, n))
        if (host, port) in endpoint and endpoint[(host, port)][:2] != (gw, bus_no):
            other = endpoint[(host, port)]
            bad("port", f"{host}:{port} is already {other[0]} bus {other[1]} (row {other[2]})")
        endpoint.setdefault((host, port), (gw, bus_no, n))
        # Against what the database holds.
        if gw in known.gateways and known.gateways[gw] != (host, framing):
            bad("host", f"gateway {gw} exists as {known.gateways[gw][0]} / {known.gateways[gw][1]}")
        if (gw, bus_no) in known.buses and known.buses[(gw, bus_no)] != port:
            bad("port", f"{gw} bus {bus_no} exists on port {known.buses[(gw, bus_no)]}")
        if (host, port) in known.endpoints and known.endpoints[(host, port)] != (gw, bus_no):
            bad("port", f"{host}:{port} is already {known.endpoints[(host, port)][0]} bus {known.endpoints[(host, port)][1]}")
        if addr in known.meters and known.meters[addr] != (gw, bus_no, unit):
            g, b, u = known.meters[addr]
            bad("meter_address", f"meter {addr} exists on {g} bus {b} unit {u}")
        holder = known.units.get((gw, bus_no, unit))
        if holder and holder != addr:
            bad("unit", f"unit {unit} on {gw} bus {bus_no} belongs to meter {holder}")
        clean.append(r)
    return clean, issues


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.match(host))


def import_topology(engine: sa.Engine, raw_rows: list[dict], profile_names: set[str], now: dt.datetime,
                    source: str = "import", operator: str = "cli", origin: str = "cli") -> dict[str, int]:
    """Validate all rows against each other and the database; write all of them or nothing."""
    with engine.begin() as conn:
        clean, issues = validate_rows(raw_rows, profile_names, known_topology(conn))
        if issues:
            raise TopologyImportError(issues, source)
        created = insert_topology(conn, clean, now)
        record(conn, operator=operator, action="topology.import", target=source, ts=now,
               after={"rows": len(clean), **created}, source=origin)
        return created


def import_file(engine: sa.Engine, path: str | Path, profile_names: set[str], now: dt.datetime,
                operator: str = "cli") -> dict[str, int]:
    return import_topology(engine, read_table(path), profile_names, now, source=str(path), operator=operator)
