"""The lost-contact reports (失联表 / 失联通讯管理机): what is lost now, since when (site time) and for how long."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core.clock import site_time
from storage import lost_contact as sql

MAX_LISTED = 50     # meter numbers a gateway's row names; the count says how many there are


def _hours(since: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if since is None else round(max((now - since).total_seconds(), 0.0) / 3600.0, 2)


def lost_meters(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime, building: str | None = None) -> list[dict]:
    """Meters lost now, longest first: meter, building, floor, room, gateway, bus_no, lost_since and last_seen
    (site time), lost_hours, cause ("gateway" when its whole bus is lost with it, else "meter"), last_error."""
    with engine.connect() as conn:
        rows = sql.lost_meters(conn, building)
    for r in rows:
        r["lost_hours"] = _hours(r["lost_since"], now)
        r["lost_since"], r["last_seen"] = site_time(r["lost_since"], zone), site_time(r["last_seen"], zone)
        r["cause"] = "gateway" if r.pop("bus_lost") else "meter"
    return rows


def lost_gateways(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime) -> list[dict]:
    """Gateways with a lost bus, longest first: gateway, host, lost_buses, buses, lost_since (site time),
    lost_hours, meters_taken (how many meters the lost buses take with them), meters (their numbers, the first
    MAX_LISTED), last_error."""
    with engine.connect() as conn:
        rows = sql.lost_gateways(conn)
    for r in rows:
        numbers = r.pop("meters")
        r["lost_hours"] = _hours(r["lost_since"], now)
        r["lost_since"] = site_time(r["lost_since"], zone)
        r["meters_taken"] = len(numbers)
        r["meters"] = " ".join(numbers[:MAX_LISTED]) + (" …" if len(numbers) > MAX_LISTED else "")
    return rows
