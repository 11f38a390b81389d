"""Telemetry of the transformer areas (遥测) as the live pages show it: every area's state at a glance (load, phase
voltages against the band, tap, open alarms, link), one area's latest values and signals (遥信) from its terminal,
and its terminal's trends over a window of at most a week. Plain functions over an engine; times stay naive UTC
(the pages show them in the site's zone)."""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from grid.power_quality import DEFAULT_NOMINAL_V, voltage_band
from storage import grid as store
from storage import grid_areas, grid_live
from storage.schema import DEVICE_SIGNAL_BITS

PHASES = ("a", "b", "c")
BREAKERS = tuple(range(1, 9))
INPUTS = ("door_open", "smoke", "water", "changeover")   # the terminal's inputs: on is worth a look
TREND_MAX = dt.timedelta(days=7)
# The ranges a page offers, in hours (the longest is TREND_MAX).
RANGES = {"6h": 6, "24h": 24, "3d": 72, "7d": 168}
DEFAULT_RANGE = "24h"


class TelemetryError(ValueError):
    """A window the operator can fix; the text is the catalogs' `grid_area.error.<code>`."""

    def __init__(self, code: str, **params):
        self.code, self.params = code, params
        super().__init__(code)

    @property
    def key(self) -> str:
        return f"grid_area.error.{self.code}"

    def message(self, lang: str = "en") -> str:
        from core.text import error_text
        return error_text(self, lang)


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _extra(state: dict) -> dict:
    raw = state.get("extra")
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def load_percent(power_kw, reactive_kvar, rating_kva) -> float | None:
    """Apparent power over the transformer's rating, in per cent (reactive power unknown: the active alone)."""
    p, q, s = _number(power_kw), _number(reactive_kvar), _number(rating_kva)
    if p is None or not s:
        return None
    return math.hypot(p, q or 0.0) / s * 100.0


def band_of(nominal) -> tuple[float, float]:
    """The three-phase voltage band (on the phase voltage) of an area's nominal voltage."""
    return voltage_band(_number(nominal) or DEFAULT_NOMINAL_V, 3)


def _signal(state: dict, extra: dict, name: str) -> bool | None:
    v = state.get(name, extra.get(name))
    if v is None or (isinstance(v, float) and v != v):
        return None
    return bool(v)


AREA_LIST_COLUMNS = ("id", "name", "building", "rating_kva", "nominal_voltage", "terminal_address", "comm_state",
                     "ts", "load_pct", "voltage_a", "voltage_b", "voltage_c", "band_low", "band_high", "in_band",
                     "tap_position", "tap_count", "alarms_open")


def area_overview(engine: sa.Engine) -> pd.DataFrame:
    """Every area by name with its terminal's latest state: load %, phase voltages and whether all are in the band,
    tap position of tap count, link (online, lost, unknown; none: no terminal) and how many alarms are open on the
    area, its terminal and its master meter."""
    with engine.connect() as conn:
        areas = store.areas(conn)
        terminals = [int(m) for m in areas["terminal_meter_id"].dropna()]
        states = grid_live.terminal_states(conn, terminals).set_index("meter_id")
        subjects = {int(r.id): [int(m) for m in (r.terminal_meter_id, r.master_meter_id) if pd.notna(m)]
                    for r in areas.itertuples()}
        counts = grid_live.open_alarm_counts(conn, subjects)
    rows = []
    for a in areas.to_dict("records"):
        tid = a["terminal_meter_id"]
        state = states.loc[int(tid)].to_dict() if pd.notna(tid) and int(tid) in states.index else {}
        extra = _extra(state)
        low, high = band_of(a["nominal_voltage"])
        volts = [_number(state.get(f"voltage_{p}")) for p in PHASES]
        known = [v for v in volts if v is not None]
        rows.append({
            "id": int(a["id"]), "name": a["name"], "building": a["building"], "rating_kva": a["rating_kva"],
            "nominal_voltage": a["nominal_voltage"], "terminal_address": a["terminal_address"],
            "comm_state": (state.get("comm_state") or "unknown") if pd.notna(tid) else None,
            "ts": state.get("ts"),
            "load_pct": load_percent(state.get("power_total"), state.get("reactive_total"), a["rating_kva"]),
            **{f"voltage_{p}": v for p, v in zip(PHASES, volts)}, "band_low": low, "band_high": high,
            "in_band": (all(low <= v <= high for v in known) if known else None),
            "tap_position": _int(state.get("tap_position")), "tap_count": _int(extra.get("tap_count")),
            "alarms_open": counts.get(int(a["id"]), 0)})
    return pd.DataFrame(rows, columns=list(AREA_LIST_COLUMNS))


