"""One poll cycle end to end: targets from storage, poll the field, write readings and state in one transaction.

Two kinds of cycle share the buses: the full reading (job "poll", every 30 minutes by default: every block, a
readings row per meter) and the fast state poll (job "state_poll", every 120 s by default: only each profile's
state block, i.e. balance, purchase count, relay and status bits, command sequence). The state poll writes no
readings row: it updates those columns of meter_state (and comm state, lost-contact alarms, bus state) and
publishes what changed, so the live views and alarms follow the meters within minutes while readings, which
reports and reconciliation count on, stay one complete row per full reading. The two never run at once (one
lock), and a state poll is skipped when a full reading read the state less than half its interval ago.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import pandas as pd
import sqlalchemy as sa

from collectors.changes import CycleChanges, bus_changes, compared_rows, meter_changes
from collectors.commstate import next_comm_state
from core.money import reading_fen as fen
from collectors.poller import CycleResult, FieldIO, PollTarget
from collectors.profiles import ProfileError
from storage import alarms
from storage.schema import (CANONICAL_KEYS, DEVICE_SIGNAL_BITS, METER_STATE_COLUMNS, bus_state, meter_state,
                            poll_cycle)
from storage.meter_settings import record_meter_config
from storage.timeseries import append_device_history, append_readings, upsert_meter_state
from storage.topology import bus_comm_states, poll_targets
from core.events import CYCLE_CHANGED, EventBus

log = logging.getLogger(__name__)

_COMM_KEYS = ("comm_state", "miss_count", "last_seen", "lost_since")


@dataclass(frozen=True)
class CycleSummary:
    started_at: dt.datetime
    duration_s: float
    meters: int
    ok: int
    failed: int
    endpoints_unreachable: int
    newly_lost: int
    recovered: int
    write_s: float


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


class CollectorService:
    """Polls every meter the database knows and records what it found."""

    def __init__(self, engine: sa.Engine, field_io: FieldIO, lost_after: int = 3,
                 clock: Callable[[], dt.datetime] | None = None, poll_timeout_s: float = 600.0,
                 events: EventBus | None = None, balance_thresholds: Callable[[], dict[str, int]] | None = None):
        self.engine = engine
        self.field_io = field_io
        self.lost_after = lost_after
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
        self.poll_timeout_s = poll_timeout_s
        # Hooks around each cycle, e.g. command dispatch before (commands go before polls) and
        # billing reconciliation after; a failing hook is logged and never costs the cycle.
        self.before_cycle: list[Callable[[], object]] = []
        self.after_cycle: list[Callable[[CycleSummary], object]] = []
        # What each cycle changed goes to `events` (CYCLE_CHANGED); balances are compared with the site's alarm
        # amounts, name -> fen ({"alarm1": 2000, "alarm2": 500}), read once per cycle from balance_thresholds.
        self.events = events
        self.balance_thresholds = balance_thresholds
        # The fast state poll's interval (the runtime keeps it equal to the "state_poll" job's): a state poll
        # within half of it after a full reading started is skipped, the full reading read the same registers.
        self.state_poll_interval_s = 120.0
        self._field_lock = threading.Lock()       # a full reading and a state poll never share the buses
        self._full_started: float | None = None   # time.monotonic() of the latest full reading's start

    def targets(self) -> list[PollTarget]:
        with self.engine.connect() as conn:
            rows = poll_targets(conn)
        return [PollTarget(meter_id=r["meter_id"], meter_address=r["meter_address"], gateway=r["gateway"],
                           host=r["host"], port=r["port"], framing=r["framing"], bus_no=r["bus_no"],
                           unit=r["unit"], profile=r["profile"], timeout_s=r["timeout_s"], retries=r["retries"])
                for r in rows]

    def run_cycle(self) -> CycleSummary:
        with self._field_lock:
            self._full_started = time.monotonic()
            for hook in self.before_cycle:
                _run_hook(hook)
            targets = self.targets()
            result = self.field_io.poll_cycle(targets, timeout=self.poll_timeout_s)
            summary = self.record(targets, result)
        for hook in self.after_cycle:
            _run_hook(hook, summary)
        return summary

    def state_targets(self) -> list[PollTarget]:
        """The meters whose profile has a state block (prepaid meters); the others wait for the full reading."""
        out = []
        for t in self.targets():
            try:
                if self.field_io.profiles.get(t.profile).state_blocks:
                    out.append(t)
            except ProfileError:
                continue   # the full reading reports it as a config_error
        return out

    def run_state_poll(self) -> CycleSummary | None:
        """The fast state poll; None when skipped (a full reading is running or has just read the same state)."""
        if not self._field_lock.acquire(blocking=False):
            log.info("state poll skipped: a full reading is running")
            return None
        try:
            started = self._full_started
            if started is not None and time.monotonic() - started < self.state_poll_interval_s / 2:
                log.info("state poll skipped: the full reading %.0f s ago read the state", time.monotonic() - started)
                return None
            for hook in self.before_cycle:
                _run_hook(hook)
            targets = self.state_targets()
            if not targets:
                return None
            result = self.field_io.poll_cycle(targets, state_only=True, timeout=self.poll_timeout_s)
            return self.record(targets, result, state_only=True)
        finally:
            self._field_lock.release()

    def read_back_config(self, meter_id: int) -> bool:
        """Read one meter's every block now (e.g. right after its limits were applied) and keep the configuration
        it reports (storage.meter_settings); False when the meter is not polled or did not answer."""
        target = next((t for t in self.targets() if t.meter_id == meter_id), None)
        if target is None:
            return False
        try:
            values = self.field_io.read_meter(target, all_blocks=True)
        except Exception as exc:  # noqa: BLE001 - the next full reading's configuration block tells again
            log.warning("meter %s: configuration not read back: %s", target.meter_address, exc)
            return False
        values["meter_id"] = meter_id
        with self.engine.begin() as conn:
            return record_meter_config(conn, [values], self.clock()) > 0

    def on_command_settled(self, settled) -> None:
        """COMMAND_SETTLED subscriber: an applied limits push is read back from the meter's configuration block."""
        if settled.kind == "limits" and settled.state == "acked":
            self.read_back_config(settled.meter_id)

    # -----------------------------------------------------------------------------------------
    def record(self, targets: list[PollTarget], result: CycleResult, state_only: bool = False) -> CycleSummary:
        """Write one cycle's findings; a state poll's (`state_only`) go to meter_state only, never to readings."""
        now = self.clock()
        t0 = dt.datetime.now()
        readings = _readings_frame(result)
        thresholds = self._thresholds() if self.events is not None else {}
        with self.engine.begin() as conn:
            prev = _previous_state(conn, [t.meter_id for t in targets])
            prev_buses = bus_comm_states(conn) if self.events is not None else []
            states, newly_lost, recovered = self._next_states(targets, result, readings, prev, now, state_only)
            if not state_only:
                append_readings(conn, readings.drop(columns=["extra"], errors="ignore"))
                append_device_history(conn, readings)  # master meters and terminals only (history_mask)
                record_meter_config(conn, result.readings, now)  # settings read back from configuration blocks
            upsert_meter_state(conn, states)
            self._write_bus_state(conn, targets, result, now)
            self._lost_contact_events(conn, newly_lost, recovered, result, now)
            failed = sum(1 for o in result.outcomes.values() if o.status != "ok")
            if not state_only:
                conn.execute(poll_cycle.insert().values(
                    started_at=_naive_utc(result.started_at), finished_at=_naive_utc(result.finished_at),
                    duration_s=result.duration_s, meters=len(targets), ok=len(targets) - failed, failed=failed,
                    endpoints_unreachable=len(result.unreachable_endpoints)))
        write_s = (dt.datetime.now() - t0).total_seconds()
        if self.events is not None:
            self._publish_changes(targets, result, prev, states, prev_buses, newly_lost, recovered, thresholds, now)
        summary = CycleSummary(_naive_utc(result.started_at), result.duration_s, len(targets),
                               len(targets) - failed, failed, len(result.unreachable_endpoints),
                               len(newly_lost), len(recovered), write_s)
        log.info("%s: %d meters, %d ok, %d failed, %d endpoints unreachable, %.2f s poll, %.2f s write",
                 "state poll" if state_only else "poll cycle", summary.meters, summary.ok, summary.failed, summary.endpoints_unreachable,
                 summary.duration_s, write_s)
        return summary

    def _thresholds(self) -> dict[str, int]:
        if self.balance_thresholds is None:
            return {}
        try:
            return dict(self.balance_thresholds())
        except Exception:  # noqa: BLE001 - the cycle goes on; only crossings of zero are reported this time
            log.exception("the site's alarm amounts could not be read")
            return {}

    def _publish_changes(self, targets, result: CycleResult, prev: pd.DataFrame, states: pd.DataFrame,
                         prev_buses: list[dict], newly_lost: list[int], recovered: list[int],
                         thresholds: dict[str, int], now: dt.datetime) -> None:
        """One CycleChanges on CYCLE_CHANGED, from the state before the cycle and the rows it wrote."""
        try:
            previous = {int(r["meter_id"]): r for r in compared_rows(prev)}
            bits, balances, relays = meter_changes(previous, compared_rows(states), thresholds)
            polled = {(t.host, int(t.port)) for t in targets}
            unreachable = {(e.host, int(e.port)) for e in result.unreachable_endpoints}
            buses = [b for b in prev_buses if (b["host"], int(b["port"])) in polled]
            b_lost, b_back, gw_lost, gw_back = bus_changes(buses, unreachable)
            changes = CycleChanges(now, tuple(newly_lost), tuple(recovered), b_lost, b_back, gw_lost, gw_back,
                                   bits, balances, relays)
        except Exception:  # noqa: BLE001 - the readings are stored; only the news of this cycle is lost
            log.exception("what the poll cycle changed could not be worked out")
            return
        self.events.publish(CYCLE_CHANGED, changes)

    def _next_states(self, targets, result: CycleResult, readings: pd.DataFrame, prev: pd.DataFrame,
                     now: dt.datetime, state_only: bool = False) -> tuple[pd.DataFrame, list[int], list[int]]:
        rows = []
        newly_lost: list[int] = []
        recovered: list[int] = []
        by_meter = {r["meter_id"]: r for r in readings.to_dict("records")} if not readings.empty else {}
        prev_by_meter = {r["meter_id"]: r for r in prev.to_dict("records")} if not prev.empty else {}
        for t in targets:
            outcome = result.outcomes.get(t.meter_id)
            if outcome is None or outcome.status == "config_error":
                status = "exception"
                message = outcome.message if outcome else "not polled"
            else:
                status, message = outcome.status, outcome.message
            old = prev_by_meter.get(t.meter_id, {})
            comm = next_comm_state({k: _none(old.get(k)) for k in _COMM_KEYS}, status, now, self.lost_after)
            if status == "ok" and t.meter_id in by_meter and not state_only:
                row = dict(by_meter[t.meter_id])
            else:
                row = {k: _none(old.get(k)) for k in ("ts", *CANONICAL_KEYS, "extra")}
                row["balance_fen"] = fen(row.pop("balance", None))
                if status == "ok" and t.meter_id in by_meter:   # a state poll: its keys over the last full reading
                    state = by_meter[t.meter_id]
                    row.update({k: v for k, v in state.items() if k not in ("ts", "extra") and _none(v) is not None})
                    if _none(state.get("extra")) is not None:   # raw status words: the new over the old
                        row["extra"] = json.dumps({**json.loads(row.get("extra") or "{}"), **json.loads(state["extra"])})
            row["meter_id"] = t.meter_id
            row.update({k: comm[k] for k in _COMM_KEYS})
            row["last_error"] = None if status == "ok" else f"{status}: {message}"[:300]
            # the highest level of the meter's open alarms: kept by the alarm engine (storage.alarms
            # .set_meter_levels, billing/alarm_engine.py) after the cycle; carried over here
            row["alarm_level"] = int(_none(old.get("alarm_level")) or 0)
            row["updated_at"] = now
            rows.append(row)
            was_lost = old.get("comm_state") == "lost"
            if comm["comm_state"] == "lost" and not was_lost:
                newly_lost.append(t.meter_id)
            elif comm["comm_state"] == "online" and was_lost:
                recovered.append(t.meter_id)
        frame = pd.DataFrame(rows)
        for col in ("ts", "last_seen", "lost_since", "updated_at"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col])
        return frame, newly_lost, recovered

    @staticmethod
    def _write_bus_state(conn: sa.Connection, targets, result: CycleResult, now: dt.datetime) -> None:
        bus_of: dict = {}
        for t in targets:
            bus_of[t.endpoint] = t
        if not bus_of:
            return
        buses = {r.host_port: r for r in conn.execute(sa.text(
            "SELECT gateway.host || ':' || CAST(bus.port AS VARCHAR) AS host_port, bus.id AS bus_id, "
            "bus.gateway_id AS gateway_id FROM bus JOIN gateway ON bus.gateway_id = gateway.id"))}
        ids = {k: r.bus_id for k, r in buses.items()}
        prev = {r.bus_id: r for r in conn.execute(sa.select(bus_state))}
        rows = []
        for key in bus_of:
            bus_id = ids.get(f"{key.host}:{key.port}")
            if bus_id is None:
                continue
            lost = key in result.unreachable_endpoints
            old = prev.get(bus_id)
            lost_since = (old.lost_since if old is not None and old.comm_state == "lost" else now) if lost else None
            rows.append({"bus_id": bus_id, "comm_state": "lost" if lost else "online", "lost_since": lost_since,
                         "last_error": "connection refused or timed out" if lost else None, "updated_at": now})
        conn.execute(sa.delete(bus_state).where(bus_state.c.bus_id.in_([r["bus_id"] for r in rows])))
        if rows:
            conn.execute(bus_state.insert(), rows)
        _bus_alarms(conn, [(key, buses[f"{key.host}:{key.port}"].gateway_id, ids[f"{key.host}:{key.port}"],
                            bus_of[key], key in result.unreachable_endpoints)
                           for key in bus_of if f"{key.host}:{key.port}" in ids], now)

    @staticmethod
    def _lost_contact_events(conn: sa.Connection, newly_lost: list[int], recovered: list[int],
                             result: CycleResult, now: dt.datetime) -> None:
        """A meter newly lost opens its lost_contact alarm (the poll's error as the message's parameter); a meter
        that answers again closes it."""
        if newly_lost:
            alarms.open_alarms_of(conn, alarms.LOST_CONTACT, alarms.AlarmLevel.WARNING, [
                (alarms.meter(m), "meter_lost",
                 {"error": (result.outcomes[m].message if m in result.outcomes else "")[:300]})
                for m in newly_lost], now)
        if recovered:
            alarms.close_alarms_of(conn, alarms.LOST_CONTACT, [alarms.meter(m) for m in recovered], now)


