"""The overview's data: pure shaping of the meter-state frame into tiles, and the one refresh the tick calls.

Pure functions (no Dash, no database) sit at the top and are unit-tested on small frames;
`refresh` at the bottom is the service the page's callbacks call: it asks storage for the
version first and reads the 10,000-row state frame only when something changed.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.clock import site_time, utcnow  # noqa: F401  (utcnow: the overview page reads its clock here)
from storage.overview import (
    STATE_CODE, meter_detail, meter_states_frame, overview_kpis, overview_version, recent_commands, tile_signature,
)
from storage.timeseries import readings_between

TICK_MS = 5000  # the overview asks for changes this often; it never talks to the devices


@dataclass(frozen=True)
class TileFilter:
    """Which tiles the map holds. The state filter is not here: it only hides tiles (CSS class)."""
    building: str | None = None
    floor: int | None = None
    search: str = ""

    @classmethod
    def from_inputs(cls, building=None, floor=None, search=None) -> "TileFilter":
        """From the filter controls or the query string; "" and "*" mean "all", and so does a value of the
        wrong type or size (a floor is a whole number below MAX_FLOOR)."""
        building = building if isinstance(building, str) and building not in ("", "*") else None
        return cls(building, _floor(floor), search.strip() if isinstance(search, str) else "")

    def as_dict(self) -> dict:
        return asdict(self)


MAX_FLOOR = 1000


def _floor(value) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,4}", value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < MAX_FLOOR:
        return value
    return None


def local_day_bounds(now_utc: dt.datetime, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The site's current local day as naive-UTC [start, end): the database's clock."""
    local = now_utc.replace(tzinfo=dt.UTC).astimezone(zone)
    start_local = dt.datetime.combine(local.date(), dt.time(), tzinfo=zone)
    end_local = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return (start_local.astimezone(dt.UTC).replace(tzinfo=None), end_local.astimezone(dt.UTC).replace(tzinfo=None))


def tile_frame(states: pd.DataFrame, flt: TileFilter) -> pd.DataFrame:
    """The room meters the map shows, in map order (building, floor, room, address), after the filter.

    Search matches a room name (case-insensitive, anywhere) or a meter address (anywhere)."""
    tiles = states[states["room_id"].notna()]
    if flt.building:
        tiles = tiles[tiles["building"] == flt.building]
    if flt.floor is not None:
        tiles = tiles[tiles["floor"] == flt.floor]
    if flt.search:
        needle = flt.search.lower()
        hit = (tiles["room"].astype(str).str.lower().str.contains(needle, regex=False)
               | tiles["address"].astype(str).str.contains(needle, regex=False))
        tiles = tiles[hit]
    return tiles.reset_index(drop=True)


def tile_codes(tiles: pd.DataFrame) -> str:
    """One character per tile (storage.overview.STATE_CODE), in map order: what the browser keeps."""
    return "".join(tiles["state"].map(STATE_CODE).tolist())


def tile_positions(tiles: pd.DataFrame) -> np.ndarray:
    """(building index, floor index within the building, tile index within the floor) per tile.

    These are the tile's place in the map's nested children, which a Patch addresses."""
    if tiles.empty:
        return np.zeros((0, 3), dtype=np.int64)
    b_idx = pd.factorize(tiles["building"].fillna(""))[0]
    floor_key = tiles["floor"].astype("Float64").fillna(-1)
    new_floor = np.r_[True, (b_idx[1:] != b_idx[:-1]) | (floor_key.to_numpy()[1:] != floor_key.to_numpy()[:-1])]
    new_building = np.r_[True, b_idx[1:] != b_idx[:-1]]
    floor_run = np.cumsum(new_floor) - 1
    first_floor_of_building = pd.Series(floor_run).where(new_building).ffill().to_numpy(dtype=np.int64)
    f_idx = floor_run - first_floor_of_building
    t_idx = pd.Series(np.ones(len(tiles), dtype=np.int64)).groupby(floor_run).cumsum().to_numpy() - 1
    return np.column_stack([b_idx, f_idx, t_idx]).astype(np.int64)


