"""Automatic voltage control of the transformer areas (自动调压): the "avc" job, run after every poll cycle on the
terminals' latest telemetry (meter_state), with the injected clock.

Per area whose automation is on (grid_automation.enabled; grid.control.set_automation switches it):

- Tap by voltage. The terminal's phase voltages are kept in the band (three-phase +-7 % of the area's nominal
  phase voltage). When a phase has been out of the band for first_delay_s, the tap moves ONE step toward it
  (a higher position raises the voltage by 2.5 % of nominal), then waits step_delay_s before the next step. Dead
  band: no step when one step would take another phase to within half a step of the other limit, or past it (it
  would only swing back). At most daily_limit automatic steps per local day. No step while a phase is below
  `undervoltage` of nominal (the supply is lost: not a tap matter) or a phase current is above the transformer's
  rated current (an avc_blocked alarm while it lasts). A tap that did not move after a command (the terminal
  answered but the position read back is not the target: collectors.dispatch fails it NOT_EXECUTED) opens an
  avc_tap_stuck alarm and the area gets no automatic command until the position moves or an operator switches
  the automation on again.
- Capacity mode by load, with its own hysteresis: large when the load (kVA) has stayed above capacity_up of the
  small rating for capacity_hold_s, small when it has stayed below capacity_down of it as long; only while
  capacity_auto is on (a capacity mode set by hand switches it off, grid.control.queue_capacity_mode, so the hand
  setting holds; "Automatic on" switches it on again).
- Capacitor steps are the terminal's local controller's (by reactive power): each change seen is logged with the
  reactive power and power factor as its reason.

Nothing is sent while a grid command to the terminal is still on its way, nor before a reading taken after the
last one was settled. Every automatic action (and each hold: daily limit, end of the tap range, dead band) is a
grid_action row with its reason; grid.control.actions shows them. The commands go through the outbox (purpose
grid) and the dispatcher like the operator's.
"""
from __future__ import annotations

import datetime as dt
import logging
import math

from billing.context import BillingContext
from grid.control import AUTO_OPERATOR, MAX_TAP, MODES, TAP_STUCK, automation_row, band, nominal_of
from grid.line_loss import local_midnight
from storage import alarms
from storage import grid_control as store
from storage.outbox import insert_command, meters_transaction, next_command_seq
from storage.purposes import Purpose

log = logging.getLogger(__name__)

JOB = "avc"
BLOCKED = alarms.AVC_BLOCKED
PHASES = ("a", "b", "c")


