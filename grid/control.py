"""Telecontrol (遥控) and teleadjust (遥调) of a transformer area, by hand: open and close its outlet breakers, trip
its customers' meters in arrears, set the tap and the capacity mode, switch its automatic control on and off.

Each command goes through the command outbox (purpose grid) to the area's terminal: the dispatcher sends it as a
secure frame (TAP_SET, CAPACITY_MODE, BREAKER; counter = the terminal's command sequence) and confirms it only when
the state it sets reads back (collectors.dispatch.expected_state): a breaker "open" that reads back closed is a
failed command and a command_failed alarm on the terminal. Who acts comes in as an Actor (billing.credit): the
permission (grid.control for breakers and the arrears trip, grid.adjust for the rest) is checked here first; a
refusal is written to the operation log and nothing else is written or queued. A reason is required. Each action
is one grid_action row (mode manual, the operator's reason), its command and its operation-log row, in one
transaction. grid.avc writes its automatic actions to the same log; actions() reads both.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import NamedTuple

import pandas as pd

from billing.context import BillingContext
from billing.credit import Actor, authorize, reason_text
from billing.errors import BillingError
from core import permissions as P
from core.text import t
from grid.power_quality import DEFAULT_NOMINAL_V, THREE_PHASE_BAND
from storage import alarms, audit
from storage import grid_control as store
from storage.outbox import insert_command, meters_transaction, next_command_seq
from storage.purposes import Purpose

AUTO_OPERATOR = "avc"           # the automation's name in the action log and on its commands
MODES = ("small", "large")      # capacity mode: 0 small, 1 large (the terminal's register)
BREAKER_ACTIONS = ("open", "close")
OUTLETS = range(1, 9)
MAX_TAP = 99                    # a position above any tap changer's (when the terminal has not said its count)
STEP_FRACTION = 0.025           # each tap step moves the secondary voltage by 2.5 % of nominal

# An area's automation settings on a new row (grid_automation): the three-phase band at the terminal (+-7 % of the
# nominal phase voltage), a first delay and a delay between steps, a daily operation limit, blocking below 70 % of
# nominal, and the capacity mode by load (large above 80 % of the small rating for 5 minutes, small below 30 %).
DEFAULTS = {"enabled": False, "band_low": THREE_PHASE_BAND[0], "band_high": THREE_PHASE_BAND[1],
            "first_delay_s": 60, "step_delay_s": 30, "daily_limit": 20, "undervoltage": 0.70,
            "capacity_auto": True, "small_kva": None, "capacity_up": 0.80, "capacity_down": 0.30,
            "capacity_hold_s": 300}
SETTINGS = tuple(DEFAULTS)
TAP_STUCK = alarms.AVC_TAP_STUCK   # the area is held until its tap moves or the automation is switched on


class ControlError(BillingError):
    """A telecontrol or teleadjust the operator can fix: the text is the catalogs' grid_control.error.<code>."""

    @property
    def key(self) -> str:
        return f"grid_control.error.{self.code}"


# ---------------------------------------------------------------------------------------------
# reading input
def _int(value, code: str, low: int, high: int) -> int:
    """A whole number typed or given (no bools, no fractions, ASCII digits only), within low..high."""
    if isinstance(value, bool) or value is None:
        raise ControlError(code, low=low, high=high)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ControlError(code, low=low, high=high)
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 6 or not text.isascii() or not text.isdigit():
            raise ControlError(code, low=low, high=high)
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        raise ControlError(code, low=low, high=high)
    return value


def _area_id(value) -> int:
    try:
        return _int(value, "area_unknown", 1, 2**31 - 1)
    except ControlError:
        raise ControlError("area_unknown") from None


def _reason(reason) -> str:
    text = reason_text(reason, False)
    if not text:
        raise ControlError("reason_required")
    return text


def _area(conn, area_id: int, need_terminal: bool = True) -> dict:
    area = store.area_row(conn, area_id)
    if area is None:
        raise ControlError("area_unknown")
    if need_terminal and (area["terminal_meter_id"] is None or area["terminal_status"] in (None, "removed")):
        raise ControlError("no_terminal", area=area["name"])
    return area


def nominal_of(area: dict) -> float:
    """The area's nominal phase voltage (220 or 230 V; 220 where none is given)."""
    v = area.get("nominal_voltage")
    return float(v) if v else DEFAULT_NOMINAL_V


