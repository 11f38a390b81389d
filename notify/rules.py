"""Who is told what: customers' three-level balance messages (once per episode, quiet hours), operators' alarm
messages (lost gateways, tamper, failed batch commands, a digest when many meters go at once) and purchase
confirmations. Subscribed to core.events (ALARM_CHANGED, COMMAND_SETTLED); every message goes to the outbox.

An episode is an alarm event's open period (billing.alarm_engine opens and closes them with hysteresis): the
message carries "alarm:<event id>" as its episode, and the outbox's UNIQUE episode keeps a second one out. On top
of that a meter's holder gets at most one message of a level per REARM (an hour): a balance that crosses alarm 1
three times in an hour, even one a purchase lifted well above the amount in between, sends one message. When one
evaluation opens several levels of a meter, only the most severe is told.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Callable

import sqlalchemy as sa

from core.clock import site_time, utcnow
from core.formatting import format_money
from notify.outbox import HOLD_EXEMPT, queue_message, quiet_until
from storage.alarms import AlarmLevel, message_text
from storage.engine import run_transaction
from storage.schema import account, account_meter, building, command, gateway, ledger_entry, meter, notification, room

CUSTOMER_KINDS = ("alarm1", "alarm2", "arrears", "purchase")
OPERATOR_KINDS = ("gateway_lost", "tamper", "command_failed", "meters_lost", "tamper_digest",
                  "area_alarm")   # area_alarm: a transformer area's critical alarm (smoke, water, oil temperature)
KINDS = CUSTOMER_KINDS + OPERATOR_KINDS
SEVERITY = ("arrears", "alarm2", "alarm1")       # most severe first
REARM = dt.timedelta(hours=1)
DIGEST_OVER = 10          # more meters than this lost (or tampered) in one evaluation: one message per building
BATCH_PURPOSES = ("relay", "tariff_push", "limits_push")   # operators' commands; money failures are alarms
DEFAULT_LANGUAGE = "zh"


class NotificationRules:
    """Turns published events into outbox rows. `wake` is called after messages were queued (the notify job)."""

    def __init__(self, engine: sa.Engine, sms, zone: dt.tzinfo, *, clock: Callable[[], dt.datetime] = utcnow,
                 wake: Callable[[], object] | None = None, digest_over: int = DIGEST_OVER, rearm: dt.timedelta = REARM):
        self.engine, self.sms, self.zone, self.clock = engine, sms, zone, clock
        self.wake, self.digest_over, self.rearm = wake, digest_over, rearm
        self.quiet = sms.quiet_window()

    def subscribe(self, events) -> None:
        from core.events import ALARM_CHANGED, COMMAND_SETTLED
        events.subscribe(ALARM_CHANGED, self.on_alarm)
        events.subscribe(COMMAND_SETTLED, self.on_settled)

    # -- events
    def on_alarm(self, changes) -> int:
        """ALARM_CHANGED (storage.alarms.AlarmChanges): customers' levels, operators' lost gateways, tamper,
        digests of many meters lost at once and transformer areas' critical alarms. Returns how many messages
        were queued."""
        at = changes.at
        levels: dict[int, list] = {}
        tamper, gateways, meters_lost, areas = [], [], [], []
        for c in changes.opened:
            if c.subject_kind == "meter" and c.kind in SEVERITY:
                levels.setdefault(c.subject_id, []).append(c)
            elif c.subject_kind == "meter" and c.kind == "tamper":
                tamper.append(c)
            elif c.kind == "lost_contact" and c.subject_kind == "gateway":
                gateways.append(c)
            elif c.kind == "lost_contact" and c.subject_kind == "meter":
                meters_lost.append(c.subject_id)
            elif c.subject_kind == "area" and c.level >= AlarmLevel.CRITICAL:
                areas.append(c)
        if not (levels or tamper or gateways or areas or len(meters_lost) > self.digest_over):
            return 0

        def work(conn):
            queued = 0
            for mid, opened in levels.items():
                worst = min(opened, key=lambda c: SEVERITY.index(c.kind))
                queued += self._customer_level(conn, mid, worst, at)
            queued += self._tamper(conn, tamper, at)
            queued += self._gateways_lost(conn, gateways, at)
            if len(meters_lost) > self.digest_over:
                queued += self._digest(conn, "meters_lost", meters_lost, at)
            queued += self._areas(conn, areas, at)
            return queued
        return self._done(run_transaction(self.engine, work))

    def on_settled(self, event) -> int:
        """COMMAND_SETTLED: a purchase confirmation for a confirmed sale; a failed operators' command to the alarm
        numbers (once per batch)."""
        if event.purpose == "sale" and event.state == "acked" and self.sms.purchase_confirmation:
            return self._done(run_transaction(self.engine, lambda conn: self._purchase(conn, event)))
        if event.purpose in BATCH_PURPOSES and event.state in ("failed", "expired"):
            return self._done(run_transaction(self.engine, lambda conn: self._command_failed(conn, event)))
        return 0

    def _done(self, queued: int) -> int:
        if queued and self.wake is not None:
            self.wake()
        return queued

    # -- customers
    def _customer_level(self, conn, meter_id: int, change, at) -> int:
        """Tell the holder that the meter's balance reached a level, unless told of that level within REARM."""
        recent = conn.execute(sa.select(notification.c.id).where(
            notification.c.meter_id == meter_id, notification.c.kind == change.kind,
            notification.c.recipient == "customer", notification.c.created_at > at - self.rearm).limit(1)).first()
        holder = self._holder(conn, meter_id)
        if recent is not None or holder is None:
            return 0
        params = {"room": holder["room"], "time": self._time(at),
                  "balance": _money(dict(change.params).get("balance"))}
        return self._to_customer(conn, holder, meter_id, change.kind, params, at, episode=f"alarm:{change.id}")

    def _purchase(self, conn, event) -> int:
        entry = conn.execute(sa.select(ledger_entry).join(command, command.c.ledger_entry_id == ledger_entry.c.id)
                             .where(command.c.id == event.id)).mappings().first()
        if entry is None or entry["kind"] != "sale":
            return 0
        holder = self._holder(conn, event.meter_id, account_id=entry["account_id"])
        if holder is None:
            return 0
        params = {"room": holder["room"], "amount": format_money(entry["amount"]),
                  "balance": format_money(entry["balance_after"]), "receipt": entry["receipt_no"],
                  "time": self._time(entry["confirmed_at"] or event.at)}
        return self._to_customer(conn, holder, event.meter_id, "purchase", params, event.at,
                                 episode=f"purchase:{entry['id']}")

    def _to_customer(self, conn, holder: dict, meter_id: int, kind: str, params: dict, at, episode: str) -> int:
        hold = None if kind in HOLD_EXEMPT else quiet_until(at, self.quiet, self.zone)
        nid = queue_message(conn, recipient="customer", phone=holder["phone"], language=holder["language"],
                            kind=kind, template=kind, params=params, now=at, account_id=holder["account_id"],
                            meter_id=meter_id, episode=episode, hold_until=hold)
        return int(nid is not None)

    def _holder(self, conn, meter_id: int, account_id: int | None = None) -> dict | None:
        """The open account on the meter (or the given one) with a phone: its phone, language and room."""
        q = (sa.select(account.c.id, account.c.phone, account.c.language, room.c.name.label("room"),
                       building.c.name.label("building"))
             .select_from(account.join(account_meter, account_meter.c.account_id == account.c.id)
                          .join(meter, meter.c.id == account_meter.c.meter_id)
                          .outerjoin(room, room.c.id == meter.c.room_id)
                          .outerjoin(building, building.c.id == room.c.building_id))
             .where(account_meter.c.meter_id == meter_id, account.c.phone_digits.is_not(None)))
        q = q.where(account.c.id == account_id) if account_id is not None else \
            q.where(account_meter.c.removed_at.is_(None), account.c.status == "open")
        row = conn.execute(q.order_by(account_meter.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        place = " ".join(p for p in (row["building"], row["room"]) if p)
        return {"account_id": row["id"], "phone": row["phone"], "room": place or str(meter_id),
                "language": row["language"] or DEFAULT_LANGUAGE}

    # -- operators
    def _to_operators(self, conn, kind: str, params: dict, at, episode: str | None) -> int:
        queued = 0
        for phone in self.sms.alarm_numbers:
            nid = queue_message(conn, recipient="operator", phone=phone, language=self.sms.operator_language,
                                kind=kind, template=kind, params=params, now=at,
                                episode=f"{episode}:{phone}" if episode else None)
            queued += nid is not None
        return queued

    def _tamper(self, conn, changes: list, at) -> int:
        if not changes or not self.sms.alarm_numbers:
            return 0
        if len(changes) > self.digest_over:
            return self._digest(conn, "tamper_digest", [c.subject_id for c in changes], at)
        episodes = {c.subject_id: f"alarm:{c.id}" for c in changes}
        return sum(self._to_operators(conn, "tamper", {"meter": row["address"], "room": row["place"],
                                                       "time": self._time(at)}, at, episodes[row["id"]])
                   for row in self._meters(conn, episodes))

    def _areas(self, conn, changes: list, at) -> int:
        """A transformer area's critical alarm to the alarm numbers: the event's own message, once per event."""
        if not changes or not self.sms.alarm_numbers:
            return 0
        lang = self.sms.operator_language
        return sum(self._to_operators(conn, "area_alarm", {
            "what": message_text({"message_code": c.message_code, "message_params": dict(c.params)}, lang),
            "time": self._time(at)}, at, f"alarm:{c.id}") for c in changes)

    def _gateways_lost(self, conn, changes: list, at) -> int:
        if not changes or not self.sms.alarm_numbers:
            return 0
        names = dict(conn.execute(sa.select(gateway.c.id, gateway.c.name)
                                  .where(gateway.c.id.in_([c.subject_id for c in changes]))).all())
        return sum(self._to_operators(conn, "gateway_lost", {"gateway": names.get(c.subject_id, c.subject_id),
                                                             "time": self._time(at)}, at, f"alarm:{c.id}")
                   for c in changes)

    def _digest(self, conn, kind: str, meter_ids, at) -> int:
        """One message per building: "N meters lost in building X"."""
        if not self.sms.alarm_numbers:
            return 0
        per_building: dict[str, int] = {}
        for row in self._meters(conn, meter_ids):
            per_building[row["building"] or "—"] = per_building.get(row["building"] or "—", 0) + 1
        return sum(self._to_operators(conn, kind, {"count": n, "building": name, "time": self._time(at)}, at, None)
                   for name, n in sorted(per_building.items()))

    def _command_failed(self, conn, event) -> int:
        if not self.sms.alarm_numbers:
            return 0
        row = conn.execute(sa.select(command.c.batch_id, meter.c.address)
                           .join(meter, meter.c.id == command.c.meter_id)
                           .where(command.c.id == event.id)).mappings().first()
        if row is None:
            return 0
        batch = row["batch_id"] or f"command-{event.id}"
        params = {"batch": batch, "meter": row["address"], "reason": (event.error or event.result or event.state),
                  "time": self._time(event.at)}
        # once per batch: the first failure names the batch; the batch page shows the rest
        return self._to_operators(conn, "command_failed", params, event.at, f"batch:{batch}:failed")

    def _meters(self, conn, meter_ids) -> list[dict]:
        rows = conn.execute(sa.select(meter.c.id, meter.c.address, room.c.name.label("room"),
                                      building.c.name.label("building"))
                            .select_from(meter.outerjoin(room, room.c.id == meter.c.room_id)
                                         .outerjoin(building, building.c.id == room.c.building_id))
                            .where(meter.c.id.in_(list(meter_ids)))).mappings().all()
        return [dict(r, place=" ".join(p for p in (r["building"], r["room"]) if p) or r["address"]) for r in rows]

    def _time(self, at) -> str:
        return site_time(at, self.zone).strftime("%m-%d %H:%M")


def _money(yuan) -> str:
    """The alarm's balance parameter ("99.00" yuan) as money for people; a dash when unknown."""
    try:
        return format_money(Decimal(str(yuan))) if yuan not in (None, "") else "—"
    except InvalidOperation:
        return "—"


def params_of(row: dict) -> dict:
    return json.loads(row["params"] or "{}")
