"""Batches of remote commands (command_batch) and what the control page selects from: every meter's live state with
its building, floor, account and tariff; each batch's meters and the state of their latest command."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import sqlalchemy as sa

from storage.frames import read_frame
from storage.overview import map_states
from storage.schema import (
    account, account_meter, building, command, command_batch, meter, meter_state, meter_tariff, room,
)


def control_meters(conn: sa.Connection, now: dt.datetime) -> pd.DataFrame:
    """One row per meter in service: where it is, its account and tariff in force, its map `state` (the six
    overview states) and live state (balance in fen, relay, keep-power, alarm level, comm state, last seen)."""
    link = (sa.select(account_meter.c.meter_id, account_meter.c.account_id, account.c.holder_name)
            .join_from(account_meter, account).where(account_meter.c.removed_at.is_(None)).subquery())
    latest_tariff = (sa.select(meter_tariff.c.meter_id, sa.func.max(meter_tariff.c.id).label("mt_id"))
                     .where(meter_tariff.c.valid_from <= now).group_by(meter_tariff.c.meter_id).subquery())
    tariff_now = (sa.select(meter_tariff.c.meter_id, meter_tariff.c.tariff_id)
                  .join(latest_tariff, latest_tariff.c.mt_id == meter_tariff.c.id).subquery())
    balance_fen = sa.cast(sa.func.round(meter_state.c.balance * 100), sa.BigInteger)
    q = (sa.select(meter.c.id.label("meter_id"), meter.c.address, meter.c.status, meter.c.profile,
                   building.c.name.label("building"), room.c.floor, room.c.name.label("room"),
                   link.c.account_id, link.c.holder_name, tariff_now.c.tariff_id,
                   meter_state.c.comm_state, meter_state.c.prepaid_enabled, meter_state.c.arrears,
                   meter_state.c.relay_closed, meter_state.c.alarm1, meter_state.c.alarm2,
                   meter_state.c.keep_power, meter_state.c.forced_trip, meter_state.c.alarm_level,
                   balance_fen.label("balance_fen"), meter_state.c.last_seen)
         .select_from(meter.outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id)
                      .outerjoin(meter_state, meter_state.c.meter_id == meter.c.id)
                      .outerjoin(link, link.c.meter_id == meter.c.id)
                      .outerjoin(tariff_now, tariff_now.c.meter_id == meter.c.id))
         .where(meter.c.status != "removed")
         .order_by(building.c.name, room.c.floor, room.c.name, meter.c.address))
    df = read_frame(conn, q)
    df["state"] = map_states(df)
    return df


def insert_batch(conn: sa.Connection, *, batch_id: str, action: str, reason: str | None, operator: str, source: str,
                 selection: dict, meters: int, now: dt.datetime) -> None:
    conn.execute(command_batch.insert().values(
        id=batch_id, action=action, reason=reason, operator=operator[:100], source=source,
        selection=json.dumps(selection, ensure_ascii=False, sort_keys=True, default=str), meters=meters,
        created_at=now))


def batch_by_id(conn: sa.Connection, batch_id: str) -> dict | None:
    row = conn.execute(sa.select(command_batch).where(command_batch.c.id == batch_id)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["selection"] = json.loads(out["selection"] or "{}")
    return out


def recent_batches(conn: sa.Connection, limit: int = 20) -> list[dict]:
    q = sa.select(command_batch).order_by(command_batch.c.created_at.desc(), command_batch.c.id).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def batch_commands(conn: sa.Connection, batch_id: str) -> pd.DataFrame:
    """Every command of the batch, oldest first, with its meter's number and place."""
    q = (sa.select(command.c.id.label("command_id"), command.c.meter_id, command.c.kind, command.c.state,
                   command.c.result, command.c.error, command.c.attempts, command.c.created_at,
                   command.c.sent_at, command.c.finished_at, meter.c.address, building.c.name.label("building"),
                   room.c.floor, room.c.name.label("room"))
         .select_from(command.join(meter, meter.c.id == command.c.meter_id)
                      .outerjoin(room, meter.c.room_id == room.c.id)
                      .outerjoin(building, room.c.building_id == building.c.id))
         .where(command.c.batch_id == batch_id).order_by(command.c.id))
    return read_frame(conn, q)
