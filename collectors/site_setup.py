"""Site setup: building groups, buildings, rooms, gateways and meters added, edited, moved and retired one at a
time, checked by the topology import's rules (same issue codes, same ranges), each change audited with before and
after; a topology file previewed and imported; a gateway's connection tested; a site profile file checked.

Who may do this (site.edit) is checked where the change is asked for (the page's guarded callbacks); every
function here takes the operator's name and address for the operation log. Mistakes raise SiteSetupError with
the issues (column, code, parameters: collectors.topology_import.ISSUE_TEXT, the catalogs' [site.issue]).
"""
from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import sqlalchemy as sa

from collectors.profiles import ProfileError, ProfileRegistry, load_profile_file
from collectors.topology_import import (
    _FLOAT_RE, _INT_RE, RANGES, TIMEOUT_RANGE, ImportIssue, Issues, TopologyImportError, TopologyValidator,
    _cell_ok, _valid_host, import_file,
)
from storage import site_setup as store
from storage.audit import record
from storage.topology import known_topology

UPLOAD_LIMIT = 3 << 20   # bytes of a file sent from a page (base64 in a 4 MiB request body); larger: the CLI
METER_STATUSES = ("not_opened", "opened", "removed")
DEFAULT_BAUD = 9600


class SiteSetupError(ValueError):
    """What the operator must fix before anything is written: one or more issues (row 0: a form)."""

    def __init__(self, issues: list[ImportIssue]):
        self.issues = issues
        super().__init__("; ".join(f"{i.column}: {i.message}" for i in issues))


def _refuse(column: str, code: str, **params) -> SiteSetupError:
    return SiteSetupError([ImportIssue(0, column, code, params)])


@dataclass(frozen=True)
class Who:
    operator: str
    source: str | None = None      # the browser's address


