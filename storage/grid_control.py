"""Queries of a transformer area's telecontrol and teleadjust (grid.control) and its automatic voltage control
(grid.avc): the automation row per area, the action log, the terminal's latest telemetry and its grid commands."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import sqlalchemy as sa

from storage.purposes import Purpose
from storage.schema import area_meter, command, grid_action, grid_automation, meter, meter_state, transformer_area

# The terminal's telemetry the automation reads (meter_state: the latest good reading of each device).
TELEMETRY_KEYS = ("voltage_a", "voltage_b", "voltage_c", "current_a", "current_b", "current_c", "power_total",
                  "reactive_total", "pf_total", "tap_position", "capacitor_steps", "capacity_mode",
                  *(f"breaker_{i}" for i in range(1, 9)))
ACTION_COLUMNS = ("id", "ts", "mode", "action", "before", "after", "reason_code", "params", "operator",
                  "command_id", "batch_id", "command_state", "command_result")
GRID_COMMAND_KINDS = ("tap", "capacity_mode", "breaker")


def area_row(conn: sa.Connection, area_id: int) -> dict | None:
    """The area's nameplate and its terminal (id, address, profile, status), or None when there is no such area."""
    terminal = meter.alias("terminal")
    q = (sa.select(transformer_area.c.id, transformer_area.c.name, transformer_area.c.rating_kva,
                   transformer_area.c.nominal_voltage, transformer_area.c.terminal_meter_id,
                   terminal.c.address.label("terminal_address"), terminal.c.profile.label("terminal_profile"),
                   terminal.c.status.label("terminal_status"))
         .select_from(transformer_area.outerjoin(terminal, terminal.c.id == transformer_area.c.terminal_meter_id))
         .where(transformer_area.c.id == int(area_id)))
    row = conn.execute(q).mappings().first()
    return None if row is None else dict(row)


def area_ids(conn: sa.Connection) -> list[int]:
    """Every area with a terminal (the ones automation can act on), by id."""
    q = (sa.select(transformer_area.c.id).where(transformer_area.c.terminal_meter_id.is_not(None))
         .order_by(transformer_area.c.id))
    return [int(r[0]) for r in conn.execute(q)]


def telemetry(conn: sa.Connection, meter_id: int) -> dict | None:
    """The terminal's latest reading (meter_state): ts (when the field was read), last_seen (the collector's clock
    when it recorded it), comm_state and TELEMETRY_KEYS, plus tap_count from its own keys (extra); None before its
    first reading."""
    q = sa.select(meter_state.c.ts, meter_state.c.last_seen, meter_state.c.comm_state, meter_state.c.extra,
                  *(meter_state.c[k] for k in TELEMETRY_KEYS)).where(meter_state.c.meter_id == int(meter_id))
    row = conn.execute(q).mappings().first()
    if row is None or row["ts"] is None:
        return None
    out = dict(row)
    try:
        extra = json.loads(out.pop("extra") or "{}")
    except ValueError:
        extra = {}
    count = extra.get("tap_count") if isinstance(extra, dict) else None
    out["tap_count"] = int(count) if isinstance(count, (int, float)) and count > 0 else None
    return out


# ---------------------------------------------------------------------------------------------
# the automation row
def automation(conn: sa.Connection, area_id: int) -> dict | None:
    row = conn.execute(sa.select(grid_automation).where(grid_automation.c.area_id == int(area_id))).mappings().first()
    return None if row is None else dict(row)


def insert_automation(conn: sa.Connection, area_id: int, values: dict, now: dt.datetime, by: str) -> dict:
    conn.execute(grid_automation.insert().values(area_id=int(area_id), updated_at=now, updated_by=by[:100], **values))
    return automation(conn, area_id)


def update_automation(conn: sa.Connection, area_id: int, **values) -> None:
    conn.execute(grid_automation.update().where(grid_automation.c.area_id == int(area_id)).values(**values))


# ---------------------------------------------------------------------------------------------
# the action log
def insert_action(conn: sa.Connection, *, ts: dt.datetime, area_id: int, mode: str, action: str, before=None,
                  after=None, reason_code: str, params: dict | None = None, operator: str,
                  command_id: int | None = None, batch_id: str | None = None) -> int:
    values = dict(ts=ts, area_id=int(area_id), mode=mode, action=action,
                  before=None if before is None else str(before)[:40], after=None if after is None else str(after)[:40],
                  reason_code=reason_code, params=json.dumps(params or {}, ensure_ascii=False, sort_keys=True,
                                                             default=str),
                  operator=operator[:100], command_id=command_id, batch_id=batch_id)
    return int(conn.execute(grid_action.insert().values(**values).returning(grid_action.c.id)).scalar_one())