def _bus_alarms(conn: sa.Connection, polled: list[tuple], now: dt.datetime) -> None:
    """lost_contact alarms of buses and gateways, from this cycle's answer: a bus whose endpoint did not answer has
    one open (warning), and so has a gateway none of whose polled buses answered (critical); those that answer
    again have theirs closed. `polled` holds (endpoint, gateway id, bus id, a target on the bus, lost)."""
    lost_bus = {bus_id: (endpoint, target) for endpoint, _gw, bus_id, target, lost in polled if lost}
    gateways: dict[int, list[bool]] = {}
    names: dict[int, str] = {}
    for _endpoint, gw, _bus_id, target, lost in polled:
        gateways.setdefault(gw, []).append(lost)
        names[gw] = target.gateway
    Subject = alarms.Subject
    open_bus = alarms.open_subjects(conn, alarms.LOST_CONTACT, "bus")
    alarms.open_alarms_of(conn, alarms.LOST_CONTACT, alarms.AlarmLevel.WARNING, [
        (Subject("bus", bus_id), "bus_lost", {"gateway": target.gateway, "bus": target.bus_no,
                                              "endpoint": f"{endpoint.host}:{endpoint.port}"})
        for bus_id, (endpoint, target) in lost_bus.items() if bus_id not in open_bus], now)
    alarms.close_alarms_of(conn, alarms.LOST_CONTACT, [
        Subject("bus", bus_id) for _e, _g, bus_id, _t, lost in polled if not lost and bus_id in open_bus], now)
    open_gw = alarms.open_subjects(conn, alarms.LOST_CONTACT, "gateway")
    alarms.open_alarms_of(conn, alarms.LOST_CONTACT, alarms.AlarmLevel.CRITICAL, [
        (Subject("gateway", gw), "gateway_lost", {"gateway": names[gw], "buses": len(states)})
        for gw, states in gateways.items() if all(states) and gw not in open_gw], now)
    alarms.close_alarms_of(conn, alarms.LOST_CONTACT, [
        Subject("gateway", gw) for gw, states in gateways.items() if not all(states) and gw in open_gw], now)


