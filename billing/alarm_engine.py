"""The alarm engine: a meter's low balance (alarm 1, alarm 2), arrears, overload trip and tamper opened and closed as
alarm events (storage.alarms) after every poll cycle, meter_state.alarm_level kept, and what opened or closed
published on core.events.ALARM_CHANGED.

Evaluated on CYCLE_CHANGED against every polled meter's state (level, not edge: a missed event, a restart or a
changed alarm amount is caught up at the next cycle; 10,000 meters cost one read of meter_state). A meter that
is lost keeps its events as they are: its state is old. The other kinds keep their one producer: lost contact
(collectors.cycle), failed commands (collectors.dispatch), count and balance mismatches (billing.reconcile); the
engine announces theirs too (lost / recovered from the cycle's changes, failed commands from COMMAND_SETTLED).

Conditions, per meter (balances against the site's amounts, billing.settings.alarm_amounts; only for meters
with an opened account, since an unsold meter's empty balance is no alarm):
    alarm1   balance <= alarm 1 amount, or the meter's alarm 1 bit
    alarm2   balance <= alarm 2 amount, or the meter's alarm 2 bit
    arrears  the meter's arrears bit (tripped); balance <= 0 when its profile reports no such bit
    overload the overload (trip) bit;   tamper: the cover-opened bit

Hysteresis (both configurable in [alarms], see core.config.AlarmsConfig): an open balance event closes only once
the balance is above its amount plus `close_margin` (default 1.00 yuan), so a balance wobbling around the amount
opens one event, not one per poll; and any event closes only after its condition has been clear for
`close_after_polls` evaluations in a row (default 1; a count kept in memory, so a restart only starts it again).
"""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from billing.settings import alarm_amounts
from core.clock import utcnow
from core.events import ALARM_CHANGED, COMMAND_SETTLED, CYCLE_CHANGED, EventBus
from core.money import reading_fen
from storage import alarms
from storage.alarms import AlarmChange, AlarmChanges, AlarmLevel, Subject
from storage.schema import alarm_event, meter, meter_state

log = logging.getLogger(__name__)

LEVELS = {alarms.ALARM1: AlarmLevel.WARNING, alarms.ALARM2: AlarmLevel.CRITICAL, alarms.ARREARS: AlarmLevel.CRITICAL,
          alarms.OVERLOAD: AlarmLevel.CRITICAL, alarms.TAMPER: AlarmLevel.CRITICAL}
BITS = {alarms.ALARM1: "alarm1", alarms.ALARM2: "alarm2", alarms.ARREARS: "arrears",
        alarms.OVERLOAD: "overload", alarms.TAMPER: "tamper"}


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def meter_conditions(row: dict, amounts_fen: tuple[int, int], margin_fen: int) -> dict[str, tuple[bool, bool]]:
    """kind -> (starts, holds) for one meter_state row: `starts` opens an event, `holds` keeps an open one open
    (the start condition widened by the margin). Pure: the rule in one place, tested without a database."""
    bal = row.get("balance_fen")
    billed = row.get("status") == "opened" and bal is not None
    out = {}
    for kind, amount in ((alarms.ALARM1, amounts_fen[0]), (alarms.ALARM2, amounts_fen[1])):
        bit = row.get(BITS[kind]) is True
        out[kind] = (bit or (billed and bal <= amount), bit or (billed and bal <= amount + margin_fen))
    bit = row.get("arrears")
    if bit is None:
        out[alarms.ARREARS] = (billed and bal <= 0, billed and bal <= margin_fen)
    else:
        out[alarms.ARREARS] = (bool(bit), bool(bit))
    for kind in (alarms.OVERLOAD, alarms.TAMPER):
        bit = row.get(BITS[kind]) is True
        out[kind] = (bit, bit)
    return out


def _params(kind: str, row: dict, amounts_fen: tuple[int, int]) -> tuple[str, dict]:
    bal = row.get("balance_fen")
    balance = "" if bal is None else _yuan(bal)
    if kind in (alarms.ALARM1, alarms.ALARM2):
        amount = amounts_fen[0] if kind == alarms.ALARM1 else amounts_fen[1]
        return "balance_low", {"balance": balance, "amount": _yuan(amount)}
    if kind == alarms.ARREARS:
        return "arrears", {"balance": balance}
    if kind == alarms.OVERLOAD:
        power = row.get("power_total")
        return "overload", {"power": "" if power is None else f"{float(power):.2f}"}
    return "tamper", {}


