"""The demo's simulated field on demand (/grid/simulator, the admin's site.edit): per transformer area, its terminal's
medium-voltage supply offset, faults (phase sag, harmonic source, stuck tap changer, breaker that does not open),
dual-supply changeover and door / smoke / water inputs, put on the simulator (simulator.field.Field) so the
automatic voltage control, the telesignals and the live area page have something to act on.

Only the demo has one (serve/runtime.py creates it next to the simulated field); the dashboard reaches it through
dashboard.services.demo_field() and never imports the simulator. Each change is checked first (permission, area,
control, value; nothing changes on a refusal: SimulatorError with a catalog code, simulator.error.<code>), then put
on the field and written to the operation log in one go: the log row's transaction commits only once the field
took the change.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
import unicodedata
from typing import Callable

import sqlalchemy as sa

from core import permissions as P
from core.text import permission_label, t
from storage import audit
from storage.grid import areas as area_rows

log = logging.getLogger(__name__)

FAULTS = ("phase_sag", "harmonics", "stuck_tap", "breaker_stuck")
INPUTS = ("door_open", "smoke", "water")
CHANGEOVER = "changeover"
SWITCHES = (*FAULTS, CHANGEOVER, *INPUTS)     # what is turned on and off, in the page's order
OFFSET_LIMIT = 20.0                           # % of nominal, either way (the simulator's own limit)
OFFSET_TYPED_MAX = 20                         # characters of a typed offset
PERMISSION = P.SITE_EDIT
ACTION_SWITCH = "simulator.fault"
ACTION_OFFSET = "simulator.supply_offset"
DEMO_OFFSET_PCT = 8.0    # the demo's first start: one area's MV supply this far up, out of the band until the AVC acts
MAX_ID = 2 ** 31 - 1
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．。－＋−", "0123456789..-+-")
_OFFSET = re.compile(r"[+-]?[0-9]{1,3}(\.[0-9]{1,2})?")


class SimulatorError(ValueError):
    """Refused before anything changed: a code in the catalogs (simulator.error.<code>) with its parameters."""

    def __init__(self, code: str, **params):
        self.code, self.params = code, {k: str(v) for k, v in params.items()}
        super().__init__(f"{code} {self.params}")

    def text(self, lang: str) -> str:
        params = dict(self.params)
        if "permission" in params:
            params["permission_label"] = permission_label(params["permission"], lang)
        return t(f"simulator.error.{self.code}", lang, **params)


def parse_offset(value) -> float:
    """A supply offset as typed: -20..20 (%), full-width digits and signs read; "50,5", text, formula text, control
    characters, NaN, infinities and huge numbers refused (SimulatorError)."""
    if value is None or (isinstance(value, str) and not value.strip().strip("\u3000").strip()):
        raise SimulatorError("offset_required")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SimulatorError("offset_not_number", value="?")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise SimulatorError("offset_out_of_range", value="…", low=f"{-OFFSET_LIMIT:g}",
                                 high=f"{OFFSET_LIMIT:g}") from None
        if not math.isfinite(number) or not -OFFSET_LIMIT <= number <= OFFSET_LIMIT:
            raise SimulatorError("offset_out_of_range", value=_shown(value), low=f"{-OFFSET_LIMIT:g}",
                                 high=f"{OFFSET_LIMIT:g}")
        return round(number, 2)
    if len(value) > OFFSET_TYPED_MAX:
        raise SimulatorError("offset_not_number", value=_shown(value))
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        raise SimulatorError("offset_not_number", value=_shown(value))
    text = value.strip().strip("\u3000").strip().translate(_FULL_WIDTH).replace(" ", "").removesuffix("%")
    if "," in text or "，" in text:
        raise SimulatorError("offset_decimal_comma", value=_shown(value))
    if not _OFFSET.fullmatch(text):
        raise SimulatorError("offset_not_number", value=_shown(value))
    number = float(text)
    if not -OFFSET_LIMIT <= number <= OFFSET_LIMIT:
        raise SimulatorError("offset_out_of_range", value=_shown(value), low=f"{-OFFSET_LIMIT:g}",
                             high=f"{OFFSET_LIMIT:g}")
    return number


def _shown(value) -> str:
    """A refused value as a message may quote it: printable, at most 20 characters."""
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text[:20]) + ("…" if len(text) > 20 else "")


def _area_id(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if 0 < number <= MAX_ID else None
    return None


def _switch_value(value) -> bool | None:
    """On or off: a bool, or 0 / 1 as a page's id carries it; anything else is no answer."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