def _run_hook(hook: Callable, *args) -> None:
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - logged with its traceback; the poll schedule goes on
        log.exception("poll cycle hook %s failed", getattr(hook, "__qualname__", hook))


def _none(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and v != v:
        return None
    return v


def _readings_frame(result: CycleResult) -> pd.DataFrame:
    """Readings of the cycle as a frame: canonical keys as columns, money as fen, the rest as JSON."""
    if not result.readings:
        return pd.DataFrame(columns=["ts", "meter_id"])
    canonical = set(CANONICAL_KEYS)
    rows = []
    for r in result.readings:
        row = {"ts": _naive_utc(r["ts"]), "meter_id": r["meter_id"]}
        extra = {}
        for k, v in r.items():
            if k in ("ts", "meter_id"):
                continue
            if k == "balance":
                row["balance_fen"] = fen(v)
            elif k in canonical:
                row[k] = v
            else:
                extra[k] = str(v) if isinstance(v, Decimal) else v
                if k in DEVICE_SIGNAL_BITS:   # a signal outside the canonical keys (changeover): history packs it
                    row[k] = v
        row["extra"] = json.dumps(extra, default=str) if extra else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def _previous_state(conn: sa.Connection, meter_ids: list[int]) -> pd.DataFrame:
    if not meter_ids:
        return pd.DataFrame(columns=list(METER_STATE_COLUMNS))
    rows = conn.execute(sa.select(meter_state)).mappings().all()
    return pd.DataFrame(rows, columns=list(METER_STATE_COLUMNS))
