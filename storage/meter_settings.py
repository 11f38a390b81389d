"""Per-meter settings: what we asked each meter to keep (meter_limit) and what it reported (meter_config)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from storage.schema import meter_config, meter_limit

# profile keys of a configuration block (collectors/profiles: acrel-ddsy1352, acrel-dtsy1352) -> meter_config
CONFIG_KEYS = {"alarm1_limit": "alarm1", "alarm2_limit": "alarm2", "overdraft_limit": "overdraft",
               "overload_limit": "overload_w", "tariff_mode": "tariff_mode"}


def record_meter_config(conn: sa.Connection, readings: list[dict], now: dt.datetime) -> int:
    """Keep the configuration read back in these readings (those that read a configuration block); returns rows."""
    rows = []
    for r in readings:
        if "alarm1_limit" not in r:
            continue
        row = {"meter_id": int(r["meter_id"]), "read_at": now}
        for key, column in CONFIG_KEYS.items():
            value = r.get(key)
            row[column] = None if value is None else (Decimal(value) if column in ("alarm1", "alarm2", "overdraft")
                                                       else int(value))
        rows.append(row)
    if not rows:
        return 0
    conn.execute(sa.delete(meter_config).where(meter_config.c.meter_id.in_([r["meter_id"] for r in rows])))
    conn.execute(meter_config.insert(), rows)
    return len(rows)


def config_of(conn: sa.Connection, meter_id: int) -> dict | None:
    """The meter's configuration as last read back, or None before its first read."""
    row = conn.execute(sa.select(meter_config).where(meter_config.c.meter_id == meter_id)).mappings().first()
    return dict(row) if row else None


def limit_of(conn: sa.Connection, meter_id: int) -> dict | None:
    """The limits last pushed to this meter on its own, or None (it follows the site's defaults)."""
    row = conn.execute(sa.select(meter_limit).where(meter_limit.c.meter_id == meter_id)).mappings().first()
    return dict(row) if row else None


def set_limit(conn: sa.Connection, meter_id: int, *, alarm1: Decimal, alarm2: Decimal, overload_w: int,
              overdraft: Decimal, command_id: int | None, operator: str, now: dt.datetime) -> None:
    conn.execute(sa.delete(meter_limit).where(meter_limit.c.meter_id == meter_id))
    conn.execute(meter_limit.insert().values(meter_id=meter_id, alarm1=alarm1, alarm2=alarm2, overload_w=overload_w,
                                             overdraft=overdraft, command_id=command_id, updated_at=now,
                                             operator=operator))
