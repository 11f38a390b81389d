"""A transformer area's own record, edited by hand (/grid/areas/edit, permission grid.edit): its nameplate (rating,
nominal phase voltage, connection group), its terminal and master meter with the CT ratio, the meters it feeds, and
its cameras (televideo 遥视: links to a camera's own page or snapshot, no streaming). Every form is checked whole
before anything is written: a mistake raises AreaError naming each field and why (catalog area_edit.error.<code>,
in the reader's language), and nothing changes; a change is written in one transaction with its operation-log row.

The topology import (collectors/topology_import.py) fills the same fields from a file (area, area_role, ct_ratio,
rating_kva, nominal_voltage, connection_group columns) with the same ranges (AREA_NUMBER_RANGES).
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import sqlalchemy as sa

from collectors.site_setup import Who
from collectors.topology_import import AREA_NUMBER_RANGES
from core.text import t
from storage import audit
from storage import grid_areas as store

TERMINAL_KIND = "transformer-terminal"     # the profile kind an area's terminal has (collectors/profiles)
MASTER_KIND = "meter-3p"                   # and its master meter
CAMERA_KINDS = ("page", "snapshot")
MAX_CAMERAS = 20                           # per area
NAME_MAX, URL_MAX = 100, 500
NUMBER_MAX = 20                            # characters of a typed number ("4000/5" and then some)
ADDRESSES_MAX = 20000                      # characters of the typed list of meter numbers (about 1500 numbers)
GROUP_SEP = "\x1f"                         # building and floor in a group's key (never typed: a control char)
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．。／", "0123456789../")
_NUMBER = re.compile(r"[+-]?[0-9]{1,9}(\.[0-9]{1,6})?")   # a sign: read, then out of range
# IEC 60076-1 vector groups: HV winding D/Y/YN/Z/ZN, LV winding d/y/yn/z/zn, clock number 0..11 (Dyn11, Yyn0)
_GROUP = re.compile(r"(YN|ZN|D|Y|Z)(yn|zn|d|y|z)(1[01]|[0-9])", re.IGNORECASE)
_METER_NUMBER = re.compile(r"[0-9]{12}")
ACTION_EDIT = "grid.area_edit"
ACTION_CAMERA_ADD = "grid.camera_add"
ACTION_CAMERA_REMOVE = "grid.camera_remove"


@dataclass(frozen=True)
class Issue:
    field: str      # the form's field (area_edit.field.<field>)
    code: str       # area_edit.error.<code>
    params: dict = field(default_factory=dict)

    def text(self, lang: str) -> str:
        return f"{t(f'area_edit.field.{self.field}', lang)}: {t(f'area_edit.error.{self.code}', lang, **self.params)}"


class AreaError(ValueError):
    """What the operator must fix before anything is written: one or more issues."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(i.text("en") for i in issues))

    def texts(self, lang: str) -> list[str]:
        return [i.text(lang) for i in self.issues]


class _Form:
    def __init__(self):
        self.issues: list[Issue] = []

    def bad(self, field_name: str, code: str, **params) -> None:
        self.issues.append(Issue(field_name, code, {k: _shown(v) for k, v in params.items()}))

    def raise_if_any(self) -> None:
        if self.issues:
            raise AreaError(self.issues)

    def typed(self, name: str, value, limit: int) -> str | None:
        """Text as typed (a number from a number field as its digits): control characters and length refused."""
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.bad(name, "not_text")
            return None
        text = value if isinstance(value, str) else repr(value)
        if len(text) > limit:
            self.bad(name, "too_long", length=len(text), limit=limit)
            return None
        for i, ch in enumerate(text):
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in "\n\r\t":
                self.bad(name, "control_character", char=f"U+{ord(ch):04X}", position=i + 1)
                return None
        return text.strip().strip("\u3000").strip()

    def number(self, name: str, value, low: float, high: float, *, ratio: bool = False) -> float | None:
        """A positive number as typed: full-width digits and stops read, a comma refused ("50,5": say 50.5), within
        low..high; a CT ratio may be typed as primary/secondary ("200/5" is 40). Empty: None."""
        text = self.typed(name, value, NUMBER_MAX)
        if not text:
            return None
        text = text.translate(_FULL_WIDTH).replace(" ", "")
        if "," in text or "，" in text:
            self.bad(name, "decimal_comma", value=text)
            return None
        parts = text.split("/") if ratio else [text]
        if len(parts) > 2 or not all(_NUMBER.fullmatch(p) for p in parts) or \
                (len(parts) == 2 and any(p[0] in "+-" for p in parts)):
            self.bad(name, "not_ratio" if ratio else "not_number", value=text)
            return None
        number = float(parts[0])
        if len(parts) == 2:
            if float(parts[1]) == 0:
                self.bad(name, "not_ratio", value=text)
                return None
            number /= float(parts[1])
        if not low <= number <= high:
            self.bad(name, "out_of_range", value=f"{number:g}", low=f"{low:g}", high=f"{high:g}")
            return None
        return number