def _int(v) -> int | None:
    f = _number(v)
    return None if f is None else int(f)


@dataclass(frozen=True)
class AreaLive:
    area: dict            # the area's model row (storage.grid.AREA_COLUMNS) with its band
    state: dict           # the terminal's latest values by canonical key ({} without a terminal or a reading)
    signals: dict         # door_open, smoke, water, changeover, breaker_1..8: True, False or None (not read)
    comm_state: str | None
    ts: dt.datetime | None        # the latest good reading (naive UTC)
    last_seen: dt.datetime | None
    tap_count: int | None
    load_pct: float | None
    alarms: pd.DataFrame  # open events, newest first (storage.grid_areas.area_open_alarms)


def find_area(engine: sa.Engine, area_id) -> dict | None:
    """The area's model row, or None when no area has that id (anything that is not a whole number included)."""
    try:
        wanted = int(area_id)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(area_id, float) and not area_id.is_integer() or not 0 < wanted < 2 ** 31:
        return None
    with engine.connect() as conn:
        areas = store.areas(conn)
    found = areas.loc[areas["id"] == wanted]
    if found.empty:
        return None
    row = found.iloc[0].to_dict()
    row["band_low"], row["band_high"] = band_of(row["nominal_voltage"])
    return row


def area_live(engine: sa.Engine, area_id) -> AreaLive | None:
    """One area's latest telemetry and signals from its terminal, its link and its open alarms; None when no
    area has that id."""
    area = find_area(engine, area_id)
    if area is None:
        return None
    tid = area["terminal_meter_id"]
    with engine.connect() as conn:
        states = grid_live.terminal_states(conn, [int(tid)] if pd.notna(tid) else [])
        alarms = pd.DataFrame(grid_areas.area_open_alarms(conn, int(area["id"])))
    if not alarms.empty:
        alarms = alarms.sort_values(["opened_at", "id"], ascending=False).reset_index(drop=True)
    state = {} if states.empty else {k: (None if _missing(v) else v) for k, v in states.iloc[0].to_dict().items()}
    extra = _extra(state)
    signals = {name: _signal(state, extra, name) for name in (*INPUTS, *(f"breaker_{i}" for i in BREAKERS))}
    signals = {k: v for k, v in signals.items() if k in DEVICE_SIGNAL_BITS or k in state or k in extra
               or k == "changeover"}
    return AreaLive(area=area, state=state, signals=signals,
                    comm_state=(state.get("comm_state") or "unknown") if pd.notna(tid) else None,
                    ts=state.get("ts"), last_seen=state.get("last_seen"), tap_count=_int(extra.get("tap_count")),
                    load_pct=load_percent(state.get("power_total"), state.get("reactive_total"), area["rating_kva"]),
                    alarms=alarms)


def _missing(v) -> bool:
    return v is None or v is pd.NaT or (isinstance(v, float) and v != v)


def trend_window(now: dt.datetime, range_key: str | None = None, start=None, end=None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) naive UTC: the last RANGES[range_key] hours up to now, or start..end when both are given
    (at most TREND_MAX, end not after now; TelemetryError otherwise)."""
    if start is None and end is None:
        hours = RANGES.get(range_key if isinstance(range_key, str) else "", RANGES[DEFAULT_RANGE])
        return now - dt.timedelta(hours=hours), now
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        raise TelemetryError("no_range")
    if start >= end:
        raise TelemetryError("range_reversed")
    if end - start > TREND_MAX:
        raise TelemetryError("range_too_long", days=TREND_MAX.days)
    return start, min(end, now)


def area_trends(engine: sa.Engine, area: dict, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The area's terminal telemetry in [start, end) (naive UTC, at most TREND_MAX): storage.grid_live
    terminal_series, every poll (the page draws it thinned); empty without a terminal."""
    if end - start > TREND_MAX + dt.timedelta(minutes=1):
        raise TelemetryError("range_too_long", days=TREND_MAX.days)
    tid = area.get("terminal_meter_id")
    if tid is None or _missing(tid):
        return pd.DataFrame(columns=["ts", *grid_live.TREND_READING_KEYS, *grid_live.TREND_DEVICE_KEYS])
    with engine.connect() as conn:
        return grid_live.terminal_series(conn, int(tid), start, end)