class DemoField:
    """The demo's field behind the simulator page. `field` is a running simulator.field.Field."""

    def __init__(self, engine: sa.Engine, field, clock: Callable[[], dt.datetime]):
        self.engine, self.field, self.clock = engine, field, clock

    # ------------------------------------------------------------------------------------ reading
    def areas(self) -> list[dict]:
        """Every transformer area whose terminal the simulator has: id, name, terminal (its number), by name."""
        with self.engine.connect() as conn:
            rows = area_rows(conn)
        out = []
        for r in rows.itertuples():
            address = r.terminal_address
            if isinstance(address, str) and address in self.field.meters and self._is_terminal(address):
                out.append({"id": int(r.id), "name": str(r.name), "terminal": address})
        return out

    def _is_terminal(self, address: str) -> bool:
        return hasattr(self.field.meters[address], "tap_position")

    def area(self, area_id) -> dict:
        """One area of areas() (SimulatorError area_unknown for anything else)."""
        wanted = _area_id(area_id)
        found = next((a for a in self.areas() if a["id"] == wanted), None) if wanted is not None else None
        if found is None:
            raise SimulatorError("area_unknown")
        return found

    def state(self, area_id) -> dict:
        """The area (id, name, terminal) and what is put on its terminal now: supply_offset_pct, each switch of
        SWITCHES on or off (in that order), tap_position, tap_count, volts (the three phases)."""
        area = self.area(area_id)
        seen = self.field.terminal_state(area["terminal"])
        switches = {name: name in seen["faults"] if name in FAULTS else bool(seen[name]) for name in SWITCHES}
        return {**area, "switches": switches, "supply_offset_pct": float(seen["supply_offset_pct"]),
                "tap_position": seen["tap_position"], "tap_count": seen["tap_count"], "volts": seen["volts"]}

    # ------------------------------------------------------------------------------------ changing
    def _check(self, actor, target: str) -> None:
        if PERMISSION not in getattr(actor, "permissions", ()):
            with self.engine.begin() as conn:
                audit.record(conn, operator=str(getattr(actor, "username", "-"))[:100], action="permission.denied",
                             target=target, ts=self.clock(), source=getattr(actor, "address", None),
                             after={"permission": PERMISSION})
            raise SimulatorError("permission", permission=PERMISSION)

    def set_switch(self, actor, area_id, control, on) -> dict:
        """Turn one of SWITCHES on or off on the area's terminal; the area's new state (state())."""
        self._check(actor, "callback grid.simulator.switch")
        if control not in SWITCHES:
            raise SimulatorError("control_unknown")
        value = _switch_value(on)
        if value is None:
            raise SimulatorError("value_invalid")
        before = self.state(area_id)
        with self.engine.begin() as conn:
            audit.record(conn, operator=actor.username[:100], action=ACTION_SWITCH, target=f"area:{before['name']}",
                         ts=self.clock(), source=getattr(actor, "address", None),
                         before={control: before["switches"][control]},
                         after={control: value, "terminal": before["terminal"]})
            self._put(before["terminal"], control, value)
        return self.state(before["id"])

    def _put(self, address: str, control: str, on: bool) -> None:
        if control in FAULTS:
            self.field.set_terminal_fault(address, control, on)
        elif control in INPUTS:
            self.field.set_terminal_input(address, control, on)
        else:
            self.field.trigger_changeover(address, on)

    def set_supply_offset(self, actor, area_id, typed) -> dict:
        """The area's MV supply offset as typed (parse_offset); the area's new state (state())."""
        self._check(actor, "callback grid.simulator.offset")
        percent = parse_offset(typed)
        before = self.state(area_id)
        with self.engine.begin() as conn:
            audit.record(conn, operator=actor.username[:100], action=ACTION_OFFSET, target=f"area:{before['name']}",
                         ts=self.clock(), source=getattr(actor, "address", None),
                         before={"supply_offset_pct": before["supply_offset_pct"]},
                         after={"supply_offset_pct": percent, "terminal": before["terminal"]})
            self.field.set_supply_offset(before["terminal"], percent)
        return self.state(before["id"])


def disturb_first_area(field, site) -> str | None:
    """The demo's first start: the first area's terminal (by number) gets a supply DEMO_OFFSET_PCT above nominal, so
    its voltages leave the band and the automatic voltage control steps its tap within the first minutes; nothing
    else is disturbed. The terminal's number, or None when the site has no terminal."""
    terminals = sorted(spec.address for _, _, spec in site.iter_meters() if spec.profile == "wattline-ttu")
    if not terminals:
        return None
    field.set_supply_offset(terminals[0], DEMO_OFFSET_PCT)
    log.info("demo: the supply of terminal %s set %+g %% (the automatic voltage control steps its tap)",
             terminals[0], DEMO_OFFSET_PCT)
    return terminals[0]