# ---------------------------------------------------------------------------------------------
# the automation row
def automation_row(conn, area_id: int, now: dt.datetime, *, enabled: bool | None = None,
                   by: str = AUTO_OPERATOR) -> dict:
    """The area's grid_automation row, created with DEFAULTS (enabled as given, else off) when it has none."""
    row = store.automation(conn, area_id)
    if row is None:
        values = dict(DEFAULTS)
        if enabled is not None:
            values["enabled"] = bool(enabled)
        row = store.insert_automation(conn, area_id, values, now, by)
    return row


def band(area: dict, settings: dict) -> dict:
    """The band the automation keeps the terminal's phase voltages in, and one tap step, in volts."""
    nominal = nominal_of(area)
    return {"nominal": nominal, "low": nominal * (1 + float(settings["band_low"])),
            "high": nominal * (1 + float(settings["band_high"])), "step": nominal * STEP_FRACTION,
            "undervoltage": nominal * float(settings["undervoltage"])}


# ---------------------------------------------------------------------------------------------
# manual commands
def _queue(ctx: BillingContext, actor: Actor, area_id: int, *, kind: str, payload: dict, action: str, before,
           after, why: str, also=None) -> int:
    """Queue the command with its action row and operation-log row; `also(conn, now, command_id)` writes what
    goes with it in the same transaction."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        area = _area(conn, area_id)
    mid = int(area["terminal_meter_id"])
    with meters_transaction(ctx.engine, [mid]) as conn:
        command_id = insert_command(conn, meter_id=mid, kind=kind, purpose=Purpose.GRID, payload=payload,
                                    counter=next_command_seq(conn, mid), operator=actor.username[:100], now=now)
        store.insert_action(conn, ts=now, area_id=area_id, mode="manual", action=action, before=before, after=after,
                            reason_code="operator", params={"reason": why}, operator=actor.username,
                            command_id=command_id)
        audit.record(conn, operator=actor.username[:100], action="grid.command", target=f"area:{area_id}", ts=now,
                     before=None if before is None else {"state": before},
                     after={"action": action, "state": after, "command": command_id, "reason": why, **payload},
                     source=actor.address or actor.channel)
        if also is not None:
            also(conn, now, command_id)
    ctx.commands_queued()
    return command_id


def _telemetry(ctx: BillingContext, area_id: int) -> tuple[dict, dict]:
    with ctx.engine.connect() as conn:
        area = _area(conn, area_id)
        return area, store.telemetry(conn, area["terminal_meter_id"]) or {}


def queue_breaker(ctx: BillingContext, actor: Actor, area_id, outlet, action, reason) -> int:
    """Open or close outlet breaker `outlet` (1..8) of the area's terminal; the command's id."""
    authorize(ctx, actor, P.GRID_CONTROL, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    outlet = _int(outlet, "outlet_invalid", OUTLETS.start, OUTLETS.stop - 1)
    if action not in BREAKER_ACTIONS:
        raise ControlError("action_unknown")
    _, seen = _telemetry(ctx, area_id)
    closed = seen.get(f"breaker_{outlet}")
    before = None if closed is None else ("closed" if closed else "open")
    return _queue(ctx, actor, area_id, kind="breaker", payload={"outlet": outlet, "action": int(action == "close")},
                  action=f"breaker_{action}", before=before, after="closed" if action == "close" else "open",
                  why=why)


def queue_tap(ctx: BillingContext, actor: Actor, area_id, position, reason) -> int:
    """Set the area's tap to `position` (1..the terminal's tap count); the command's id."""
    authorize(ctx, actor, P.GRID_ADJUST, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    _, seen = _telemetry(ctx, area_id)
    position = _int(position, "tap_invalid", 1, seen.get("tap_count") or MAX_TAP)
    return _queue(ctx, actor, area_id, kind="tap", payload={"position": position}, action="tap",
                  before=seen.get("tap_position"), after=position, why=why)


class CapacityQueued(NamedTuple):
    """A capacity mode set by hand: its command, and whether the area's automatic capacity mode was switched off
    for it (the operator is told)."""
    command_id: int
    capacity_auto_off: bool


def queue_capacity_mode(ctx: BillingContext, actor: Actor, area_id, mode, reason) -> CapacityQueued:
    """Switch the area's transformer to its small or large capacity. The hand setting holds: where the automation
    is on with the capacity mode by load (capacity_auto), that is switched off in the same transaction (the tap
    automation stays as it is), as an action row (settings, reason capacity_by_hand) and an operation-log row
    (grid.settings); "Automatic on" (set_automation) switches it on again."""
    authorize(ctx, actor, P.GRID_ADJUST, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    if mode not in MODES:
        raise ControlError("mode_unknown")
    _, seen = _telemetry(ctx, area_id)
    now_mode = seen.get("capacity_mode")
    before = MODES[now_mode] if now_mode in (0, 1) else None
    switched_off = []

    def hold_by_hand(conn, now: dt.datetime, command_id: int) -> None:
        row = automation_row(conn, area_id, now, enabled=False, by=actor.username)
        if not (row["enabled"] and row["capacity_auto"]):
            return
        store.update_automation(conn, area_id, capacity_auto=False, load_since=None, load_side=None,
                                updated_at=now, updated_by=actor.username[:100])
        store.insert_action(conn, ts=now, area_id=area_id, mode="manual", action="settings", before="on",
                            after="off", reason_code="capacity_by_hand",
                            params={"reason": why, "settings": {"capacity_auto": False}, "mode": mode},
                            operator=actor.username, command_id=None)
        audit.record(conn, operator=actor.username[:100], action="grid.settings", target=f"area:{area_id}", ts=now,
                     before={"settings": {"capacity_auto": True}},
                     after={"settings": {"capacity_auto": False}, "reason": why, "capacity_mode": mode,
                            "command": command_id, "why": "capacity_by_hand"},
                     source=actor.address or actor.channel)
        switched_off.append(True)

    command_id = _queue(ctx, actor, area_id, kind="capacity_mode", payload={"mode": MODES.index(mode)},
                        action="capacity_mode", before=before, after=mode, why=why, also=hold_by_hand)
    return CapacityQueued(command_id, bool(switched_off))


def arrears_meters(ctx: BillingContext, area_id: int) -> list[str]:
    """The numbers of the area's prepaid meters in arrears (the arrears bit, or no money left) not tripped yet."""
    from billing.control import live_meters
    with ctx.engine.connect() as conn:
        fed = set(store.area_meter_addresses(conn, area_id))
    df = live_meters(ctx)
    df = df[df["address"].isin(fed)]
    owing = df["arrears"].fillna(False).astype(bool) | (df["balance_fen"].fillna(1) <= 0)
    owing &= df["prepaid_enabled"].fillna(True).astype(bool) & ~df["forced_trip"].fillna(False).astype(bool)
    return sorted(df[owing]["address"])


def trip_arrears(ctx: BillingContext, actor: Actor, area_id, reason) -> str:
    """Trip every meter of the area in arrears, as one batch of relay commands (billing.control.queue_batch,
    which also asks relay.batch); the batch id."""
    from billing.control import Selection, queue_batch
    authorize(ctx, actor, P.GRID_CONTROL, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    with ctx.engine.connect() as conn:
        _area(conn, area_id, need_terminal=False)
    meters = arrears_meters(ctx, area_id)
    if not meters:
        raise ControlError("no_arrears")
    result = queue_batch(ctx, actor, Selection(meters=tuple(meters)), "trip", why, confirm=True)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        store.insert_action(conn, ts=now, area_id=area_id, mode="manual", action="arrears_trip", before=None,
                            after=len(result.meters), reason_code="operator",
                            params={"reason": why, "meters": len(result.meters)}, operator=actor.username,
                            batch_id=result.batch_id)
    return result.batch_id


def set_automation(ctx: BillingContext, actor: Actor, area_id, enabled, reason, *, events=None) -> None:
    """Switch the area's automatic control (tap by voltage, capacity mode by load) on or off. Switching it on
    switches the capacity mode by load on too (a capacity mode set by hand switched it off), and lifts a block for
    a stuck tap changer (the operator has had it repaired): its alarm closes, the action row and the operation-log
    row name the operator and the alarm, and the close goes out on ALARM_CHANGED on `events`
    (core.events.EventBus) once committed. A block for undervoltage or overcurrent stays: it lasts as long as the
    voltage or current does (grid.avc lifts it)."""
    authorize(ctx, actor, P.GRID_ADJUST, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    if not isinstance(enabled, bool):
        raise ControlError("enabled_invalid")
    now = ctx.now()
    closed: list = []
    with ctx.engine.begin() as conn:
        _area(conn, area_id)
        row = automation_row(conn, area_id, now, enabled=False, by=actor.username)
        was = bool(row["enabled"])
        values = {"enabled": enabled, "updated_at": now, "updated_by": actor.username[:100],
                  "out_since": None, "out_side": None, "load_since": None, "load_side": None}
        unblocked = None
        if enabled:
            values["capacity_auto"] = True
            if row["blocked"] == "tap_stuck":
                unblocked = row["blocked"]
                values.update(blocked=None, blocked_at=None, blocked_position=None)
            closed = [alarms.change_of(a, False) for a in alarms.open_alarms(conn, TAP_STUCK, subject=("area",
                                                                                                        area_id))]
            alarms.close_alarm(conn, TAP_STUCK, ("area", area_id), now)
        store.update_automation(conn, area_id, **values)
        action = "automation_on" if enabled else "automation_off"
        extra = {}
        if unblocked:
            extra["unblocked"] = unblocked
        if closed:
            extra["alarms_closed"] = [c.id for c in closed]
        if enabled and not row["capacity_auto"]:
            extra["capacity_auto"] = "on"
        store.insert_action(conn, ts=now, area_id=area_id, mode="manual", action=action,
                            before="on" if was else "off", after="on" if enabled else "off", reason_code="operator",
                            params={"reason": why, **extra}, operator=actor.username)
        audit.record(conn, operator=actor.username[:100],
                     action="grid.automation_on" if enabled else "grid.automation_off", target=f"area:{area_id}",
                     ts=now, before={"enabled": was, "blocked": row["blocked"], "capacity_auto": row["capacity_auto"]},
                     after={"enabled": enabled, "reason": why, **({"capacity_auto": True} if enabled else {}),
                            **({"alarms_closed": [c.id for c in closed]} if closed else {})},
                     source=actor.address or actor.channel)
    if closed and events is not None:
        from core.events import ALARM_CHANGED
        events.publish(ALARM_CHANGED, alarms.AlarmChanges(now, tuple(closed)))


# What an operator may change of the automation, and the range of each (fractions of the nominal voltage or of the
# small rating; seconds; operations). capacity_auto is on or off; small_kva may be None (half the area's rating).
SETTING_RANGES = {"band_low": (-0.20, -0.01), "band_high": (0.01, 0.20), "first_delay_s": (0, 3600),
                  "step_delay_s": (0, 3600), "daily_limit": (1, 200), "undervoltage": (0.30, 0.95),
                  "small_kva": (1.0, 100_000.0), "capacity_up": (0.10, 2.00), "capacity_down": (0.0, 1.00),
                  "capacity_hold_s": (0, 86_400)}
INTEGER_SETTINGS = ("first_delay_s", "step_delay_s", "daily_limit", "capacity_hold_s")


def _number(value, name: str):
    """A setting as typed or given: ASCII digits with an optional sign and point, within its range."""
    low, high = SETTING_RANGES[name]
    bad = ControlError("setting_invalid", setting=name, low=low, high=high)
    if isinstance(value, bool) or value is None:
        raise bad
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] in ("+", "-") else text
        if not text or len(text) > 12 or not text.isascii() or not body.replace(".", "", 1).isdigit():
            raise bad
        value = float(text)
    if not isinstance(value, (int, float)) or not low <= value <= high or not math.isfinite(value):
        raise bad
    if name in INTEGER_SETTINGS:
        if value != int(value):
            raise bad
        return int(value)
    return float(value)


def set_settings(ctx: BillingContext, actor: Actor, area_id, settings: dict, reason) -> dict:
    """Change the area's automation settings (any of SETTING_RANGES, and capacity_auto on or off; small_kva None
    for half the area's rating); all or nothing, audited; the settings now in force."""
    authorize(ctx, actor, P.GRID_ADJUST, f"area:{str(area_id)[:20]}")
    why = _reason(reason)
    area_id = _area_id(area_id)
    if not isinstance(settings, dict) or not settings:
        raise ControlError("setting_unknown", setting="-")
    values = {}
    for name, value in settings.items():
        if name == "capacity_auto":
            if not isinstance(value, bool):
                raise ControlError("enabled_invalid")
            values[name] = value
        elif name == "small_kva" and value in (None, ""):
            values[name] = None
        elif name in SETTING_RANGES:
            values[name] = _number(value, name)
        else:
            raise ControlError("setting_unknown", setting=str(name)[:30])
    now = ctx.now()
    with ctx.engine.begin() as conn:
        _area(conn, area_id)
        row = automation_row(conn, area_id, now, enabled=False, by=actor.username)
        merged = {**{k: row[k] for k in SETTINGS}, **values}
        if merged["band_high"] - merged["band_low"] < 2 * STEP_FRACTION:
            raise ControlError("band_too_narrow", most=round(2 * STEP_FRACTION * 100, 1))
        if merged["capacity_down"] >= merged["capacity_up"]:
            raise ControlError("capacity_thresholds")
        before = {k: row[k] for k in values}
        store.update_automation(conn, area_id, updated_at=now, updated_by=actor.username[:100], **values)
        store.insert_action(conn, ts=now, area_id=area_id, mode="manual", action="settings", before=None, after=None,
                            reason_code="operator", params={"reason": why, "settings": values},
                            operator=actor.username)
        audit.record(conn, operator=actor.username[:100], action="grid.settings", target=f"area:{area_id}", ts=now,
                     before={"settings": before}, after={"settings": values, "reason": why},
                     source=actor.address or actor.channel)
    return {k: merged[k] for k in SETTINGS}


# ---------------------------------------------------------------------------------------------
# reading
def control_state(ctx: BillingContext, area_id) -> dict:
    """The area's control at a glance: automation on or off (and why it is held), its band in volts and settings,
    the terminal's tap, tap count, capacity mode, breakers and capacitor steps as last read, and the commands
    still on their way."""
    area_id = _area_id(area_id)
    with ctx.engine.connect() as conn:
        area = _area(conn, area_id, need_terminal=False)
        row = store.automation(conn, area_id)
        mid = area["terminal_meter_id"]
        seen = (store.telemetry(conn, mid) or {}) if mid is not None else {}
        pending = store.open_commands(conn, mid) if mid is not None else []
    settings = {k: (row or DEFAULTS)[k] for k in SETTINGS}
    mode = seen.get("capacity_mode")
    return {
        "area_id": area_id, "name": area["name"], "terminal": area["terminal_address"],
        "enabled": bool(settings["enabled"]), "blocked": row["blocked"] if row else None,
        "blocked_at": row["blocked_at"] if row else None, "settings": settings, "band": band(area, settings),
        "tap_position": seen.get("tap_position"), "tap_count": seen.get("tap_count"),
        "capacity_mode": MODES[mode] if mode in (0, 1) else None,
        "capacitor_steps": seen.get("capacitor_steps"),
        "breakers": {i: seen.get(f"breaker_{i}") for i in OUTLETS},
        "telemetry_at": seen.get("ts"), "comm_state": seen.get("comm_state"),
        "pending": [{"id": int(c["id"]), "kind": c["kind"], "payload": c["payload"], "state": c["state"],
                     "operator": c["operator"], "created_at": c["created_at"]} for c in pending],
    }


def reason_words(code: str, params: dict, lang: str = "en") -> str:
    """An action's reason in `lang` (grid_control.reason.<code> with its parameters); unknown: code and params."""
    try:
        return t(f"grid_control.reason.{code}", lang, **{k: "" if v is None else v for k, v in (params or {}).items()})
    except (KeyError, IndexError, ValueError):
        return f"{code} {params or {}}"


VALUE_WORDS = ("closed", "open", "small", "large", "on", "off")   # grid_control.value.<word>


def _words(key: str, lang: str, fallback) -> str | None:
    from core.text import LANGUAGES, catalog
    return catalog(lang if lang in LANGUAGES else "en").get(key, fallback)


def actions(ctx: BillingContext, area_id, limit: int = 50, lang: str = "en") -> pd.DataFrame:
    """The area's actions, newest first: ts (naive UTC) and local_ts (the site's), mode (auto | manual), action,
    before, after (codes: a tap position, closed / open, small / large, on / off, a count), reason (in `lang`),
    reason_code and params, operator, command_id, command_state (queued, sent, acked, failed, expired; None for an
    action without a command) and command_result, batch_id; and in `lang`: mode_text, action_text, before_text,
    after_text."""
    area_id = _area_id(area_id)
    try:
        limit = max(1, min(int(limit), 1000))
    except (TypeError, ValueError, OverflowError):
        limit = 50
    with ctx.engine.connect() as conn:
        df = store.actions(conn, area_id, limit)
    df["reason"] = [reason_words(c, p, lang) for c, p in zip(df["reason_code"], df["params"])]
    df["local_ts"] = [ctx.local(ts) if ts is not None else None for ts in df["ts"]]
    df["mode_text"] = [_words(f"grid_control.mode.{m}", lang, m) for m in df["mode"]]
    df["action_text"] = [_words(f"grid_control.action.{a}", lang, a) for a in df["action"]]
    for col in ("before", "after"):
        df[f"{col}_text"] = [_words(f"grid_control.value.{v}", lang, v) if v in VALUE_WORDS else v for v in df[col]]
    return df[["ts", "local_ts", "mode", "action", "before", "after", "reason", "reason_code", "params", "operator",
               "command_id", "command_state", "command_result", "batch_id", "id", "mode_text", "action_text",
               "before_text", "after_text"]]