class _Form:
    """A form's fields checked one by one with the import's rules; raise_if_any() refuses the lot."""

    def __init__(self):
        self.issues = Issues()

    def bad(self, column: str, code: str, **params) -> None:
        self.issues.add(0, column, code, **params)

    def raise_if_any(self) -> None:
        if self.issues.count:
            raise SiteSetupError(self.issues.kept)

    def text(self, column: str, value, *, required: bool = True) -> str | None:
        """A name or a host as typed, its spaces folded; control characters and lengths refused."""
        value = "" if value is None else value if isinstance(value, str) else str(value)
        if not _cell_ok(value, column, self.bad):
            return None
        value = " ".join(value.split())
        if required and not value:
            self.bad(column, "empty")
        return value or None

    def whole(self, column: str, value, *, required: bool = True) -> int | None:
        """A whole number within the import's range for `column` (a string from a field or a number)."""
        if isinstance(value, bool):
            value = str(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip() if value is not None else ""
        if not _cell_ok(text, column, self.bad):
            return None
        if not text:
            if required:
                self.bad(column, "empty")
            return None
        if not _INT_RE.fullmatch(text):
            self.bad(column, "not_whole_number", value=text)
            return None
        number = int(text)
        lo, hi = RANGES[column]
        if not lo <= number <= hi:
            self.bad(column, "out_of_range", value=number, low=lo, high=hi)
            return None
        return number

    def timeout(self, value) -> float | None:
        text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
        if not _cell_ok(text, "timeout_s", self.bad):
            return None
        if not text:
            return 1.0
        if not _FLOAT_RE.fullmatch(text):
            self.bad("timeout_s", "not_number", value=text)
            return None
        number = float(text)
        if not TIMEOUT_RANGE[0] <= number <= TIMEOUT_RANGE[1]:
            self.bad("timeout_s", "out_of_range", value=text, low=TIMEOUT_RANGE[0], high=TIMEOUT_RANGE[1])
            return None
        return number

    def framing(self, value) -> str | None:
        text = self.text("framing", value)
        if text is None:
            return None
        if text.lower() not in ("socket", "rtu"):
            self.bad("framing", "bad_framing", value=text)
            return None
        return text.lower()

    def host(self, value) -> str | None:
        text = self.text("host", value)
        if text is not None and not _valid_host(text):
            self.bad("host", "bad_host", value=text)
            return None
        return text


def parse_buses(text) -> list[dict]:
    """"1:4001, 2:4002:19200" (bus:port or bus:port:baud, separated by commas, semicolons or lines) as raw
    {bus, port, baud} rows; a piece that is not of that shape keeps its text for the check to report."""
    out = []
    for piece in re.split(r"[\s,;，；]+", str(text or "").strip()):
        if not piece:
            continue
        parts = re.split(r"[:：]", piece)
        if len(parts) not in (2, 3):
            out.append({"unreadable": piece})
            continue
        out.append({"bus": parts[0], "port": parts[1], "baud": parts[2] if len(parts) == 3 else ""})
    return out


class SiteSetup:
    """The site's topology as the setup pages change it, over one engine with a clock (naive UTC)."""

    def __init__(self, engine: sa.Engine, profiles: ProfileRegistry, clock: Callable[[], dt.datetime]):
        self.engine, self.profiles, self.clock = engine, profiles, clock

    # --- reads ---------------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Groups, buildings, rooms, gateways (with buses) and meters, as the pages list them."""
        with self.engine.connect() as conn:
            return {"groups": store.groups(conn), "buildings": store.buildings(conn), "rooms": store.rooms(conn),
                    "gateways": store.gateways(conn), "meters": store.meters(conn)}

    def meter(self, address: str) -> dict | None:
        text = str(address or "").strip()
        if not _plain_number(text):
            return None
        with self.engine.connect() as conn:
            return store.meter_by_address(conn, text)

    # --- groups and buildings ------------------------------------------------------------------------------
    def save_group(self, who: Who, name, group_id: int | None = None) -> int:
        """A new building group, or another name for one."""
        f = _Form()
        name = f.text("group", name)
        f.raise_if_any()
        with self.engine.begin() as conn:
            before = self._existing(conn, store.group_by_id, group_id, "group")
            if store.name_taken(conn, "building_group", name, but=group_id):
                raise _refuse("group", "name_taken", value=name)
            if before is None:
                group_id = store.insert_group(conn, name)
            else:
                self._update(conn, "building_group", group_id, before, "group", name=name)
            self._log(conn, who, "site.group_add" if before is None else "site.group_edit",
                      f"building_group:{name}", before and {"name": before["name"]}, {"name": name})
        return group_id

    def save_building(self, who: Who, name, group_id=None, building_id: int | None = None) -> int:
        """A new building (in a group, or none), or another name or group for one."""
        f = _Form()
        name = f.text("building", name)
        f.raise_if_any()
        with self.engine.begin() as conn:
            before = self._existing(conn, store.building_by_id, building_id, "building")
            group = None
            if group_id not in (None, ""):
                group = self._existing(conn, store.group_by_id, group_id, "group")
            if store.name_taken(conn, "building", name, but=building_id):
                raise _refuse("building", "name_taken", value=name)
            gid = group["id"] if group else None
            if before is None:
                building_id = store.insert_building(conn, name, gid)
            else:
                self._update(conn, "building", building_id, before, "building", name=name, group_id=gid)
            after = {"name": name, "group": group["name"] if group else None}
            self._log(conn, who, "site.building_add" if before is None else "site.building_edit",
                      f"building:{name}", before and {"name": before["name"], "group": self._group_name(
                          conn, before["group_id"])}, after)
        return building_id

    def save_room(self, who: Who, building_id, name, floor=None, room_id: int | None = None) -> int:
        """A new room (户号) in a building, or another name or floor for one."""
        f = _Form()
        name = f.text("room", name)
        floor = f.whole("floor", floor, required=False)
        f.raise_if_any()
        with self.engine.begin() as conn:
            before = self._existing(conn, store.room_by_id, room_id, "room")
            b = before and {"id": before["building_id"], "name": before["building"]}
            if b is None:
                b = self._existing(conn, store.building_by_id, building_id, "building")
                if b is None:
                    raise _refuse("building", "empty")
            if store.name_taken(conn, "room", name, but=room_id, building_id=b["id"]):
                raise _refuse("room", "name_taken", value=name)
            if before is None:
                room_id = store.insert_room(conn, b["id"], floor, name)
            else:
                self._update(conn, "room", room_id, before, "room", name=name, floor=floor)
            self._log(conn, who, "site.room_add" if before is None else "site.room_edit", f"room:{b['name']} {name}",
                      before and {"building": b["name"], "room": before["name"], "floor": before["floor"]},
                      {"building": b["name"], "room": name, "floor": floor})
        return room_id

    # --- gateways ------------------------------------------------------------------------------------------
    def save_gateway(self, who: Who, *, name, host, framing, timeout_s=None, retries=None, buses=(),
                     gateway_id: int | None = None) -> int:
        """A new gateway with its buses, or another host, framing, timeout, retries for one; the buses listed are
        added (a new number) or given their port and baud (a known one); a bus is never removed here."""
        f = _Form()
        name, host, framing = f.text("gateway", name), f.host(host), f.framing(framing)
        timeout_s = f.timeout(timeout_s)
        retries = f.whole("retries", retries, required=False)
        retries = 1 if retries is None else retries
        rows = list(buses) if not isinstance(buses, str) else parse_buses(buses)
        typed, seen = [], set()
        for raw in rows:
            if "unreadable" in raw:
                f.bad("bus", "bus_unreadable", value=str(raw["unreadable"])[:40])
                continue
            bus_no, port = f.whole("bus", raw.get("bus")), f.whole("port", raw.get("port"))
            baud = f.whole("baud", raw.get("baud"), required=False) or DEFAULT_BAUD
            if bus_no in seen:
                f.bad("bus", "bus_twice", bus=bus_no)
            seen.add(bus_no)
            typed.append((bus_no, port, baud))
        f.raise_if_any()
        with self.engine.begin() as conn:
            before = self._existing(conn, store.gateway_by_id, gateway_id, "gateway")
            if before is None and not typed:
                raise _refuse("bus", "no_buses")
            if store.name_taken(conn, "gateway", name, but=gateway_id):
                raise _refuse("gateway", "name_taken", value=name)
            known = known_topology(conn)
            own = before["name"] if before else None
            # every bus it will have (its own keep their numbers: their ports move with a new host)
            kept = {b["bus_no"]: b["port"] for b in before["buses"]} if before else {}
            kept.update({bus_no: port for bus_no, port, _ in typed})
            ports = list(kept.values())
            if len(ports) != len(set(ports)):
                f.bad("port", "port_twice", port=next(p for p in ports if ports.count(p) > 1))
            for port in sorted(set(ports)):
                holder = known.endpoints.get((host, port))
                if holder is not None and holder[0] != own:
                    f.bad("port", "endpoint_exists", host=host, port=port, gateway=holder[0], bus=holder[1])
            f.raise_if_any()
            values = {"name": name, "host": host, "framing": framing, "timeout_s": timeout_s, "retries": retries}
            if before is None:
                gateway_id = store.insert_gateway(conn, **values)
            else:
                self._update(conn, "gateway", gateway_id, before, "gateway", **values)
            have = {b["bus_no"]: b for b in before["buses"]} if before else {}
            for bus_no, port, baud in typed:
                if bus_no in have:
                    self._update(conn, "bus", have[bus_no]["id"], have[bus_no], "port", port=port, baud=baud)
                else:
                    store.insert_bus(conn, gateway_id, bus_no, port, baud)
            after = {**values, "buses": _buses_text(store.gateway_by_id(conn, gateway_id)["buses"])}
            self._log(conn, who, "site.gateway_add" if before is None else "site.gateway_edit", f"gateway:{name}",
                      before and {**{k: before[k] for k in values}, "buses": _buses_text(before["buses"])}, after)
        return gateway_id

    # --- meters --------------------------------------------------------------------------------------------
    def add_meter(self, who: Who, *, address, gateway_id, bus_no, unit, profile, room_id=None) -> int:
        """A new meter on a gateway's bus, in a room (or none); checked as an import row is."""
        with self.engine.begin() as conn:
            gw, room = self._gateway(conn, gateway_id), self._room(conn, room_id)
            v = TopologyValidator(set(self.profiles.names()), known_topology(conn), keep_clean=True)
            row = self._row(gw, room, address=address, bus_no=bus_no, unit=unit, profile=profile)
            checked = self._check(v, row, gw)
            bus_id = self._bus_id(gw, checked["bus"])
            meter_id = store.insert_meter(conn, address=checked["meter_address"], bus_id=bus_id,
                                          unit=checked["unit"], profile=checked["profile"],
                                          room_id=room["id"] if room else None, now=self.clock())
            self._log(conn, who, "site.meter_add", f"meter:{checked['meter_address']}", None,
                      _meter_fields(store.meter_by_address(conn, checked["meter_address"])))
        return meter_id

    def edit_meter(self, who: Who, address, *, gateway_id, bus_no, unit, profile) -> None:
        """Another gateway, bus, unit or profile for a meter (its number stays: its keys and history hang on
        it); checked as an import row is, against every other meter."""
        with self.engine.begin() as conn:
            m = self._meter(conn, address)
            gw = self._gateway(conn, gateway_id)
            known = known_topology(conn)
            known.meters.pop(m["address"], None)
            known.units.pop((m["gateway"], m["bus_no"], m["unit"]), None)
            v = TopologyValidator(set(self.profiles.names()), known, keep_clean=True)
            row = self._row(gw, None, address=m["address"], bus_no=bus_no, unit=unit, profile=profile)
            checked = self._check(v, row, gw)
            self._update(conn, "meter", m["id"], m, "meter_address", bus_id=self._bus_id(gw, checked["bus"]),
                         unit=checked["unit"], profile=checked["profile"])
            self._log(conn, who, "site.meter_edit", f"meter:{m['address']}", _meter_fields(m),
                      _meter_fields(store.meter_by_address(conn, m["address"])))

    def move_meter(self, who: Who, address, room_id) -> None:
        """The meter into another room. Refused while it is on an open account: the account is the room's, and
        billing moves money only by closing it (closing refund) or carrying a balance over (transfer)."""
        with self.engine.begin() as conn:
            m = self._meter(conn, address)
            room = self._room(conn, room_id, required=True)
            self._not_on_account(conn, m)
            self._update(conn, "meter", m["id"], m, "room", room_id=room["id"])
            self._log(conn, who, "site.meter_move", f"meter:{m['address']}",
                      {"building": m["building"], "room": m["room"]},
                      {"building": room["building"], "room": room["name"]})

    def retire_meter(self, who: Who, address) -> None:
        """The meter out of service (status removed: no longer polled, never sold to). Refused while it is on an
        open account (close the account first: its closing refund settles what is left on the meter)."""
        with self.engine.begin() as conn:
            m = self._meter(conn, address)
            self._not_on_account(conn, m)
            self._update(conn, "meter", m["id"], m, "meter_address", status="removed")
            self._log(conn, who, "site.meter_retire", f"meter:{m['address']}", {"status": m["status"]},
                      {"status": "removed"})

    # --- a topology file from the page ---------------------------------------------------------------------
    def import_upload(self, who: Who, filename: str, content: bytes, *, check_only: bool) -> dict:
        """Check (check_only) or import a CSV / XLSX sent from the page, with the command line's rules; all rows or
        nothing. TopologyImportError lists every row's issues."""
        suffix = Path(str(filename or "")).suffix.lower()
        if len(content) > UPLOAD_LIMIT:
            raise TopologyImportError([ImportIssue(0, "-", "file_too_large", {"megabytes": len(content) >> 20,
                                                                              "limit": UPLOAD_LIMIT >> 20})], "upload")
        if suffix not in (".csv", ".xlsx", ".xlsm"):
            raise TopologyImportError([ImportIssue(0, "-", "file_type", {})], "upload")
        shown = "".join(ch if ch.isprintable() else "?" for ch in Path(str(filename)).name)[:80]
        with tempfile.TemporaryDirectory(prefix="wattline-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(content)
            return import_file(self.engine, path, set(self.profiles.names()), self.clock(), who.operator,
                               check_only=check_only, origin=who.source or "web", source=f"upload {shown}")

    # --- helpers -------------------------------------------------------------------------------------------
    def _existing(self, conn, read, record_id, column: str):
        if record_id in (None, ""):
            return None
        try:
            found = read(conn, int(record_id))
        except (TypeError, ValueError):
            found = None
        if found is None:
            raise _refuse(column, "unknown_record", value=str(record_id)[:40])
        return found

    def _group_name(self, conn, group_id) -> str | None:
        g = store.group_by_id(conn, group_id) if group_id is not None else None
        return g["name"] if g else None

    def _gateway(self, conn, gateway_id) -> dict:
        if gateway_id in (None, ""):
            raise _refuse("gateway", "empty")
        return self._existing(conn, store.gateway_by_id, gateway_id, "gateway")

    def _room(self, conn, room_id, required: bool = False) -> dict | None:
        if room_id in (None, ""):
            if required:
                raise _refuse("room", "empty")
            return None
        return self._existing(conn, store.room_by_id, room_id, "room")

    def _row(self, gw: dict, room: dict | None, *, address, bus_no, unit, profile) -> dict:
        bus = next((b for b in gw["buses"] if str(b["bus_no"]) == str(bus_no).strip()), None)
        return {"building": room["building"] if room else "-", "room": room["name"] if room else "",
                "floor": "" if not room or room["floor"] is None else str(room["floor"]),
                "gateway": gw["name"], "host": gw["host"], "framing": gw["framing"],
                "bus": "" if bus_no is None else str(bus_no), "port": str(bus["port"]) if bus else "1",
                "unit": "" if unit is None else str(unit), "profile": "" if profile is None else str(profile),
                "meter_address": "" if address is None else str(address).strip()}

    def _check(self, v: TopologyValidator, row: dict, gw: dict) -> dict:
        v.check(0, row)
        issues = [i for i in v.issues.kept]
        if not issues and not any(b["bus_no"] == v.clean[-1]["bus"] for b in gw["buses"]):
            issues.append(ImportIssue(0, "bus", "unknown_record", {"value": row["bus"]}))
        if issues:
            raise SiteSetupError(issues)
        return v.clean[-1]

    @staticmethod
    def _bus_id(gw: dict, bus_no: int) -> int:
        return next(b["id"] for b in gw["buses"] if b["bus_no"] == bus_no)

    def _meter(self, conn, address) -> dict:
        text = str(address or "").strip()
        m = store.meter_by_address(conn, text) if _plain_number(text) else None
        if m is None:
            raise _refuse("meter_address", "unknown_record", value="".join(c for c in text[:40] if c.isprintable()))
        if m["status"] == "removed":
            raise _refuse("meter_address", "meter_retired", address=m["address"])
        return m

    @staticmethod
    def _update(conn, table: str, row_id: int, before: dict, column: str, **values) -> None:
        """The columns that change (a name written again would be a change to DuckDB, see StillReferenced)."""
        changed = {k: v for k, v in values.items() if before.get(k) != v}
        try:
            store.update(conn, table, row_id, **changed)
        except store.StillReferenced:
            shown = before.get("name") or before.get("address") or str(before.get("bus_no", row_id))
            raise _refuse(column, "still_referenced", value=shown) from None

    @staticmethod
    def _not_on_account(conn, m: dict) -> None:
        account_id = store.open_account_of(conn, m["id"])
        if account_id is not None:
            raise _refuse("meter_address", "meter_on_account", address=m["address"], account=account_id)

    def _log(self, conn, who: Who, action: str, target: str, before, after) -> None:
        record(conn, operator=who.operator[:100], action=action, target=target, ts=self.clock(), before=before,
               after=after, source=who.source)


def _buses_text(buses: Iterable[dict]) -> str:
    return ", ".join(f"{b['bus_no']}:{b['port']}" + (f":{b['baud']}" if b["baud"] != DEFAULT_BAUD else "")
                     for b in buses)


def _plain_number(text: str) -> bool:
    """A meter number worth looking up: printable ASCII, at most 40 characters (a NUL or an escape sequence
    is no meter's number, and PostgreSQL refuses NUL in a query)."""
    return text.isascii() and text.isprintable() and 0 < len(text) <= 40


def _meter_fields(m: dict) -> dict:
    return {"gateway": m["gateway"], "bus": m["bus_no"], "unit": m["unit"], "profile": m["profile"],
            "building": m["building"], "room": m["room"], "status": m["status"]}


# --- a gateway's connection ------------------------------------------------------------------------------------
TESTED_KEYS = ("balance", "energy_total", "voltage_a", "relay_closed", "purchase_count")


def connection_test(profiles: ProfileRegistry, *, host, port, framing, unit, profile, timeout_s=None) -> dict:
    """Read one meter through a gateway (not yet saved, or saved) once: {"ok": True, "values": {...}} or
    {"ok": False, "reason": "unreachable" | "no_answer", "detail": ...}. SiteSetupError for unreadable fields."""
    from collectors.modbus import FieldError, GatewayUnreachable
    from collectors.oneshot import read_meter
    f = _Form()
    host, framing = f.host(host), f.framing(framing)
    port, unit = f.whole("port", port), f.whole("unit", unit)
    timeout_s = f.timeout(timeout_s)
    name = f.text("profile", profile)
    if name is not None and name not in profiles:
        f.bad("profile", "unknown_profile", value=name, known=", ".join(profiles.names()))
    f.raise_if_any()
    try:
        values = read_meter(host, port, unit, profiles.get(name), framing, timeout_s=min(timeout_s, 5.0))
    except GatewayUnreachable as exc:
        return {"ok": False, "reason": "unreachable", "detail": str(exc)[:200]}
    except (FieldError, OSError) as exc:
        return {"ok": False, "reason": "no_answer", "detail": (str(exc) or type(exc).__name__)[:200]}
    return {"ok": True, "values": {k: values[k] for k in TESTED_KEYS if k in values}}


# --- device profiles -------------------------------------------------------------------------------------------
def profile_list(profiles: ProfileRegistry) -> list[dict]:
    """Every profile the site can use, with its blocks and points (built-in or the site's own)."""
    out = []
    for name in profiles.names():
        p = profiles.get(name)
        out.append({"name": p.name, "model": p.model, "kind": p.kind, "word_order": p.word_order,
                    "mailbox": p.mailbox, "own": name in profiles.overridden or not _builtin(p.source),
                    "blocks": [{"table": b.table, "start": b.start, "count": b.count, "every": b.every}
                               for b in p.blocks],
                    "points": [{"key": pt.key, "address": pt.address, "type": pt.type, "scale": pt.scale,
                                "unit": pt.unit, "table": pt.table, "bits": ", ".join(pt.bits or {})}
                               for pt in p.points]})
    return out


def _builtin(source: str) -> bool:
    from collectors.profiles import BUILTIN_DIR
    return Path(source).parent == BUILTIN_DIR


def check_profile(filename: str, content: bytes) -> dict:
    """Load and validate a profile file sent from a page (nothing is saved): {"ok": True, "name", "points",
    "blocks"} or {"ok": False, "line": n | None, "code", "params", "message"}: the loader's code and parameters (a
    page puts them into the reader's words, catalog profile_error.<code>) and its English words."""
    if len(content) > UPLOAD_LIMIT:
        return {"ok": False, "line": None, "code": "too_large", "params": {"megabytes": UPLOAD_LIMIT >> 20},
                "message": f"the file is larger than {UPLOAD_LIMIT >> 20} MB"}
    with tempfile.TemporaryDirectory(prefix="wattline-profile-") as tmp:
        path = Path(tmp) / "profile.toml"
        path.write_bytes(content)
        try:
            p = load_profile_file(path)
        except ProfileError as exc:
            message = str(exc).removeprefix(f"{path}:").removeprefix(f"{exc.line}:" if exc.line else "").strip()
            return {"ok": False, "line": exc.line, "code": exc.code, "params": exc.params, "message": message}
    return {"ok": True, "name": p.name, "model": p.model, "kind": p.kind, "blocks": len(p.blocks),
            "points": len(p.points)}