def _float(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _seconds(now: dt.datetime, since: dt.datetime | None) -> float:
    return 0.0 if since is None else (now - since).total_seconds()


class AutomaticVoltageControl:
    """The rule engine. run_once() looks at every area with a terminal once; its clock is ctx's."""

    def __init__(self, ctx: BillingContext, *, stale_after_s: float = 300.0, enable_new_areas: bool = False,
                 events=None):
        self.ctx = ctx
        self.engine = ctx.engine
        self.stale_after = dt.timedelta(seconds=stale_after_s)
        self.enable_new_areas = enable_new_areas   # an area's row created on (the demo) or off (a site)
        self.events = events   # core.events.EventBus: the alarms opened and closed go out on ALARM_CHANGED
        self._changes: list = []

    def run_once(self) -> dict:
        now = self.ctx.now()
        summary = {"areas": 0, "taps": 0, "capacity": 0, "capacitors": 0, "held": 0, "errors": 0}
        with self.engine.connect() as conn:
            ids = store.area_ids(conn)
        changes = []
        for area_id in ids:
            self._changes = []
            try:
                self._area(area_id, now, summary)
                changes += self._changes   # committed
            except Exception:   # one area's trouble is its own; the others are still looked at
                summary["errors"] += 1
                log.exception("automatic voltage control of area %s failed", area_id)
        if summary["taps"] or summary["capacity"]:
            self.ctx.commands_queued()
        if changes and self.events is not None:
            from core.events import ALARM_CHANGED
            self.events.publish(ALARM_CHANGED, alarms.AlarmChanges(now, tuple(changes)))
        summary["alarms"] = len(changes)
        return summary

    def _open_alarm(self, conn, kind: str, area: dict, level, code: str, params: dict, now: dt.datetime) -> None:
        subject = ("area", area["id"])
        was_open = alarms.open_alarms(conn, kind, subject=subject)
        alarm_id = alarms.open_alarm(conn, kind, subject, level, code, params, now)
        if not was_open:
            self._changes.append(alarms.change_of(alarms.alarm_by_id(conn, alarm_id), True))

    def _close_alarm(self, conn, kind: str, area: dict, now: dt.datetime) -> None:
        subject = ("area", area["id"])
        for alarm in alarms.open_alarms(conn, kind, subject=subject):
            self._changes.append(alarms.change_of(alarm, False))
        alarms.close_alarm(conn, kind, subject, now)

    # -----------------------------------------------------------------------------------------
    def _area(self, area_id: int, now: dt.datetime, summary: dict) -> None:
        with self.engine.connect() as conn:
            area = store.area_row(conn, area_id)
        if area is None or area["terminal_meter_id"] is None or area["terminal_status"] == "removed":
            return
        mid = int(area["terminal_meter_id"])
        with meters_transaction(self.engine, [mid]) as conn:   # the terminal's lock: its commands queue in order
            row = automation_row(conn, area_id, now, enabled=self.enable_new_areas)
            seen = store.telemetry(conn, mid)
            summary["areas"] += 1
            if seen is None or seen["comm_state"] == "lost" or seen["last_seen"] is None \
                    or now - seen["last_seen"] > self.stale_after:
                return
            self._capacitors(conn, area, row, seen, now, summary)
            if not row["enabled"]:
                return
            if store.open_commands(conn, mid):
                return   # what is on its way first: its read-back says where the tap is
            finished = store.last_finished(conn, mid)
            if finished is not None and min(seen["ts"], seen["last_seen"]) < finished:
                return   # a reading taken after the last command first (its voltages are the new tap's)
            if self._tap(conn, area, row, seen, now, summary):
                return
            self._capacity(conn, area, row, seen, now, summary)

    def _update(self, conn, area_id: int, row: dict, **values) -> None:
        store.update_automation(conn, area_id, **values)
        row.update(values)

    def _log(self, conn, area: dict, now: dt.datetime, action: str, reason: str, params: dict, *, before=None,
             after=None, command_id: int | None = None) -> None:
        store.insert_action(conn, ts=now, area_id=area["id"], mode="auto", action=action, before=before, after=after,
                            reason_code=reason, params=params, operator=AUTO_OPERATOR, command_id=command_id)

    def _queue(self, conn, area: dict, kind: str, payload: dict, now: dt.datetime) -> int:
        mid = int(area["terminal_meter_id"])
        return insert_command(conn, meter_id=mid, kind=kind, purpose=Purpose.GRID, payload=payload,
                              counter=next_command_seq(conn, mid), operator=AUTO_OPERATOR, now=now)

    # -----------------------------------------------------------------------------------------
    def _capacitors(self, conn, area: dict, row: dict, seen: dict, now: dt.datetime, summary: dict) -> None:
        """Log a change of the terminal's capacitor steps (its own controller's, by reactive power)."""
        steps = seen.get("capacitor_steps")
        if steps is None:
            return
        before = row.get("capacitor_steps")
        if before is not None and int(before) != int(steps):
            q, pf = _float(seen.get("reactive_total")), _float(seen.get("pf_total"))
            self._log(conn, area, now, "capacitor", "reactive_power",
                      {"kvar": None if q is None else round(q, 1), "pf": None if pf is None else round(pf, 3)},
                      before=bin(int(before)).count("1"), after=bin(int(steps)).count("1"))
            summary["capacitors"] += 1
        if before is None or int(before) != int(steps):
            self._update(conn, area["id"], row, capacitor_steps=int(steps))

    def _hold(self, conn, area: dict, row: dict, now: dt.datetime, reason: str, params: dict, summary: dict) -> None:
        """A step the rules hold back, logged once per excursion (and per local day for the daily limit)."""
        last = store.last_action(conn, area["id"], "held", "auto")
        since = row["out_since"] or now
        if reason == "daily_limit":
            since = max(since, local_midnight(self.ctx.local_day(now), self.ctx.tz))
        if last is None or last["reason_code"] != reason or last["ts"] < since:
            self._log(conn, area, now, "held", reason, params)
            summary["held"] += 1

    def _stuck(self, conn, area: dict, row: dict, seen: dict, now: dt.datetime) -> bool:
        """True while the area is held for a stuck tap changer: opened when the latest automatic tap command came
        back NOT_EXECUTED (after the operator last switched the automation on), cleared when the tap moves."""
        position = seen.get("tap_position")
        if row["blocked"] == "tap_stuck":
            if position is None or row["blocked_position"] is None or int(position) == int(row["blocked_position"]):
                return True
            self._update(conn, area["id"], row, blocked=None, blocked_at=None, blocked_position=None,
                         out_since=None, out_side=None)
            self._close_alarm(conn, TAP_STUCK, area, now)
            self._log(conn, area, now, "unblocked", "tap_moved", {"position": position})
            return False
        last = store.last_action(conn, area["id"], "tap", "auto")
        if (last is None or last["command_state"] != "failed" or last["command_result"] != "NOT_EXECUTED"
                or last["command_finished_at"] is None or last["command_finished_at"] < row["updated_at"]):
            return False
        judged = store.last_action(conn, area["id"], "blocked", "auto")
        if judged is not None and judged["reason_code"] == "tap_stuck" and judged["ts"] >= last["command_finished_at"]:
            return False   # this command's block was lifted already (the tap moved since)
        params = {"area": area["name"], "position": position, "target": last["after"]}
        self._update(conn, area["id"], row, blocked="tap_stuck", blocked_at=now, blocked_position=position)
        self._open_alarm(conn, TAP_STUCK, area, alarms.AlarmLevel.CRITICAL, "avc_tap_stuck", params, now)
        self._log(conn, area, now, "blocked", "tap_stuck", params, before=position, after=position)
        return True

    def _protect(self, conn, area: dict, row: dict, volts: list[float], amps: list[float], b: dict,
                 now: dt.datetime) -> bool:
        """True while an undervoltage or an overcurrent holds every automatic step (an avc_blocked alarm)."""
        reason, params = None, {}
        vmin = min(volts)
        rated = None
        if area.get("rating_kva"):
            rated = float(area["rating_kva"]) * 1000.0 / (3.0 * nominal_of(area))
        if vmin < b["undervoltage"]:
            reason, params = "undervoltage", {"area": area["name"], "voltage": round(vmin, 1),
                                              "limit": round(b["undervoltage"], 1)}
        elif rated and amps and max(amps) > rated:
            reason, params = "overcurrent", {"area": area["name"], "current": round(max(amps), 1),
                                             "limit": round(rated, 1)}
        if reason is None:
            was = row["blocked"]
            if was in ("undervoltage", "overcurrent"):
                self._update(conn, area["id"], row, blocked=None, blocked_at=None)
                self._close_alarm(conn, BLOCKED, area, now)
                self._log(conn, area, now, "unblocked", "cleared", {"was": was})
            return False
        if row["blocked"] != reason:
            self._update(conn, area["id"], row, blocked=reason, blocked_at=now, out_since=None, out_side=None)
            self._open_alarm(conn, BLOCKED, area, alarms.AlarmLevel.WARNING, f"avc_{reason}", params, now)
            self._log(conn, area, now, "blocked", reason, params)
        return True

    def _tap(self, conn, area: dict, row: dict, seen: dict, now: dt.datetime, summary: dict) -> bool:
        """One tap step when the rules call for it; True when a command was queued or the area is held."""
        if self._stuck(conn, area, row, seen, now):
            return True
        volts = {p: _float(seen.get(f"voltage_{p}")) for p in PHASES}
        volts = {p: v for p, v in volts.items() if v is not None}
        position = seen.get("tap_position")
        if not volts or position is None:
            return False
        amps = [a for a in (_float(seen.get(f"current_{p}")) for p in PHASES) if a is not None]
        b = band(area, row)
        if self._protect(conn, area, row, list(volts.values()), amps, b, now):
            return True
        high_phase = max(volts, key=volts.get)
        low_phase = min(volts, key=volts.get)
        vmax, vmin = volts[high_phase], volts[low_phase]
        side = "high" if vmax > b["high"] else "low" if vmin < b["low"] else None
        if side is None:
            if row["out_since"] is not None:
                self._update(conn, area["id"], row, out_since=None, out_side=None)
            return False
        if row["out_side"] != side or row["out_since"] is None:
            self._update(conn, area["id"], row, out_since=now, out_side=side)
        out_s = _seconds(now, row["out_since"])
        if out_s < row["first_delay_s"]:
            return False
        last = store.last_action(conn, area["id"], "tap", "auto")
        if last is not None and _seconds(now, last["ts"]) < row["step_delay_s"]:
            return False
        phase, voltage, limit = ((high_phase, vmax, b["high"]) if side == "high" else (low_phase, vmin, b["low"]))
        done = store.count_actions(conn, area["id"], "tap", "auto", local_midnight(self.ctx.local_day(now),
                                                                                  self.ctx.tz))
        if done >= row["daily_limit"]:
            self._hold(conn, area, row, now, "daily_limit", {"count": done, "limit": row["daily_limit"]}, summary)
            return False
        step = -1 if side == "high" else 1
        target = int(position) + step
        top = seen.get("tap_count") or MAX_TAP
        if not 1 <= target <= top:
            self._hold(conn, area, row, now, "tap_limit", {"position": int(position)}, summary)
            return False
        # dead band: after the step every phase must stay at least half a step inside the other limit
        margin = b["step"] / 2
        if side == "high":
            other, after = low_phase, vmin - b["step"]
            overshoots = after < b["low"] + margin
        else:
            other, after = high_phase, vmax + b["step"]
            overshoots = after > b["high"] - margin
        if overshoots:
            self._hold(conn, area, row, now, "dead_band", {"phase": other.upper(), "voltage": round(after, 1)},
                       summary)
            return False
        command_id = self._queue(conn, area, "tap", {"position": target}, now)
        self._log(conn, area, now, "tap", f"voltage_{side}",
                  {"phase": phase.upper(), "voltage": round(voltage, 1), "limit": round(limit, 1),
                   "seconds": int(out_s)}, before=int(position), after=target, command_id=command_id)
        summary["taps"] += 1
        return True

    def _capacity(self, conn, area: dict, row: dict, seen: dict, now: dt.datetime, summary: dict) -> bool:
        """Large capacity when the load stays above capacity_up of the small rating, small when below
        capacity_down of it, each for capacity_hold_s."""
        if not row["capacity_auto"]:
            return False
        small = _float(row.get("small_kva")) or (float(area["rating_kva"]) / 2 if area.get("rating_kva") else None)
        mode, p = seen.get("capacity_mode"), _float(seen.get("power_total"))
        if not small or mode not in (0, 1) or p is None:
            return False
        q, pf = _float(seen.get("reactive_total")), _float(seen.get("pf_total"))
        load = math.hypot(p, q) if q is not None else (abs(p) / pf if pf else abs(p))
        want, limit = None, None
        if mode == 0 and load > row["capacity_up"] * small:
            want, limit = "large", row["capacity_up"] * small
        elif mode == 1 and load < row["capacity_down"] * small:
            want, limit = "small", row["capacity_down"] * small
        if want is None:
            if row["load_since"] is not None:
                self._update(conn, area["id"], row, load_since=None, load_side=None)
            return False
        if row["load_side"] != want or row["load_since"] is None:
            self._update(conn, area["id"], row, load_since=now, load_side=want)
        held = _seconds(now, row["load_since"])
        if held < row["capacity_hold_s"]:
            return False
        command_id = self._queue(conn, area, "capacity_mode", {"mode": MODES.index(want)}, now)
        self._log(conn, area, now, "capacity_mode", f"load_{'high' if want == 'large' else 'low'}",
                  {"load": round(load, 1), "limit": round(limit, 1), "seconds": int(held)},
                  before=MODES[mode], after=want, command_id=command_id)
        self._update(conn, area["id"], row, load_since=None, load_side=None)
        summary["capacity"] += 1
        return True


def attach_avc(ctx: BillingContext, jobs, events, *, interval_s: float = 30.0,
               enable_new_areas: bool = False) -> AutomaticVoltageControl:
    """The scheduler's "avc" job: on its interval and woken after every poll cycle; the area alarms it opens and
    closes are published on ALARM_CHANGED (a stuck tap changer is critical: the operators' alarm numbers hear)."""
    from core.events import CYCLE_CHANGED
    avc = AutomaticVoltageControl(ctx, enable_new_areas=enable_new_areas, events=events)
    jobs.add(JOB, avc.run_once, interval_s)
    events.subscribe(CYCLE_CHANGED, lambda _changes: jobs.wake(JOB))
    return avc