def actions(conn: sa.Connection, area_id: int, limit: int = 50) -> pd.DataFrame:
    """The area's actions, newest first, with the state and result of the command each one queued."""
    q = (sa.select(grid_action.c.id, grid_action.c.ts, grid_action.c.mode, grid_action.c.action,
                   grid_action.c.before, grid_action.c.after, grid_action.c.reason_code, grid_action.c.params,
                   grid_action.c.operator, grid_action.c.command_id, grid_action.c.batch_id,
                   command.c.state.label("command_state"), command.c.result.label("command_result"))
         .select_from(grid_action.outerjoin(command, command.c.id == grid_action.c.command_id))
         .where(grid_action.c.area_id == int(area_id))
         .order_by(grid_action.c.ts.desc(), grid_action.c.id.desc()).limit(int(limit)))
    df = pd.DataFrame(conn.execute(q).mappings().all(), columns=list(ACTION_COLUMNS))
    df["params"] = [json.loads(p) if p else {} for p in df["params"]]
    return df


def count_actions(conn: sa.Connection, area_id: int, action: str, mode: str, since: dt.datetime) -> int:
    """How many `action`s of `mode` the area has had since `since` (a local day's start: the daily limit)."""
    q = (sa.select(sa.func.count()).select_from(grid_action)
         .where(grid_action.c.area_id == int(area_id), grid_action.c.action == action, grid_action.c.mode == mode,
                grid_action.c.command_id.is_not(None), grid_action.c.ts >= since))
    return int(conn.execute(q).scalar_one())


def last_action(conn: sa.Connection, area_id: int, action: str, mode: str | None = None) -> dict | None:
    """The area's latest `action` (of `mode`), with its command's state, result and finish time."""
    q = (sa.select(grid_action, command.c.state.label("command_state"), command.c.result.label("command_result"),
                   command.c.finished_at.label("command_finished_at"))
         .select_from(grid_action.outerjoin(command, command.c.id == grid_action.c.command_id))
         .where(grid_action.c.area_id == int(area_id), grid_action.c.action == action)
         .order_by(grid_action.c.ts.desc(), grid_action.c.id.desc()).limit(1))
    if mode is not None:
        q = q.where(grid_action.c.mode == mode)
    row = conn.execute(q).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["params"] = json.loads(out["params"]) if out["params"] else {}
    return out


# ---------------------------------------------------------------------------------------------
# the terminal's grid commands
def open_commands(conn: sa.Connection, meter_id: int) -> list[dict]:
    """The terminal's grid commands still queued or sent, oldest first."""
    q = (sa.select(command.c.id, command.c.kind, command.c.payload, command.c.state, command.c.operator,
                   command.c.created_at)
         .where(command.c.meter_id == int(meter_id), command.c.purpose == Purpose.GRID.value,
                command.c.state.in_(("queued", "sent")))
         .order_by(command.c.id))
    out = []
    for r in conn.execute(q).mappings():
        row = dict(r)
        row["payload"] = json.loads(row["payload"] or "{}")
        out.append(row)
    return out


def last_finished(conn: sa.Connection, meter_id: int) -> dt.datetime | None:
    """When the terminal's latest grid command was settled (acked, failed or expired), or None."""
    q = sa.select(sa.func.max(command.c.finished_at)).where(
        command.c.meter_id == int(meter_id), command.c.purpose == Purpose.GRID.value)
    return conn.execute(q).scalar()


def area_meter_addresses(conn: sa.Connection, area_id: int) -> list[str]:
    """The numbers of the meters the area feeds (not its terminal nor its master meter; not removed)."""
    area = transformer_area
    q = (sa.select(meter.c.address).join(area_meter, area_meter.c.meter_id == meter.c.id)
         .join(area, area.c.id == area_meter.c.area_id)
         .where(area.c.id == int(area_id), meter.c.status != "removed",
                sa.or_(area.c.terminal_meter_id.is_(None), meter.c.id != area.c.terminal_meter_id),
                sa.or_(area.c.master_meter_id.is_(None), meter.c.id != area.c.master_meter_id))
         .order_by(meter.c.address))
    return [r[0] for r in conn.execute(q)]