def _shown(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _id(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 10:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 < value < 2 ** 31 else None


# ---------------------------------------------------------------------------------------------
# the area's form
def group_key(building: str | None, floor) -> str:
    return f"{building or ''}{GROUP_SEP}{'' if floor is None else int(floor)}"


def _groups(meters: list[dict]) -> dict[str, list[dict]]:
    """Building/floor -> its meters (those in a room; a master meter or terminal has none)."""
    out: dict[str, list[dict]] = {}
    for m in meters:
        if m["building"] is not None:
            out.setdefault(group_key(m["building"], m["floor"]), []).append(m)
    return out


def area_form(engine: sa.Engine, area_id: int, profile_kinds: dict[str, str]) -> dict | None:
    """What the edit page shows of an area: its values as the form holds them, the choices of terminal (profile
    kind transformer-terminal) and master meter (meter-3p), the building/floor groups of meters (with how many of
    each the area feeds) and the numbers of the area's meters outside whole groups. None: no such area."""
    with engine.connect() as conn:
        area = store.area_record(conn, area_id)
        if area is None:
            return None
        meters = store.meter_choices(conn)
        elsewhere = store.roles_elsewhere(conn, area_id)
    mine = {m["id"] for m in meters if m["area_id"] == area["id"]}
    roles = {area["terminal_meter_id"], area["master_meter_id"]} - {None}

    def choice(kind: str) -> list[dict]:
        return [{"id": m["id"], "address": m["address"], "building": m["building"]} for m in meters
                if profile_kinds.get(m["profile"]) == kind and m["id"] not in elsewhere]
    groups = []
    whole: set[int] = set()
    for key, members in sorted(_groups(meters).items(), key=lambda kv: (kv[0].split(GROUP_SEP)[0],
                                                                      _floor_order(kv[0]))):
        ids = {m["id"] for m in members}
        fed = len(ids & mine)
        building, floor = key.split(GROUP_SEP)
        groups.append({"key": key, "building": building, "floor": floor, "meters": len(ids), "fed": fed})
        if fed == len(ids):
            whole |= ids
    listed = sorted(m["address"] for m in meters if m["id"] in mine and m["id"] not in whole and m["id"] not in roles)
    return {"area": area, "terminals": choice(TERMINAL_KIND), "masters": choice(MASTER_KIND), "groups": groups,
            "selected_groups": [g["key"] for g in groups if g["meters"] and g["fed"] == g["meters"]],
            "listed": listed, "meters_fed": len(mine)}


def _floor_order(key: str) -> int:
    floor = key.split(GROUP_SEP)[1]
    return int(floor) if floor.lstrip("-").isdigit() else -10 ** 6


def edit_area(engine: sa.Engine, who: Who, area_id, form: dict, profile_kinds: dict[str, str],
              now: dt.datetime) -> dict:
    """Check the whole form (rating_kva, nominal_voltage, connection_group, terminal, master, ct_ratio, groups: the
    building/floor keys whose meters the area feeds, addresses: more meter numbers, typed) and write it: the
    nameplate, the roles, and the area of exactly the meters chosen (area_meter; taken from another area) (plus the terminal and master meter).
    Returns what changed; AreaError (nothing written) when anything is wrong."""
    f = _Form()
    area_key = _id(area_id)
    with engine.begin() as conn:
        area = store.area_record(conn, area_key) if area_key else None
        if area is None:
            f.bad("area", "unknown_area")
            f.raise_if_any()
        meters = store.meter_choices(conn)
        elsewhere = store.roles_elsewhere(conn, area["id"])
        by_id = {m["id"]: m for m in meters}
        values = {
            "rating_kva": f.number("rating_kva", form.get("rating_kva"), *AREA_NUMBER_RANGES["rating_kva"]),
            "nominal_voltage": f.number("nominal_voltage", form.get("nominal_voltage"),
                                        *AREA_NUMBER_RANGES["nominal_voltage"]),
            "ct_ratio": f.number("ct_ratio", form.get("ct_ratio"), *AREA_NUMBER_RANGES["ct_ratio"], ratio=True),
            "connection_group": _connection_group(f, form.get("connection_group")),
            "terminal_meter_id": _role_meter(f, "terminal", form.get("terminal"), TERMINAL_KIND, by_id, elsewhere,
                                             profile_kinds),
            "master_meter_id": _role_meter(f, "master", form.get("master"), MASTER_KIND, by_id, elsewhere,
                                           profile_kinds),
        }
        if values["terminal_meter_id"] is not None and values["terminal_meter_id"] == values["master_meter_id"]:
            f.bad("master", "same_meter")
        fed = _fed_meters(f, form.get("groups"), form.get("addresses"), meters, elsewhere)
        f.raise_if_any()
        fed |= {values[k] for k in ("terminal_meter_id", "master_meter_id") if values[k] is not None}
        before = {k: area[k] for k in store.AREA_FIELDS}
        store.update_area(conn, area["id"], values)
        moved = store.set_area_meters(conn, area["id"], fed)
        after = {k: values[k] for k in store.AREA_FIELDS}
        changed = {k: after[k] for k in after if after[k] != before[k]}
        addresses = {m["id"]: m["address"] for m in meters}
        audit.record(conn, operator=who.operator, action=ACTION_EDIT, target=f"area:{area['name']}", ts=now,
                     source=who.source, before={k: before[k] for k in changed},
                     after={**changed, "meters_added": [addresses[i] for i in moved["added"][:50]],
                            "meters_removed": [addresses[i] for i in moved["removed"][:50]],
                            "meters_added_count": len(moved["added"]),
                            "meters_removed_count": len(moved["removed"])})
    return {"changed": changed, "added": len(moved["added"]), "removed": len(moved["removed"]), "meters": len(fed)}


def _connection_group(f: _Form, value) -> str | None:
    text = f.typed("connection_group", value, 20)
    if not text:
        return None
    m = _GROUP.fullmatch(text.translate(_FULL_WIDTH).replace(" ", ""))
    if not m:
        f.bad("connection_group", "bad_connection_group", value=text)
        return None
    return m[1].upper() + m[2].lower() + m[3]


def _role_meter(f: _Form, name: str, value, kind: str, by_id: dict[int, dict], elsewhere: dict,
                profile_kinds: dict[str, str]) -> int | None:
    if value in (None, "", []):
        return None
    meter_id = _id(value)
    m = by_id.get(meter_id) if meter_id else None
    if m is None:
        f.bad(name, "unknown_meter", value=value)
        return None
    if profile_kinds.get(m["profile"]) != kind:
        f.bad(name, f"not_{name}", address=m["address"])
        return None
    if meter_id in elsewhere:
        role, area = elsewhere[meter_id]
        f.bad(name, f"{role}_elsewhere", address=m["address"], area=area)
        return None
    return meter_id


def _fed_meters(f: _Form, groups, addresses, meters: list[dict], elsewhere: dict) -> set[int]:
    """The meters of the groups picked and the numbers typed (12 digits each; full-width digits read)."""
    by_group = _groups(meters)
    out: set[int] = set()
    if groups in (None, ""):
        groups = []
    if not isinstance(groups, list) or len(groups) > 5000:
        f.bad("groups", "not_list")
        groups = []
    for key in groups:
        if not isinstance(key, str) or key not in by_group:
            f.bad("groups", "unknown_group", value=key if isinstance(key, str) else "?")
            continue
        out |= {m["id"] for m in by_group[key]}
    text = f.typed("addresses", addresses, ADDRESSES_MAX)
    if text:
        by_address = {m["address"]: m["id"] for m in meters}
        unknown, malformed = [], []
        for word in re.split(r"[\s,，;；、]+", unicodedata.normalize("NFKC", text)):
            if not word:
                continue
            if not _METER_NUMBER.fullmatch(word):
                malformed.append(word)
            elif word not in by_address:
                unknown.append(word)
            else:
                out.add(by_address[word])
        if malformed:
            f.bad("addresses", "not_meter_number", value=", ".join(malformed[:5]), count=len(malformed))
        if unknown:
            f.bad("addresses", "unknown_addresses", value=", ".join(unknown[:5]), count=len(unknown))
    taken = sorted(m["address"] for m in meters if m["id"] in out and m["id"] in elsewhere)
    if taken:
        f.bad("addresses", "fed_role_elsewhere", value=", ".join(taken[:5]))
    return out - set(elsewhere)


# ---------------------------------------------------------------------------------------------
# cameras
def cameras(engine: sa.Engine, area_id: int) -> list[dict]:
    """The area's cameras as the live area page links them: id, name, url (http or https), kind (page|snapshot)."""
    key = _id(area_id)
    if key is None:
        return []
    with engine.connect() as conn:
        return [{k: c[k] for k in ("id", "name", "url", "kind")} for c in store.cameras(conn, key)]


def camera_url(f: _Form, value) -> str | None:
    """An http(s) address with a host, no spaces, no user:password (it would be shown to every viewer)."""
    text = f.typed("url", value, URL_MAX)
    if text is None:
        return None
    if not text:
        f.bad("url", "empty")
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port      # noqa: B018 - raises on a port that is not a number
    except ValueError:
        f.bad("url", "bad_url", value=text)
        return None
    if parts.scheme.lower() not in ("http", "https"):
        f.bad("url", "url_scheme", value=parts.scheme or text)
        return None
    if not host or any(ch.isspace() for ch in text) or not text.isascii():
        f.bad("url", "bad_url", value=text)
        return None
    if parts.username or parts.password:
        f.bad("url", "url_credentials")
        return None
    return text


def add_camera(engine: sa.Engine, who: Who, area_id, name, url, kind, now: dt.datetime) -> int:
    """A camera for the area (its name, the address of its page or snapshot, the kind); its id, or AreaError."""
    f = _Form()
    name = f.typed("camera_name", name, NAME_MAX)
    if name is not None:
        name = " ".join(name.split())
        if not name:
            f.bad("camera_name", "empty")
    url = camera_url(f, url)
    if kind not in CAMERA_KINDS:
        f.bad("camera_kind", "bad_kind")
    key = _id(area_id)
    with engine.begin() as conn:
        area = store.area_record(conn, key) if key else None
        if area is None:
            f.bad("area", "unknown_area")
        elif store.camera_count(conn, key) >= MAX_CAMERAS:
            f.bad("area", "too_many_cameras", limit=MAX_CAMERAS)
        f.raise_if_any()
        camera_id = store.insert_camera(conn, area_id=key, name=name, url=url, kind=kind, now=now,
                                        operator=who.operator)
        audit.record(conn, operator=who.operator, action=ACTION_CAMERA_ADD, target=f"area:{area['name']}", ts=now,
                     source=who.source, after={"camera": camera_id, "name": name, "url": url, "kind": kind})
    return camera_id


def remove_camera(engine: sa.Engine, who: Who, area_id, camera_id, now: dt.datetime) -> None:
    """Remove one of the area's cameras; AreaError when it is not (or no longer) the area's."""
    f = _Form()
    key, cam_key = _id(area_id), _id(camera_id)
    with engine.begin() as conn:
        cam = store.camera_by_id(conn, cam_key) if cam_key else None
        area = store.area_record(conn, key) if key else None
        if cam is None or area is None or cam["area_id"] != key:
            f.bad("camera_name", "unknown_camera")
            f.raise_if_any()
        store.delete_camera(conn, cam_key)
        audit.record(conn, operator=who.operator, action=ACTION_CAMERA_REMOVE, target=f"area:{area['name']}",
                     ts=now, source=who.source,
                     before={"camera": cam_key, "name": cam["name"], "url": cam["url"], "kind": cam["kind"]})


def seed_demo_cameras(engine: sa.Engine, now: dt.datetime) -> int:
    """The demo's cameras on first start: a page and a snapshot per area (addresses of the documentation range,
    RFC 5737: nothing answers there); none when any camera exists. How many were added."""
    with engine.begin() as conn:
        if store.any_camera(conn):
            return 0
        added = 0
        for n, (area_id, name) in enumerate(store.area_names(conn), start=1):
            for kind, label, url in (("page", "Substation door", f"http://192.0.2.{n}/"),
                                     ("snapshot", "Transformer", f"http://192.0.2.{n}/snapshot.jpg")):
                store.insert_camera(conn, area_id=area_id, name=f"{name} · {label}", url=url, kind=kind, now=now,
                                    operator="demo")
                added += 1
    return added