class AlarmEngine:
    """Subscribed to the event bus by serve.runtime; `evaluate` may also be called on its own (tests, a job)."""

    def __init__(self, engine: sa.Engine, events: EventBus | None = None, *,
                 clock: Callable[[], dt.datetime] = utcnow, close_margin: Decimal = Decimal("1.00"),
                 close_after_polls: int = 1):
        self.engine = engine
        self.events = events
        self.clock = clock
        self.margin_fen = reading_fen(Decimal(close_margin))
        self.close_after_polls = max(1, int(close_after_polls))
        self._clear: dict[tuple[int, str], int] = {}   # (meter, kind) -> evaluations in a row its condition was clear

    def subscribe(self, events: EventBus) -> None:
        self.events = events
        events.subscribe(CYCLE_CHANGED, self.on_cycle)
        events.subscribe(COMMAND_SETTLED, self.on_settled)

    # -- events ---------------------------------------------------------------------------------
    def on_cycle(self, changes) -> AlarmChanges:
        """CYCLE_CHANGED: evaluate every meter; announce the collector's lost contact opened and closed."""
        return self.evaluate(getattr(changes, "at", None), changes)

    def on_settled(self, settled) -> AlarmChanges:
        """COMMAND_SETTLED: the dispatcher opened (failed) or closed (acked) the meter's command alarm; keep the
        meter's level and announce it."""
        at = settled.at
        subject = alarms.meter(settled.meter_id)
        ev = alarm_event.c
        with self.engine.begin() as conn:
            alarms.set_meter_levels(conn, [settled.meter_id])
            q = sa.select(alarm_event).where(ev.subject_kind == "meter", ev.subject_id == subject.id,
                                              ev.kind.in_([alarms.COMMAND_FAILED, alarms.COUNT_MISMATCH]))
            if settled.state == "acked":
                rows = conn.execute(q.where(ev.closed_at == at)).mappings().all()
            else:
                rows = conn.execute(q.where(ev.open_key.is_not(None), ev.updated_at == at)).mappings().all()
        out = AlarmChanges(at, tuple(_change(alarms.as_alarm(r), r["open_key"] is not None) for r in rows))
        self._publish(out)
        return out

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, now: dt.datetime | None = None, cycle=None) -> AlarmChanges:
        now = now or self.clock()
        ev = alarm_event.c
        with self.engine.begin() as conn:
            a1, a2 = alarm_amounts(conn)
            amounts = (reading_fen(a1), reading_fen(a2))
            found = conn.execute(
                sa.select(meter_state.c.meter_id, meter_state.c.balance, meter_state.c.power_total,
                          meter_state.c.alarm1, meter_state.c.alarm2, meter_state.c.arrears, meter_state.c.overload,
                          meter_state.c.tamper, meter_state.c.comm_state, meter.c.status)
                .select_from(meter_state.join(meter, meter.c.id == meter_state.c.meter_id))
                .where(meter.c.status != "removed"))
            keys = list(found.keys())
            rows = [dict(zip(keys, r)) for r in found.all()]   # plain tuples: a third of the time of .mappings()
            open_now = {(r.subject_id, r.kind) for r in conn.execute(
                sa.select(ev.subject_id, ev.kind).where(ev.open_key.is_not(None), ev.subject_kind == "meter",
                                                        ev.kind.in_(alarms.METER_KINDS)))}
            to_open: dict[str, list] = {}
            to_close: dict[str, list[int]] = {}
            seen: set[int] = set()
            for row in rows:
                mid = int(row["meter_id"])
                seen.add(mid)
                if row["comm_state"] == "lost":
                    continue    # its bits and balance are from before it went quiet
                row["balance_fen"] = reading_fen(row["balance"]) if row["balance"] is not None else None
                for kind, (starts, holds) in meter_conditions(row, amounts, self.margin_fen).items():
                    key = (mid, kind)
                    if key not in open_now:
                        if starts:
                            code, params = _params(kind, row, amounts)
                            to_open.setdefault(kind, []).append((alarms.meter(mid), code, params))
                        continue
                    if holds:
                        self._clear.pop(key, None)
                        continue
                    cleared = self._clear.get(key, 0) + 1
                    if cleared >= self.close_after_polls:
                        self._clear.pop(key, None)
                        to_close.setdefault(kind, []).append(mid)
                    else:
                        self._clear[key] = cleared
            for mid, kind in open_now:     # a meter removed (or gone) closes its events
                if mid not in seen:
                    to_close.setdefault(kind, []).append(mid)
            for kind, events in to_open.items():
                alarms.open_alarms_of(conn, kind, LEVELS[kind], events, now)
            for kind, mids in to_close.items():
                alarms.close_alarms_of(conn, kind, [alarms.meter(m) for m in mids], now)
            alarms.set_meter_levels(conn)
            changes = self._announced(conn, to_open, to_close, cycle, now)
        out = AlarmChanges(now, changes)
        self._publish(out)
        return out

    def _announced(self, conn, to_open, to_close, cycle, now) -> tuple[AlarmChange, ...]:
        """The changes to publish: what this evaluation opened and closed, and the collector's lost contact."""
        ev = alarm_event.c
        keys = [alarms.open_key(kind, s) for kind, events in to_open.items() for s, _c, _p in events]
        if cycle is not None:
            keys += [alarms.open_key(alarms.LOST_CONTACT, Subject(k, i)) for k, ids in (
                ("meter", cycle.meters_lost), ("bus", cycle.buses_lost), ("gateway", cycle.gateways_lost))
                for i in ids]
        opened = []
        for i in range(0, len(keys), 1000):
            opened += [alarms.as_alarm(r) for r in conn.execute(
                sa.select(alarm_event).where(ev.open_key.in_(keys[i:i + 1000])).order_by(ev.id)).mappings()]
        closed = [(kind, "meter", m) for kind, mids in to_close.items() for m in mids]
        if cycle is not None:
            closed += [(alarms.LOST_CONTACT, k, i) for k, ids in (
                ("meter", cycle.meters_recovered), ("bus", cycle.buses_recovered),
                ("gateway", cycle.gateways_recovered)) for i in ids]
        return (*(_change(a, True) for a in opened),
                *(AlarmChange(None, kind, int(LEVELS.get(kind, AlarmLevel.WARNING)), sk, int(sid), False)
                  for kind, sk, sid in closed))

    def _publish(self, changes: AlarmChanges) -> None:
        if self.events is not None and changes.changes:
            self.events.publish(ALARM_CHANGED, changes)


_change = alarms.change_of
