"""What the manager overview reads: every meter's live map state, the day's KPIs, one meter's detail.

The map state of a meter is derived here, by one pure rule (`map_state`, and `map_states` for a
frame), so the tiles, the KPI counts and the meters grid agree. Timestamps in the database are
naive UTC; "today" is the site's local day, passed in as UTC bounds by the caller.
"""
from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from storage.desk import SALES_KINDS, ledger_totals
from storage.frames import read_frame
from storage.schema import (
    building, bus, bus_state, command, gateway, ledger_entry, meter, meter_state, readings, room,
)

# The six states of the seed system's batch view, in legend order, with the one-character code the
# dashboard keeps per tile to find what changed between two ticks.
MAP_STATES = ("normal", "alarm1", "alarm2", "arrears", "not_opened", "lost")
STATE_CODE = {"normal": "N", "alarm1": "1", "alarm2": "2", "arrears": "A", "not_opened": "O", "lost": "L"}
CODE_STATE = {v: k for k, v in STATE_CODE.items()}



def map_state(comm_state: str | None, meter_status: str | None, prepaid_enabled: bool | None,
              arrears: bool | None, relay_closed: bool | None, alarm1: bool | None, alarm2: bool | None) -> str:
    """The map state of one meter, first rule that holds wins.

    1. not in contact (comm_state lost, or never read: no state row / "unknown") -> lost
    2. prepaid control off on the meter, or no account opened (meter.status not_opened) -> not_opened
    3. the meter reports arrears, or its relay is open while prepaid control is on -> arrears (tripped)
    4. alarm2 -> alarm2;  5. alarm1 -> alarm1;  6. otherwise normal.
    Unknown flags (None) count as "not set".
    """
    if comm_state != "online":
        return "lost"
    if prepaid_enabled is False or meter_status == "not_opened":
        return "not_opened"
    if arrears is True or (relay_closed is False and prepaid_enabled is True):
        return "arrears"
    if alarm2 is True:
        return "alarm2"
    if alarm1 is True:
        return "alarm1"
    return "normal"


def _flag(df: pd.DataFrame, col: str, value: bool) -> np.ndarray:
    """Where the nullable flag column equals `value` (null is neither True nor False)."""
    s = df[col]
    if s.dtype == bool:
        return s.to_numpy() if value else ~s.to_numpy()
    return pd.array(s, dtype="boolean").to_numpy(dtype=object, na_value=None) == value


def map_states(df: pd.DataFrame) -> np.ndarray:
    """`map_state` over a frame with columns comm_state, status, prepaid_enabled, arrears,
    relay_closed, alarm1, alarm2 (vectorised; the same rule, same order)."""
    if df.empty:
        return np.array([], dtype=object)
    prepaid_on, prepaid_off = _flag(df, "prepaid_enabled", True), _flag(df, "prepaid_enabled", False)
    conditions = [
        df["comm_state"].to_numpy(dtype=object) != "online",
        prepaid_off | (df["status"].to_numpy(dtype=object) == "not_opened"),
        _flag(df, "arrears", True) | (_flag(df, "relay_closed", False) & prepaid_on),
        _flag(df, "alarm2", True),
        _flag(df, "alarm1", True),
    ]
    return np.select(conditions, ["lost", "not_opened", "arrears", "alarm2", "alarm1"], default="normal").astype(object)


# ---------------------------------------------------------------------------------------------
# The live map and KPIs

_STATE_INPUTS = ("comm_state", "prepaid_enabled", "arrears", "relay_closed", "alarm1", "alarm2")


def _balance_fen(col=None):
    return sa.cast(sa.func.round((col if col is not None else meter_state.c.balance) * 100), sa.BigInteger)


def meter_states_frame(conn: sa.Connection) -> pd.DataFrame:
    """One row per meter in service (not removed), ordered building, floor, room, address: where it
    is (room meters have room_id), its map `state`, balance (integer fen) and last_seen. Meters
    never read have no state row and come out lost."""
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, meter.c.status, meter.c.room_id,
                   building.c.name.label("building"), room.c.floor, room.c.name.label("room"),
                   *[meter_state.c[c] for c in _STATE_INPUTS], _balance_fen().label("balance_fen"),
                   meter_state.c.last_seen)
         .select_from(meter.outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id)
                      .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id))
         .where(meter.c.status != "removed")
         .order_by(building.c.name, room.c.floor, room.c.name, meter.c.address))
    df = read_frame(conn, q)
    df["state"] = map_states(df)
    return df


