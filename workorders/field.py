"""The worker's side of work orders on a phone: an order as the worker sees it (with the customer, the meter's live
state, evidence and confirmations), the customer's confirmation on site (QR code verified on the server, drawn
signature, satisfaction rating) through the core's transitions, messages with attachments and deadline reminders,
and workers' terminals with their online rate.

Online rate (one definition, used by the terminals page and the office's KPIs): over the last N days, the share of
the worker's working time in which any of their terminals was seen. Working time is the [workorders] working-hours
calendar; when orders run around the clock (no working_hours), a working day of 08:00-18:00 on the configured
working days. "Seen" is counted in quarter hours: a terminal reports itself while the worker's pages are open
(about every five minutes), and a quarter hour with any report counts whole.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Callable

import sqlalchemy as sa

from billing.credit import Actor
from core import permissions as P
from storage import audit, field as store
from workorders.deadlines import Calendar
from workorders.errors import WorkOrderError
from workorders.evidence import EvidenceStore, FieldError, Uploader
from workorders.service import WorkOrderService, _coordinates, one_line

STAGES = {"arrival": "arrive", "completion": "complete"}
SLOT = dt.timedelta(minutes=15)
DEFAULT_DAY = (dt.time(8), dt.time(18))
SUBJECT_LENGTH = 200
BODY_LENGTH = 4000
_DATA_URL = re.compile(r"data:image/png;base64,([A-Za-z0-9+/]+={0,2})")
_DEVICE_KEY = re.compile(r"[A-Za-z0-9_-]{20,100}")


@dataclass(frozen=True)
class Confirmed:
    order: dict
    confirmation_id: int
    signature_id: int | None


class FieldService:
    def __init__(self, engine: sa.Engine, orders: WorkOrderService, evidence: EvidenceStore, *,
                 clock: Callable[[], dt.datetime]):
        self.engine = engine
        self.orders = orders
        self.evidence = evidence
        self.clock = clock

    # --- who ------------------------------------------------------------------------------------------
    def uploader(self, actor: Actor) -> Uploader:
        """The evidence store's view of an actor: their operator id, and the office may add to any order."""
        from storage.workorders import operator_by_username
        with self.engine.connect() as conn:
            row = operator_by_username(conn, actor.username)
        office = actor.may(P.WORKORDER_DISPATCH) or actor.may(P.WORKORDER_REVIEW)
        return Uploader(actor.username, row["id"] if row else None, any_order=office, address=actor.address)

    def _denied(self, actor: Actor, order_id, what: str) -> None:
        """A refused look at or change of an order that exists: one operation-log row. An id that names no row
        (not a whole number, or beyond the id column: the database would refuse to be asked) logs nothing."""
        try:
            oid = _order_id(order_id)
        except WorkOrderError:
            return
        with self.engine.connect() as conn:
            exists, _ = store.order_assignee(conn, oid)
        if exists:
            with self.engine.begin() as conn:
                audit.record(conn, operator=actor.username[:100], action="workorder.denied", target=f"order {oid}",
                             ts=self.clock(), after={"action": what}, source=actor.address)

    # --- an order on the phone ---------------------------------------------------------------------
    def order(self, actor: Actor, order_id, now: dt.datetime | None = None) -> dict:
        """The core's view of the order (WorkOrderError order_unknown for an order that is not the worker's,
        audited) with its evidence, confirmations and the meter's live state."""
        try:
            oid = _order_id(order_id)
            view = self.orders.order_view(actor, oid, now=now)
        except WorkOrderError as exc:
            if exc.code == "order_unknown":
                self._denied(actor, order_id, "view")
            raise
        with self.engine.connect() as conn:
            view["evidence"] = store.evidence_of_order(conn, oid)
            view["confirmations"] = store.confirmations(conn, oid)
            meter_id = view["order"].get("meter_id")
            view["meter"] = store.meter_live(conn, meter_id) if meter_id is not None else None
        return view

    def act(self, actor: Actor, order_id, action: str, **kw) -> dict:
        """A transition the worker takes from the phone (accept, decline, hold, release, rework): the core's."""
        try:
            return self.orders.act(actor, _order_id(order_id), action, **kw)
        except WorkOrderError as exc:
            if exc.code == "order_unknown":
                self._denied(actor, order_id, action)
            raise

    def confirm(self, actor: Actor, order_id, stage: str, token, *, signature: str | None = None, rating=None,
                lat=None, lon=None, now: dt.datetime | None = None) -> Confirmed:
        """The customer confirms the worker's arrival or the completed work: their QR code (verified here: a
        forged code, another customer's or another district's is refused, nothing written), at completion their
        signature (a PNG data URL from the drawing canvas) and a satisfaction rating 1..5. Then the core's
        transition (arrive / complete: its own checks, e.g. a photo where the type needs one), the signature as
        evidence and the confirmation row."""
        now = now or self.clock()
        if stage not in STAGES:
            raise FieldError("stage_unknown")
        view = self.order(actor, order_id, now=now)
        order = view["order"]
        stars = None
        if stage == "completion":
            stars = _rating(rating)
            if not signature:
                raise FieldError("signature_missing")
        png = _signature_png(signature, self.evidence.cfg.photo_bytes) if signature else None
        if not isinstance(token, str) or not token.strip():
            raise FieldError("qr_missing")
        customer = self.orders.check_customer_qr(order, _token_of(token))
        note = "customer QR confirmed" if stage == "arrival" else f"customer QR confirmed, rating {stars}"
        after = self.orders.act(actor, order["id"], STAGES[stage], note=note, lat=lat, lon=lon, now=now)
        who = self.uploader(actor)
        signature_id = None
        if png is not None:
            signature_id = self.evidence.store_bytes(who, png, kind="signature", order_id=order["id"],
                                                     name=f"signature-{stage}.png", lat=lat, lon=lon)
        la, lo = _coordinates(lat, lon)
        with self.engine.begin() as conn:
            existing = store.confirmation(conn, order["id"], stage)
            values = dict(account_id=int(customer.get("account_id") or 0), signature_id=signature_id, rating=stars,
                          confirmed_by=actor.username[:100], confirmed_at=now, lat=la, lon=lo)
            if existing is None:
                cid = store.insert_confirmation(conn, order_id=order["id"], stage=stage, **values)
            else:  # completed again after a rejection: the latest confirmation counts
                cid = existing["id"]
                store.update_confirmation(conn, cid, **values)
            audit.record(conn, operator=actor.username[:100], action="workorder.confirm",
                         target=f"order {order['number']}", ts=now,
                         after={"stage": stage, "account": customer.get("account_id"), "rating": stars,
                                "signature": signature_id}, source=actor.address)
        return Confirmed(after, cid, signature_id)

    # --- messages ------------------------------------------------------------------------------------
    def messages(self, actor: Actor) -> list[dict]:
        with self.engine.connect() as conn:
            return store.messages_of(conn, actor.username)

    def unread(self, actor: Actor) -> int:
        with self.engine.connect() as conn:
            return store.unread_count(conn, actor.username)

    def partners(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return store.message_partners(conn)

    def send_message(self, actor: Actor, recipient, subject, body, *, order_id=None, attachments=(),
                     now: dt.datetime | None = None) -> int:
        """A message to another active operator (office to worker or back), with evidence files the sender may
        see as attachments; refused with a message, nothing written, when a part is wrong."""
        now = now or self.clock()
        if not (actor.may(P.WORKORDER_EXECUTE) or actor.may(P.WORKORDER_DISPATCH) or actor.may(P.WORKORDER_REVIEW)):
            raise FieldError("message_denied", 403)
        names = {u for u, _ in self.partners()}
        if not isinstance(recipient, str) or recipient not in names or recipient == actor.username:
            raise FieldError("recipient_unknown")
        subject = one_line(subject, SUBJECT_LENGTH)
        if not subject:
            raise FieldError("subject_missing")
        text = _text(body, BODY_LENGTH)
        if not text:
            raise FieldError("body_missing")
        oid = None
        if order_id not in (None, ""):
            oid = self.order(actor, order_id)["order"]["id"]
        who = self.uploader(actor)
        files = []
        for eid in attachments or ():
            row, _path = self.evidence.file_for(who, eid)
            files.append(row)
        self._check_recipient_may_see(recipient, files)
        files = [f["id"] for f in files]
        with self.engine.begin() as conn:
            mid = store.insert_message(conn, attachments=sorted(set(files)), sender=actor.username[:100],
                                       recipient=recipient, order_id=oid, kind="message", subject=subject,
                                       body=text, sent_at=now)
            audit.record(conn, operator=actor.username[:100], action="message.send", target=f"message {mid}", ts=now,
                         after={"to": recipient, "order": oid, "attachments": len(files)}, source=actor.address)
        return mid

    def _check_recipient_may_see(self, recipient: str, files: list[dict]) -> None:
        """A file of an order goes only to someone who may see that order: the office, or the order's own worker.
        A worker never gets a link to another worker's order evidence (refused, nothing written)."""
        from core.permissions import WORKORDER_DISPATCH, WORKORDER_REVIEW
        from storage.operators import permissions_of_roles, roles_of
        from storage.workorders import operator_by_username
        order_files = [f for f in files if f.get("order_id") is not None]
        if not order_files:
            return
        with self.engine.connect() as conn:
            row = operator_by_username(conn, recipient)
            perms = permissions_of_roles(conn, roles_of(conn, row["id"])) if row else set()
            if WORKORDER_DISPATCH in perms or WORKORDER_REVIEW in perms:
                return
            for f in order_files:
                _exists, assignee = store.order_assignee(conn, f["order_id"])
                if row is None or assignee != row["id"]:
                    raise FieldError("attachment_not_for_recipient", name=f.get("name") or f"#{f['id']}")

    def attachable(self, actor: Actor, limit: int = 100) -> list[dict]:
        """The files `actor` may attach to a message, newest first: for a worker, their own orders' evidence and
        the files they uploaded; for the office, the latest evidence of any order."""
        who = self.uploader(actor)
        with self.engine.connect() as conn:
            return store.attachable_evidence(conn, who.username, limit,
                                             worker_id=None if who.any_order else (who.operator_id or -1))

    def mark_read(self, actor: Actor, message_id, now: dt.datetime | None = None) -> bool:
        now = now or self.clock()
        mid = _order_id(message_id, code="message_unknown")
        with self.engine.begin() as conn:
            row = store.message_row(conn, mid)
            if row is None or row["recipient"] != actor.username:
                raise FieldError("message_unknown", 404)
            return store.mark_read(conn, mid, now)

    def copy_reminders(self, now: dt.datetime | None = None) -> int:
        """Deadline reminders into the workers' messages, beside the SMS the core queues through the outbox: once
        per order, stage (due soon, overdue) and deadline."""
        from storage.workorders import orders_due_by
        from workorders import model as M
        from core.clock import site_time
        now = now or self.clock()
        soon = now + dt.timedelta(hours=self.orders.config.due_soon_h)
        made = 0
        with self.engine.begin() as conn:
            for o in orders_due_by(conn, soon, M.CLOCK_STATES):
                if o["assigned_to"] is None:
                    continue
                who = _username(conn, o["assigned_to"])
                if who is None:
                    continue
                stage = "overdue" if now >= o["due_at"] else "due_soon"
                due = site_time(o["due_at"], self.orders.zone).strftime("%Y-%m-%d %H:%M")
                made += store.insert_reminder(
                    conn, sender="system", recipient=who, order_id=o["id"], subject=f"{stage}|{o['number']}",
                    body=due, sent_at=now, episode=f"wo:{o['id']}:{stage}:{o['due_at']:%Y%m%d%H%M}")
        return made

    # --- terminals -------------------------------------------------------------------------------------
    def seen(self, username: str, device_key, *, user_agent=None, app_version=None, lat=None, lon=None,
             now: dt.datetime | None = None) -> int | None:
        """A worker's phone reports itself: registered the first time (at sign-in), then last seen, location and
        the quarter hour counted. Returns the terminal's id (None for a key that is not one)."""
        now = now or self.clock()
        if not isinstance(device_key, str) or not _DEVICE_KEY.fullmatch(device_key):
            return None
        digest = hashlib.sha256(device_key.encode("ascii")).hexdigest()
        ua = one_line(user_agent, 300) or None
        version = one_line(app_version, 40) or None
        la, lo = _coordinates(lat, lon)
        with self.engine.begin() as conn:
            row = store.terminal_by_device(conn, digest)
            if row is not None and row["operator"] != username:
                # a phone handed to another worker: a terminal of its own under a key of that worker
                digest = hashlib.sha256(f"{username}|{device_key}".encode()).hexdigest()
                row = store.terminal_by_device(conn, digest)
            if row is not None and row["state"] == "blocked":
                raise FieldError("terminal_blocked", 403)   # not seen, not counted online
            if row is None:
                tid = store.insert_terminal(conn, operator=username, device_hash=digest, user_agent=ua,
                                            app_version=version, state="active", registered_at=now, last_seen_at=now,
                                            lat=la, lon=lo, located_at=now if la is not None else None)
                audit.record(conn, operator=username, action="terminal.register", target=f"terminal {tid}", ts=now,
                             after={"user_agent": ua, "app_version": version})
            else:
                tid = row["id"]
                values = {"last_seen_at": now}
                if ua:
                    values["user_agent"] = ua
                if version:
                    values["app_version"] = version
                if la is not None:
                    values.update(lat=la, lon=lo, located_at=now)
                store.update_terminal(conn, tid, **values)
            store.mark_seen(conn, tid, username, _slot(now))
        return tid

    def terminal_of(self, username: str, device_key) -> dict | None:
        """The terminal a worker's device key names (as seen() registers it), or None."""
        if not isinstance(device_key, str) or not _DEVICE_KEY.fullmatch(device_key):
            return None
        with self.engine.connect() as conn:
            row = store.terminal_by_device(conn, hashlib.sha256(device_key.encode("ascii")).hexdigest())
            if row is not None and row["operator"] != username:
                row = store.terminal_by_device(conn, hashlib.sha256(f"{username}|{device_key}".encode()).hexdigest())
        return row

    def device_blocked(self, username: str, device_key) -> bool:
        """Whether the worker's device (its key from the cookie) is a blocked terminal: its field requests are
        refused."""
        row = self.terminal_of(username, device_key)
        return row is not None and row["state"] == "blocked"

    def set_terminal_state(self, actor: Actor, terminal_id, *, blocked: bool, reason=None,
                           now: dt.datetime | None = None) -> dict:
        """Block a worker's registered phone (a reason required) or unblock it: workorder.dispatch, checked here;
        audited with the state before and after."""
        now = now or self.clock()
        tid = _order_id(terminal_id, code="terminal_unknown")
        if not (actor.may(P.WORKORDER_DISPATCH)):
            with self.engine.begin() as conn:
                audit.record(conn, operator=actor.username[:100], action="permission.denied",
                             target=f"terminal {tid}", ts=now, after={"permission": P.WORKORDER_DISPATCH},
                             source=actor.address)
            raise FieldError("terminal_denied", 403)
        if not isinstance(blocked, bool):
            raise FieldError("terminal_unknown", 404)
        why = one_line(reason, 300)
        if blocked and not why:
            raise FieldError("terminal_reason_missing")
        state = "blocked" if blocked else "active"
        with self.engine.begin() as conn:
            row = store.terminal_row(conn, tid)
            if row is None:
                raise FieldError("terminal_unknown", 404)
            store.update_terminal(conn, tid, state=state, state_reason=why or None, state_by=actor.username[:100],
                                  state_at=now)
            audit.record(conn, operator=actor.username[:100], action="terminal.block" if blocked else "terminal.unblock",
                         target=f"terminal {tid}", ts=now, before={"state": row["state"]},
                         after={"state": state, "operator": row["operator"], "reason": why or None},
                         source=actor.address)
            return store.terminal_row(conn, tid)

    def terminals(self, days: int = 30, now: dt.datetime | None = None) -> list[dict]:
        """Every registered terminal with its worker's online rate over the last `days`."""
        now = now or self.clock()
        rates = self.online_rates(days, now)
        with self.engine.connect() as conn:
            rows = store.terminals(conn)
        for r in rows:
            r["online_rate"] = rates.get(r["operator"])
        return rows

    def online_rates(self, days: int = 30, now: dt.datetime | None = None) -> dict[str, float]:
        now = now or self.clock()
        start = now - dt.timedelta(days=days)
        with self.engine.connect() as conn:
            seen = store.seen_slots(conn, start, now)
        return online_rates(seen, working_calendar(self.orders.calendar), start, now)


# --- the online rate ---------------------------------------------------------------------------------------
def working_calendar(calendar: Calendar) -> Calendar:
    """The calendar the online rate counts: the orders' working hours, or 08:00-18:00 on their working days."""
    return calendar if calendar.hours is not None else replace(calendar, hours=DEFAULT_DAY)


def online_rates(seen: list[tuple[str, dt.datetime]], calendar: Calendar, start: dt.datetime,
                 end: dt.datetime) -> dict[str, float]:
    """Per worker: working time in quarter hours seen / working time from `start` to `end` (0..1)."""
    working = calendar.between(start, end)
    if working <= dt.timedelta():
        return {}
    counted: dict[str, dt.timedelta] = {}
    for name, slot in seen:
        counted[name] = counted.get(name, dt.timedelta()) + calendar.between(max(slot, start), min(slot + SLOT, end))
    return {name: min(1.0, t / working) for name, t in counted.items()}


def _slot(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


# --- edge checks -------------------------------------------------------------------------------------------
def _username(conn: sa.Connection, operator_id: int) -> str | None:
    from storage.operators import operator_by_id
    row = operator_by_id(conn, operator_id)
    return row["username"] if row else None


def _order_id(value, code: str = "order_unknown") -> int:
    if isinstance(value, bool):
        raise WorkOrderError(code) if code == "order_unknown" else FieldError(code, 404)
    if isinstance(value, int) and 0 < value < 2 ** 31:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return int(value.strip())
    if code == "order_unknown":
        raise WorkOrderError("order_unknown", order=one_line(value, 30))
    raise FieldError(code, 404)


def _rating(value) -> int:
    if isinstance(value, bool):
        raise FieldError("rating_invalid")
    if isinstance(value, str) and re.fullmatch(r"[1-5]", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise FieldError("rating_invalid")
    return value


def _signature_png(data_url, limit: int) -> bytes:
    """The PNG bytes of a canvas's data URL (the type is checked again by the evidence store's sniffing)."""
    if not isinstance(data_url, str) or len(data_url) > limit * 4 // 3 + 64:
        raise FieldError("signature_invalid")
    m = _DATA_URL.fullmatch(data_url.strip())
    if not m:
        raise FieldError("signature_invalid")
    try:
        png = base64.b64decode(m.group(1), validate=True)
    except (binascii.Error, ValueError):
        raise FieldError("signature_invalid") from None
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) < 67:
        raise FieldError("signature_invalid")
    return png


def _token_of(text: str) -> str:
    """The token of what was scanned or typed: the customer page's address (…/c/<token>) or the token itself."""
    text = text.strip()
    if "/c/" in text:
        text = text.rsplit("/c/", 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
    return text[:200]


def _text(value, length: int) -> str:
    """A message body: printable text and line breaks, at most `length` characters."""
    if not isinstance(value, str):
        return ""
    kept = "".join(ch for ch in value.replace("\r\n", "\n") if ch == "\n" or ch.isprintable())
    return kept.strip()[:length]
