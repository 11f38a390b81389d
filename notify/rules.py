"""Who is told what: customers' three-level balance messages (once per episode, quiet hours), operators' alarm
messages (lost gateways, tamper, failed batch commands, a digest when many meters go at once) and purchase
confirmations. Subscribed to core.events (CYCLE_CHANGED, COMMAND_SETTLED); every message goes to the outbox.

An episode of a customer level (alarm1, alarm2, arrears) opens when the meter's balance goes down through the
level's amount (arrears: through zero, or the meter's arrears bit) and closes when it rises above again; a new
crossing within REARM of the close is the same episode, so a balance wobbling around an amount sends one message.
When one cycle opens several levels of a meter, only the most severe is told (the others open silently).
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from core.clock import site_time, utcnow
from core.formatting import format_money
from notify.outbox import HOLD_EXEMPT, queue_message, quiet_until
from storage.engine import run_transaction
from storage.schema import (account, account_meter, building, command, gateway, ledger_entry, meter,
                            notify_episode, room)

CUSTOMER_KINDS = ("alarm1", "alarm2", "arrears", "purchase")
OPERATOR_KINDS = ("gateway_lost", "tamper", "command_failed", "meters_lost", "tamper_digest")
KINDS = CUSTOMER_KINDS + OPERATOR_KINDS
SEVERITY = ("arrears", "alarm2", "alarm1")       # most severe first
REARM = dt.timedelta(hours=1)
DIGEST_OVER = 10          # more meters than this lost (or tampered) in one cycle: one message per building
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
        from core.events import COMMAND_SETTLED, CYCLE_CHANGED
        events.subscribe(CYCLE_CHANGED, self.on_cycle)
        events.subscribe(COMMAND_SETTLED, self.on_settled)

    # -- events
    def on_cycle(self, changes) -> int:
        """CYCLE_CHANGED: customer levels from balance crossings and bits, operators' lost gateways, tamper and
        digests. Returns how many messages were queued."""
        opened: dict[int, list[str]] = {}
        closed: list[tuple[int, str]] = []
        balances: dict[int, int] = {}
        for c in changes.balances:
            kind = {"alarm1": "alarm1", "alarm2": "alarm2", "zero": "arrears"}.get(c.threshold)
            if kind is None:
                continue
            balances[c.meter_id] = c.new_fen
            (opened.setdefault(c.meter_id, []).append(kind) if c.direction == "down"
             else closed.append((c.meter_id, kind)))
        tampered: list[int] = []
        for b in changes.bits:
            if b.bit == "arrears":
                opened.setdefault(b.meter_id, []).append("arrears") if b.new else closed.append((b.meter_id, "arrears"))
            elif b.bit == "tamper":
                tampered.append(b.meter_id) if b.new else closed.append((b.meter_id, "tamper"))
        if not (opened or closed or tampered or changes.gateways_lost or changes.meters_lost):
            return 0
        at = changes.at

        def work(conn):
            queued = 0
            for mid, kind in closed:
                self._close_episode(conn, mid, kind, at)
            for mid, kinds in opened.items():
                queued += self._customer_levels(conn, mid, kinds, balances.get(mid), at)
            queued += self._tamper(conn, tampered, at)
            queued += self._gateways_lost(conn, changes.gateways_lost, at)
            if len(changes.meters_lost) > self.digest_over:
                queued += self._digest(conn, "meters_lost", changes.meters_lost, at)
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
    def _customer_levels(self, conn, meter_id: int, kinds: list[str], balance_fen: int | None, at) -> int:
        """Open each level's episode; tell the holder of the most severe one that started a new episode."""
        new = [k for k in SEVERITY if k in kinds and self._open_episode(conn, meter_id, k, at) is not None]
        if not new:
            return 0
        kind = new[0]
        number = self._episode_number(conn, meter_id, kind)
        holder = self._holder(conn, meter_id)
        if holder is None:
            return 0
        params = {"room": holder["room"], "time": self._time(at),
                  "balance": format_money(Decimal(balance_fen) / 100) if balance_fen is not None else "—"}
        return self._to_customer(conn, holder, meter_id, kind, params, at, episode=f"meter:{meter_id}:{kind}:{number}")

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

    # -- episodes
    def _open_episode(self, conn, meter_id: int, kind: str, at) -> int | None:
        """Open (or continue) the meter's episode of `kind`; returns its number when a NEW episode began."""
        key = f"meter:{meter_id}:{kind}"
        row = conn.execute(sa.select(notify_episode).where(notify_episode.c.key == key)).mappings().first()
        if row is None:
            conn.execute(notify_episode.insert().values(key=key, number=1, opened_at=at, closed_at=None))
            return 1
        if row["closed_at"] is None:
            return None
        if at - row["closed_at"] < self.rearm:           # back within the rearm time: the same episode
            conn.execute(notify_episode.update().where(notify_episode.c.key == key).values(closed_at=None))
            return None
        number = row["number"] + 1
        conn.execute(notify_episode.update().where(notify_episode.c.key == key)
                     .values(number=number, opened_at=at, closed_at=None))
        return number

    def _close_episode(self, conn, meter_id: int, kind: str, at) -> None:
        conn.execute(notify_episode.update().where(notify_episode.c.key == f"meter:{meter_id}:{kind}",
                                                   notify_episode.c.closed_at.is_(None)).values(closed_at=at))

    def _episode_number(self, conn, meter_id: int, kind: str) -> int:
        return conn.execute(sa.select(notify_episode.c.number)
                            .where(notify_episode.c.key == f"meter:{meter_id}:{kind}")).scalar() or 1

    # -- operators
    def _to_operators(self, conn, kind: str, params: dict, at, episode: str | None) -> int:
        queued = 0
        for phone in self.sms.alarm_numbers:
            nid = queue_message(conn, recipient="operator", phone=phone, language=DEFAULT_LANGUAGE, kind=kind,
                                template=kind, params=params, now=at,
                                episode=f"{episode}:{phone}" if episode else None)
            queued += nid is not None
        return queued

    def _tamper(self, conn, meter_ids: list[int], at) -> int:
        fresh = [mid for mid in meter_ids if self._open_episode(conn, mid, "tamper", at) is not None]
        if not fresh or not self.sms.alarm_numbers:
            return 0
        if len(fresh) > self.digest_over:
            return self._digest(conn, "tamper_digest", fresh, at)
        queued = 0
        for row in self._meters(conn, fresh):
            number = self._episode_number(conn, row["id"], "tamper")
            queued += self._to_operators(conn, "tamper", {"meter": row["address"], "room": row["place"],
                                                          "time": self._time(at)},
                                         at, f"meter:{row['id']}:tamper:{number}")
        return queued

    def _gateways_lost(self, conn, gateway_ids, at) -> int:
        if not gateway_ids or not self.sms.alarm_numbers:
            return 0
        names = conn.execute(sa.select(gateway.c.id, gateway.c.name).where(gateway.c.id.in_(gateway_ids))).all()
        stamp = at.strftime("%Y%m%d%H%M%S")
        return sum(self._to_operators(conn, "gateway_lost", {"gateway": name, "time": self._time(at)}, at,
                                      f"gateway:{gid}:lost:{stamp}") for gid, name in names)

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


def params_of(row: dict) -> dict:
    return json.loads(row["params"] or "{}")