def overview_version(conn: sa.Connection) -> str:
    """Changes whenever the map or a KPI may have changed: a poll wrote meter_state, a meter was
    added, opened or removed, a ledger entry was written. Cheap: the tick asks it first."""
    parts = conn.execute(sa.select(
        sa.select(sa.func.max(meter_state.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(meter).scalar_subquery(),
        sa.select(sa.func.max(meter.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(meter).where(meter.c.status == "opened").scalar_subquery(),
        sa.select(sa.func.count()).select_from(meter).where(meter.c.status == "removed").scalar_subquery(),
        sa.select(sa.func.max(bus_state.c.updated_at)).scalar_subquery(),
    )).one()
    ledger = _ledger_table(conn)
    sales = conn.execute(sa.select(sa.func.max(ledger.c.id), sa.func.count().filter(ledger.c.state == "failed"))
                         ).one() if ledger is not None else ()
    text = "|".join(str(p) for p in (*parts, *sales))
    return f"{zlib.crc32(text.encode()):08x}"


def gateway_counts(conn: sa.Connection) -> tuple[int, int]:
    """(online, total) gateways: a gateway is online when every one of its buses is online."""
    q = (sa.select(gateway.c.id,
                   sa.func.count(bus.c.id).label("buses"),
                   sa.func.count(bus_state.c.bus_id).filter(bus_state.c.comm_state == "online").label("online"))
         .select_from(gateway.outerjoin(bus, bus.c.gateway_id == gateway.c.id)
                      .outerjoin(bus_state, bus_state.c.bus_id == bus.c.id))
         .group_by(gateway.c.id))
    rows = conn.execute(q).all()
    return sum(1 for _, buses, online in rows if buses and online == buses), len(rows)


def energy_since(conn: sa.Connection, start: dt.datetime, lookback: dt.timedelta = dt.timedelta(days=1)) -> float:
    """kWh used by the room meters since `start` (naive UTC): per meter, its newest energy_total
    since `start` less its last reading before `start` (looked for within `lookback`), or less
    its first reading since `start` when there is none before. Registers are cumulative, so max
    is the newest and a meter swap (register back to 0) adds nothing rather than a negative."""
    after = sa.case((readings.c.ts >= start, readings.c.energy_total))
    before = sa.case((readings.c.ts < start, readings.c.energy_total))
    per_meter = (sa.select((sa.func.max(after) - sa.func.coalesce(sa.func.max(before), sa.func.min(after)))
                           .label("used"))
                 .select_from(readings.join(meter, meter.c.id == readings.c.meter_id))
                 .where(readings.c.ts >= start - lookback, meter.c.room_id.is_not(None))
                 .group_by(readings.c.meter_id)
                 .subquery())
    used = sa.case((per_meter.c.used > 0, per_meter.c.used), else_=0.0)
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(used), 0.0))).scalar_one()
    return float(total)


def _ledger_table(conn: sa.Connection) -> sa.Table | None:
    """The billing module's ledger, if this database has it (schema version 3 creates it; a database
    opened by an older program, or a site running without billing, may not)."""
    return ledger_entry if sa.inspect(conn).has_table("ledger_entry") else None


def sales_between(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> dict[str, Decimal]:
    """The sales of [start, end) (naive UTC) as the sales records count them (storage.desk.ledger_totals over
    SALES_KINDS): "sale" (gross), "refund" and "reversal" (signed, so usually negative) and "net", their sum.
    All 0.00 when the database has no ledger table (the billing module owns it, schema version 3)."""
    totals = ledger_totals(conn, since=start, until=end, kinds=list(SALES_KINDS)) \
        if _ledger_table(conn) is not None else {}
    out = {kind: totals.get(kind, Decimal("0.00")) for kind in SALES_KINDS}
    out["net"] = sum(out.values(), Decimal("0.00"))
    return out


def state_counts(states: pd.DataFrame) -> dict[str, int]:
    """Meters per map state (every state present, zero when none)."""
    counts = states["state"].value_counts() if not states.empty else {}
    return {s: int(counts.get(s, 0)) for s in MAP_STATES}


def overview_kpis(conn: sa.Connection, states: pd.DataFrame, day_start: dt.datetime,
                  day_end: dt.datetime) -> dict:
    """The KPI cards' figures. `states` is `meter_states_frame`; day bounds are the site's local
    day in naive UTC."""
    counts = state_counts(states)
    online_gw, total_gw = gateway_counts(conn)
    return {
        "meters": len(states), "online": len(states) - counts["lost"], "lost": counts["lost"],
        "states": counts,
        "gateways_online": online_gw, "gateways": total_gw,
        "sales_today": sales_between(conn, day_start, day_end),       # {"sale", "refund", "reversal", "net"}
        "energy_today_kwh": energy_since(conn, day_start),
    }


def tile_signature(meter_ids) -> str:
    """Identifies an ordered tile set: a tick may patch tiles in place only while it is unchanged."""
    arr = np.asarray(meter_ids, dtype=np.int64)
    return f"{len(arr)}-{zlib.crc32(arr.tobytes()):08x}"


# ---------------------------------------------------------------------------------------------
# One meter: the side panel

def meter_detail(conn: sa.Connection, meter_id: int) -> dict | None:
    """Where the meter is, how it is wired, its latest readings and its map state; None if unknown."""
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, meter.c.status, meter.c.profile, meter.c.unit,
                   building.c.name.label("building"), room.c.floor, room.c.name.label("room"),
                   gateway.c.name.label("gateway"), bus.c.bus_no, meter_state)
         .select_from(meter.join(bus, bus.c.id == meter.c.bus_id).join(gateway, gateway.c.id == bus.c.gateway_id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id)
                      .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id))
         .where(meter.c.id == meter_id))
    row = conn.execute(q).mappings().first()
    if row is None:
        return None
    d = dict(row)
    d["meter_id"] = meter_id  # meter_state's own meter_id is null for a meter never read
    d["state"] = map_state(d.get("comm_state") or "unknown", d["status"], d.get("prepaid_enabled"),
                           d.get("arrears"), d.get("relay_closed"), d.get("alarm1"), d.get("alarm2"))
    return d


def recent_commands(conn: sa.Connection, meter_id: int, limit: int = 10) -> pd.DataFrame:
    """The meter's newest remote commands, newest first."""
    cols = ("created_at", "kind", "state", "result", "operator", "finished_at")
    q = (sa.select(*[command.c[c] for c in cols]).where(command.c.meter_id == meter_id)
         .order_by(command.c.created_at.desc(), command.c.id.desc()).limit(limit))
    return pd.DataFrame(conn.execute(q).all(), columns=list(cols))