def changed_tiles(old_codes: str, new_codes: str) -> list[int]:
    """Indices whose state code differs (the two strings describe the same tile set)."""
    if len(old_codes) != len(new_codes):
        raise ValueError("codes of different tile sets cannot be compared")
    a = np.frombuffer(old_codes.encode("ascii"), dtype=np.uint8)
    b = np.frombuffer(new_codes.encode("ascii"), dtype=np.uint8)
    return np.flatnonzero(a != b).tolist()


def filter_options(states: pd.DataFrame) -> tuple[list[str], list[int]]:
    """Buildings and floors that have room meters, sorted."""
    rooms = states[states["room_id"].notna()]
    buildings = sorted(rooms["building"].dropna().unique().tolist())
    floors = sorted(int(f) for f in rooms["floor"].dropna().unique().tolist())
    return buildings, floors


# ---------------------------------------------------------------------------------------------
# The service the page calls

@dataclass
class Refresh:
    """What one tick (or a filter change) found. `mode`: "same" (nothing changed since the browser's
    version), "patch" (same tile set: `changed` lists the tiles whose state moved) or "full"."""
    mode: str
    version: str
    flt: TileFilter
    kpis: dict = field(default_factory=dict)
    tiles: pd.DataFrame | None = None
    positions: np.ndarray | None = None
    changed: list[int] = field(default_factory=list)
    signature: str = ""
    codes: str = ""
    buildings: list[str] = field(default_factory=list)
    floors: list[int] = field(default_factory=list)

    def store(self, prev: dict | None = None) -> dict:
        """What the browser keeps between ticks (about one byte per tile)."""
        if self.mode == "same":
            return dict(prev or {})
        return {"version": self.version, "filter": self.flt.as_dict(), "sig": self.signature, "codes": self.codes}


def refresh(engine: sa.Engine, flt: TileFilter, prev: dict | None, now_utc: dt.datetime,
            zone: dt.tzinfo, force: bool = False) -> Refresh:
    """The overview as of now, relative to what the browser holds (`prev`, its store; anything but the
    object this function gave it counts as nothing held)."""
    prev = prev if isinstance(prev, dict) else {}
    same_filter = prev.get("filter") == flt.as_dict()
    with engine.connect() as conn:
        version = overview_version(conn)
        if not force and same_filter and prev.get("version") == version:
            return Refresh("same", version, flt)
        states = meter_states_frame(conn)
        day_start, day_end = local_day_bounds(now_utc, zone)
        kpis = overview_kpis(conn, states, day_start, day_end)
    last = states["last_seen"].max() if not states.empty else None
    kpis["last_seen"] = site_time(last, zone) if last is not None and not pd.isna(last) else None
    tiles = tile_frame(states, flt)
    signature, codes = tile_signature(tiles["meter_id"].to_numpy()), tile_codes(tiles)
    buildings, floors = filter_options(states)
    out = Refresh("full", version, flt, kpis, tiles, tile_positions(tiles), [], signature, codes, buildings, floors)
    held = prev.get("codes")
    if (not force and same_filter and prev.get("sig") == signature and isinstance(held, str) and held.isascii()
            and len(held) == len(codes)):
        changed = changed_tiles(prev["codes"], codes)
        if len(changed) <= len(codes) // 2:  # beyond that (a site-wide outage) the whole map is smaller
            out.mode, out.changed = "patch", changed
    return out



def meter_panel(engine: sa.Engine, meter_id: int, now_utc: dt.datetime,
                hours: int = 24) -> tuple[dict | None, pd.DataFrame, pd.DataFrame]:
    """One meter for the side panel: detail (storage.overview.meter_detail), its power over the last
    `hours` (ts naive UTC, power_total) and its recent commands."""
    with engine.connect() as conn:
        detail = meter_detail(conn, meter_id)
        if detail is None:
            return None, pd.DataFrame(columns=["ts", "power_total"]), pd.DataFrame()
        curve = readings_between(conn, meter_id, now_utc - dt.timedelta(hours=hours),
                                 now_utc + dt.timedelta(minutes=1), columns=("power_total",))
        commands = recent_commands(conn, meter_id)
    return detail, curve, commands
