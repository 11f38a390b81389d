"""Telesignals (遥信) of the transformer areas' terminals as alarm events: door open, smoke, water, the dual-supply
changeover (备自投), outlet breakers found open, and the environment (oil temperature, ambient temperature,
humidity) over the site's [grid] limits; each opened through the alarm service (storage.alarms, subject the
area) when the signal appears and closed when it clears.

Evaluated on CYCLE_CHANGED from the terminals' latest state (level, not edge, like billing.alarm_engine: a missed
cycle or a restart is caught up at the next one). A terminal that is lost keeps its area's events as they are (its
signals are old); its own lost contact is the collector's event on the terminal meter (storage.grid_areas
.area_open_alarms names it for the area page), not repeated here.

An outlet breaker counts once it is in service: seen closed since the process started or in the terminal's
device history of the last SERVICE_DAYS days (a spare outlet that was never closed raises nothing). All open
outlets of an area are one event naming them; its message follows the set as outlets open and close.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import sqlalchemy as sa

from core.clock import utcnow
from core.config import GridConfig
from core.events import ALARM_CHANGED, CYCLE_CHANGED, EventBus
from storage import alarms
from storage import grid_areas as store
from storage.alarms import AlarmChange, AlarmChanges, AlarmLevel, Subject
from storage.schema import DEVICE_SIGNAL_BITS

log = logging.getLogger(__name__)

SERVICE_DAYS = 7
# signal column -> alarm kind (message code = kind)
SIGNALS = {"door_open": alarms.AREA_DOOR_OPEN, "smoke": alarms.AREA_SMOKE, "water": alarms.AREA_WATER,
           "changeover": alarms.AREA_CHANGEOVER}
# environment column -> (alarm kind, GridConfig limit, unit)
ENVIRONMENT = {"oil_temp": (alarms.AREA_OIL_TEMP, "oil_temp_max", "°C"),
               "ambient_temp": (alarms.AREA_AMBIENT_TEMP, "ambient_temp_max", "°C"),
               "humidity": (alarms.AREA_HUMIDITY, "humidity_max", "%")}
LEVELS = {alarms.AREA_DOOR_OPEN: AlarmLevel.WARNING, alarms.AREA_SMOKE: AlarmLevel.CRITICAL,
          alarms.AREA_WATER: AlarmLevel.CRITICAL, alarms.AREA_CHANGEOVER: AlarmLevel.WARNING,
          alarms.AREA_BREAKER_OPEN: AlarmLevel.WARNING, alarms.AREA_OIL_TEMP: AlarmLevel.CRITICAL,
          alarms.AREA_AMBIENT_TEMP: AlarmLevel.WARNING, alarms.AREA_HUMIDITY: AlarmLevel.WARNING}
OUTLETS = range(1, 9)


def open_outlets(row: dict, in_service: set[int]) -> list[int] | None:
    """The outlets in service whose breaker reads open; None when the terminal reports no breaker."""
    if all(row.get(f"breaker_{i}") is None for i in OUTLETS):
        return None
    return [i for i in sorted(in_service) if row.get(f"breaker_{i}") is False]


def conditions(row: dict, in_service: set[int], limits: GridConfig) -> dict[str, tuple[bool | None, str, dict]]:
    """kind -> (on, message code, parameters) for one terminal's state: on True opens (or keeps) the event, False
    closes it, None leaves it as it is (not reported, or an environment value within the closing margin). Pure:
    the rule in one place, tested without a database."""
    base = {"area": row.get("area") or "", "terminal": row.get("terminal") or ""}
    out: dict[str, tuple[bool | None, str, dict]] = {}
    for column, kind in SIGNALS.items():
        value = row.get(column)
        out[kind] = (None if value is None else bool(value), kind, base)
    outlets = open_outlets(row, in_service)
    out[alarms.AREA_BREAKER_OPEN] = (None if outlets is None else bool(outlets), alarms.AREA_BREAKER_OPEN,
                                     {"area": base["area"], "outlets": ", ".join(str(i) for i in outlets or ())})
    for column, (kind, limit_name, unit) in ENVIRONMENT.items():
        value, limit = row.get(column), float(getattr(limits, limit_name))
        if value is None or value != value:
            on = None
        elif value > limit:
            on = True
        elif value <= limit - limits.environment_margin:
            on = False
        else:
            on = None
        shown = "" if on is not True else f"{float(value):.1f} {unit}"
        out[kind] = (on, "area_environment", {"area": base["area"], "value": shown, "limit": f"{limit:g} {unit}"})
    return out


class Telesignals:
    """Subscribed to the event bus by serve.runtime; `evaluate` may also be called on its own (tests)."""

    def __init__(self, engine: sa.Engine, events: EventBus | None = None, *,
                 clock: Callable[[], dt.datetime] = utcnow, limits: GridConfig | None = None):
        self.engine = engine
        self.events = events
        self.clock = clock
        self.limits = limits or GridConfig()
        self._in_service: dict[int, set[int]] = {}    # terminal meter id -> outlets seen closed

    def subscribe(self, events: EventBus) -> None:
        self.events = events
        events.subscribe(CYCLE_CHANGED, self.on_cycle)

    def on_cycle(self, changes) -> AlarmChanges:
        return self.evaluate(getattr(changes, "at", None))

    def evaluate(self, now: dt.datetime | None = None) -> AlarmChanges:
        now = now or self.clock()
        opened: list[int] = []
        closed: list[tuple[str, int]] = []
        with self.engine.begin() as conn:
            rows = store.terminal_states(conn)
            events = store.open_area_events(conn, alarms.TELESIGNAL_KINDS)
            self._learn_outlets(conn, rows, now)
            seen = set()
            for row in rows:
                area_id = int(row["area_id"])
                seen.add(area_id)
                if row["comm_state"] == "lost" or row["ts"] is None:
                    continue      # its signals are from before it went quiet (or never read)
                subject = Subject("area", area_id)
                in_service = self._in_service.setdefault(int(row["terminal_meter_id"]), set())
                for kind, (on, code, params) in conditions(row, in_service, self.limits).items():
                    event = events.get((area_id, kind))
                    if on is True and (event is None or (kind == alarms.AREA_BREAKER_OPEN
                                                         and event["params"].get("outlets") != params["outlets"])):
                        alarm_id = alarms.open_alarm(conn, kind, subject, LEVELS[kind], code, params, now)
                        if event is None:
                            opened.append(alarm_id)
                    elif on is False and event is not None:
                        alarms.close_alarm(conn, kind, subject, now)
                        closed.append((kind, area_id))
            for (area_id, kind) in events:      # an area without its terminal now: its telesignals end
                if area_id not in seen:
                    alarms.close_alarm(conn, kind, Subject("area", area_id), now)
                    closed.append((kind, area_id))
            changes = self._changes(conn, opened, closed)
        out = AlarmChanges(now, changes)
        if self.events is not None and out.changes:
            self.events.publish(ALARM_CHANGED, out)
        return out

    def _learn_outlets(self, conn: sa.Connection, rows: list[dict], now: dt.datetime) -> None:
        """Outlets in service: those closed now, and on a terminal's first sight those closed in its history."""
        new = [int(r["terminal_meter_id"]) for r in rows if int(r["terminal_meter_id"]) not in self._in_service]
        if new:
            found = store.breakers_closed_since(conn, new, now - dt.timedelta(days=SERVICE_DAYS), DEVICE_SIGNAL_BITS)
            for mid in new:
                self._in_service[mid] = set(found.get(mid, ()))
        for r in rows:
            if r["comm_state"] != "lost" and r["ts"] is not None:
                self._in_service[int(r["terminal_meter_id"])].update(
                    i for i in OUTLETS if r.get(f"breaker_{i}") is True)

    @staticmethod
    def _changes(conn: sa.Connection, opened: list[int], closed: list[tuple[str, int]]) -> tuple[AlarmChange, ...]:
        out = []
        for alarm_id in opened:
            a = alarms.alarm_by_id(conn, alarm_id)
            if a is not None:
                out.append(alarms.change_of(a, True))
        out += [AlarmChange(None, kind, int(LEVELS[kind]), "area", area_id, False) for kind, area_id in closed]
        return tuple(out)


JOB = "telesignals"


def attach_telesignals(engine: sa.Engine, events: EventBus, limits: GridConfig, jobs, *, interval_s: float = 60.0,
                       clock=utcnow) -> Telesignals:
    """The scheduler's "telesignals" job (serve.runtime): woken after every poll cycle, and on its interval, so its
    last run and error show on /status."""
    signals = Telesignals(engine, events, clock=clock, limits=limits)

    def run() -> dict:
        out = signals.evaluate()
        return {"opened": len(out.opened), "closed": len(out.closed)}
    jobs.add(JOB, run, interval_s)
    events.subscribe(CYCLE_CHANGED, lambda _changes: jobs.wake(JOB))
    return signals
