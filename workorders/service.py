"""Work orders, the core: creation (by hand, from a customer's request, from the ticket feed, from alarms), the
lifecycle through the transition table with its role guards, dispatch, time limits and reminders, steps,
materials and fees, search.

Who acts comes in as billing.credit.Actor (an operator's username and permissions, an API client's scope, or the
system). Every state change is one transaction: the move (storage.transitions.WORK_ORDER, which reads the state in
the transaction), its work_order_event row and its operation-log row. A refusal writes nothing but its
permission.denied log row, and raises WorkOrderError with a code the catalogs put into words.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable

import sqlalchemy as sa

from billing import qr
from billing.credit import Actor
from billing.money import parse_amount, round_money
from core import permissions as P
from core.clock import site_time, utcnow
from core.config import WorkOrdersConfig
from storage import alarms as alarm_store
from storage import audit
from storage import workorders as store
from storage.engine import is_conflict, is_unique_violation
from storage.transitions import WORK_ORDER, TransitionRefused, transition
from workorders import model as M
from workorders.cards import card_rows
from workorders.deadlines import Calendar, due_flag
from workorders.errors import WorkOrderError
from workorders.text import MAX_QUANTITY, _decimal, _quantity, one_line  # noqa: F401 (re-exported)

TEXT_LENGTH = 1000          # description
REASON_LENGTH = 500
VALUE_LENGTH = 200
POLE_LENGTH = 40
EXTERNAL_ID_LENGTH = 80
SEARCH_LENGTH = 60
RELAY_KINDS = ("trip", "close", "keep_power", "restore_prepaid")
REMIND_LATE = dt.timedelta(days=1)     # an order overdue longer than this is not reminded of any more
_RETRIES = 40
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Created:
    """An order as creation left it; `created` False when an earlier one was answered instead (a repeated
    external id, a cause that has an open order)."""
    order: dict
    created: bool


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance. Five lines of trigonometry: a geodesy library (geopy, pyproj) for ranking a few
    workers by distance would be a large dependency for nothing more exact that matters here."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class WorkOrderService:
    """The work orders of one site. `qr_key` verifies customers' QR tokens; `clock` gives naive UTC now; services
    take `now` too so tests and jobs fix the time."""

    def __init__(self, engine: sa.Engine, *, config: WorkOrdersConfig | None = None, zone: dt.tzinfo = dt.UTC,
                 qr_key: bytes | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 completion_checks: Iterable[Callable[[sa.Connection, dict], str | None]] = ()):
        self.engine, self.config, self.zone, self.qr_key, self.clock = (
            engine, config or WorkOrdersConfig(), zone, qr_key, clock)
        self.calendar = Calendar.from_config(self.config, zone)
        # each (conn, order) -> an error code refusing completion, or None; W2's own checks may be added
        self.completion_checks = (self._photo_check, *completion_checks)

    # -- plumbing ------------------------------------------------------------------------------------------
    def _run(self, work: Callable[[sa.Connection], object]):
        """`work(conn)` in one transaction, again from the start on a write conflict or a unique key another
        transaction took first (the rerun reads the winner's row)."""
        for attempt in range(_RETRIES):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if not (is_conflict(exc) or is_unique_violation(exc)) or attempt == _RETRIES - 1:
                    raise
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        return now if now is not None else self.clock()

    def _deny(self, actor: Actor, permission: str | None, target: str, now: dt.datetime) -> WorkOrderError:
        with self.engine.begin() as conn:
            audit.record(conn, operator=actor.username[:100], action="permission.denied", target=target[:200],
                         ts=now, after={"permission": permission or "system"}, source=actor.address or actor.channel)
        return WorkOrderError("permission_denied", permission=permission or "system")

    def _require(self, actor: Actor, permission: str, target: str, now: dt.datetime) -> None:
        if not isinstance(actor, Actor):
            raise TypeError("work-order services take a billing.credit.Actor")
        if not actor.may(permission):
            raise self._deny(actor, permission, target, now)

    @staticmethod
    def _actor_id(conn: sa.Connection, actor: Actor) -> int | None:
        row = store.operator_by_username(conn, actor.username)
        return row["id"] if row else None

    # -- seeding ----------------------------------------------------------------------------------------------
    def seed(self) -> list[str]:
        """The seeded order types and their cards (a type's card only when the type is new); idempotent."""
        def work(conn):
            new = store.insert_missing_types(conn, [
                {"key": k, "name_en": en, "name_zh": zh, "active": True, "photo_required": photo, "sort": i}
                for i, (k, en, zh, photo) in enumerate(M.SEEDED_TYPES)])
            for key in new:
                store.insert_card_items(conn, card_rows(key))
            return new
        return self._run(work)

    def order_types(self, active_only: bool = True) -> list[dict]:
        with self.engine.connect() as conn:
            return store.order_types(conn, active_only)

    def card(self, type_key: str) -> list[dict]:
        with self.engine.connect() as conn:
            return store.card_items(conn, type_key)

    def save_type(self, actor: Actor, key, *, name_en, name_zh, active: bool = True, photo_required: bool = False,
                  now: dt.datetime | None = None) -> dict:
        """Add an order type (a site's own; its card starts empty) or change one's names, whether it is offered and
        whether it needs a photo to complete. A type is never deleted: its orders keep it."""
        now = self._now(now)
        self._require(actor, P.WORKORDER_DISPATCH, f"work_order_type:{one_line(key, 30)}", now)
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,29}", key):
            raise WorkOrderError("type_key_invalid")
        names = {"name_en": one_line(name_en, 100), "name_zh": one_line(name_zh, 100)}
        if not all(names.values()) or not isinstance(active, bool) or not isinstance(photo_required, bool):
            raise WorkOrderError("type_invalid")

        def work(conn):
            before = store.order_type(conn, key)
            row = {**names, "active": active, "photo_required": photo_required}
            store.save_type(conn, key, row, sort=len(store.order_types(conn, active_only=False)))
            audit.record(conn, operator=actor.username[:100], action="workorder.type",
                         target=f"work_order_type:{key}", ts=now, source=actor.address or actor.channel,
                         before=before, after=row)
            return store.order_type(conn, key)
        return self._run(work)

    def save_card(self, actor: Actor, type_key, text, now: dt.datetime | None = None) -> list[dict]:
        """Replace a type's operating card with the office's edited lines (workorders.cards.parse_card: refused
        with the line named, nothing written). workorder.dispatch, checked here; audited with the card before and
        after. New orders copy the new card; existing orders keep the copy they took."""
        from workorders.cards import card_text, parse_card
        now = self._now(now)
        key = one_line(type_key, 30)
        self._require(actor, P.WORKORDER_DISPATCH, f"work_order_type:{key}", now)
        rows = parse_card(text, key)

        def work(conn):
            if store.order_type(conn, key) is None:
                raise WorkOrderError("type_unknown", type=key)
            before = store.card_items(conn, key)
            store.replace_card(conn, key, rows)
            after = store.card_items(conn, key)
            audit.record(conn, operator=actor.username[:100], action="workorder.card",
                         target=f"work_order_type:{key}", ts=now, source=actor.address or actor.channel,
                         before={"card": card_text(before)}, after={"card": card_text(after)})
            return after
        return self._run(work)

    def set_time_limit(self, actor: Actor, type_key: str, priority: str, hours, now: dt.datetime | None = None) -> None:
        now = self._now(now)
        self._require(actor, P.WORKORDER_DISPATCH, f"work_order_type:{one_line(type_key, 30)}", now)
        if priority not in M.PRIORITIES:
            raise WorkOrderError("priority_unknown", priority=one_line(priority, 20))
        value = _decimal(hours, "limit_invalid", Decimal("0.1"), Decimal("8760"))

        def work(conn):
            if store.order_type(conn, type_key) is None:
                raise WorkOrderError("type_unknown", type=one_line(type_key, 30))
            store.set_limit_hours(conn, type_key, priority, value)
            audit.record(conn, operator=actor.username[:100], action="workorder.limit",
                         target=f"work_order_type:{type_key}",
                         ts=now, after={"priority": priority, "hours": value}, source=actor.address or actor.channel)
        self._run(work)

    # -- time limits --------------------------------------------------------------------------------------------
    def limit_for(self, conn: sa.Connection, type_key: str, priority: str) -> dt.timedelta:
        hours = store.limit_hours(conn, type_key, priority)
        if hours is None:
            hours = getattr(self.config, f"limit_{priority}_h")
        return dt.timedelta(hours=float(hours))

    def due_flag(self, order: dict, now: dt.datetime | None = None) -> str | None:
        """"overdue", "due_soon" or None for an order (a row of work_order) at `now`."""
        return due_flag(order["state"], order["due_at"], self._now(now),
                        dt.timedelta(hours=self.config.due_soon_h), M.CLOCK_STATES)

    # -- creation ---------------------------------------------------------------------------------------------
    def create(self, actor: Actor, *, type: str, description, priority: str | None = None, source: str = "manual",
               account=None, meter=None, qr_token=None, pole_number=None, location=None, lat=None, lon=None,
               external_id=None, parent_id: int | None = None, district: tuple[str, int] | None = None,
               check_district: bool = False, now: dt.datetime | None = None) -> Created:
        """A new order (state created) with its card copied. The customer: `qr_token` (a signed account or meter
        token; a forged one is refused), `account` (its number) or `meter` (12-digit number), or none (an order
        about a place). check_district: the customer must be in `district` or, without one, in the acting
        operator's districts (if they have any). `external_id`: a repeat answers the first order (created False)."""
        now = self._now(now)
        if source not in M.SOURCES:
            raise WorkOrderError("source_unknown")
        target = "work_order:new"
        if not actor.may(P.WORKORDER_DISPATCH) and not actor.system:
            raise self._deny(actor, P.WORKORDER_DISPATCH, target, now)
        priority = priority or M.DEFAULT_PRIORITY
        if not isinstance(priority, str) or priority not in M.PRIORITIES:
            raise WorkOrderError("priority_unknown", priority=one_line(priority, 20))
        if not isinstance(type, str) or not type:
            raise WorkOrderError("type_unknown", type=one_line(type, 30))
        text = one_line(description, TEXT_LENGTH)
        if not text:
            raise WorkOrderError("description_missing")
        ext = None
        if external_id is not None:
            if not isinstance(external_id, (str, int)) or isinstance(external_id, bool):
                raise WorkOrderError("external_id_invalid")
            ext = str(external_id).strip()
            if not ext or len(ext) > EXTERNAL_ID_LENGTH or not ext.isprintable():
                raise WorkOrderError("external_id_invalid")
        pole = one_line(pole_number, POLE_LENGTH) or None
        where = one_line(location, 300) or None
        lat, lon = _coordinates(lat, lon)
        if district is not None:
            district = parse_district(district)

        def work(conn):
            if ext is not None:
                earlier = store.order_by(conn, external_id=ext)
                if earlier is not None:
                    return Created(earlier, False)
            kind = store.order_type(conn, type)
            if kind is None or not kind["active"]:
                raise WorkOrderError("type_unknown", type=one_line(type, 30))
            customer = self._customer(conn, qr_token=qr_token, account=account, meter=meter)
            if check_district and customer:
                self._check_district(conn, actor, customer, district)
            values = self._order_values(conn, actor, type, priority, source, text, customer, now)
            if customer is None and district is not None:
                # an order about a place: its district is where a customer's QR code must come from on site
                values.update(self._district_of(conn, district))
            values.update(pole_number=pole, location=where, lat=lat, lon=lon, external_id=ext, parent_id=parent_id)
            oid = self._insert(conn, actor, values, now)
            if oid is None:  # a concurrent intake of the same external id won: answer its order
                return Created(store.order_by(conn, external_id=ext), False)
            return Created(store.order(conn, oid), True)
        return self._run(work)

    def create_from_request(self, actor: Actor, *, type: str, description, channel: str = "counter", qr_token=None,
                            account=None, district: tuple[str, int] | None = None, priority: str | None = None,
                            now: dt.datetime | None = None, **extra) -> Created:
        """A customer's service request at the counter or on the phone: the customer identified by their QR token
        or account number (one of them required), and in the district (see create's check_district)."""
        if channel not in ("counter", "phone"):
            raise WorkOrderError("source_unknown")
        if not qr_token and not account:
            raise WorkOrderError("customer_missing")
        return self.create(actor, type=type, description=description, priority=priority, source=channel,
                           qr_token=qr_token, account=account, district=district, check_district=True, now=now,
                           **extra)

    def create_followup(self, actor: Actor, order_id: int, *, type: str, description, step_id: int | None = None,
                        priority: str | None = None, now: dt.datetime | None = None) -> Created:
        """A follow-up order of `order_id` (a failed inspection item, `step_id`) for the same customer and place, in
        one action. The office or the order's own worker may raise it."""
        now = self._now(now)
        priority = priority or M.DEFAULT_PRIORITY
        if priority not in M.PRIORITIES:
            raise WorkOrderError("priority_unknown", priority=one_line(priority, 20))
        text = one_line(description, TEXT_LENGTH)
        if not text:
            raise WorkOrderError("description_missing")
        denied: list = []

        def work(conn):
            parent = store.order(conn, _row_id(order_id, "order_unknown"))
            if parent is None:
                raise WorkOrderError("order_unknown", order=order_id)
            own = parent["assigned_to"] is not None and parent["assigned_to"] == self._actor_id(conn, actor)
            if not (actor.may(P.WORKORDER_DISPATCH) or (own and actor.may(P.WORKORDER_EXECUTE))):
                denied.append(parent["number"])
                return None
            if step_id is not None:
                step = store.line(conn, "step", _row_id(step_id, "step_unknown"))
                if step is None or step["order_id"] != parent["id"]:
                    raise WorkOrderError("step_unknown")
            kind = store.order_type(conn, type) if isinstance(type, str) else None
            if kind is None or not kind["active"]:
                raise WorkOrderError("type_unknown", type=one_line(type, 30))
            values = self._order_values(conn, actor, type, priority, "followup", text, None, now)
            values.update({k: parent[k] for k in ("account_id", "meter_id", "room_id", "building_id", "area_id",
                                                  "customer_name", "customer_phone", "pole_number", "location",
                                                  "lat", "lon")}, parent_id=parent["id"])
            return Created(store.order(conn, self._insert(conn, actor, values, now)), True)
        out = self._run(work)
        if denied:
            raise self._deny(actor, P.WORKORDER_DISPATCH, f"work_order:{denied[0]}", now)
        return out

    def _customer(self, conn: sa.Connection, *, qr_token=None, account=None, meter=None) -> dict | None:
        if qr_token:
            if self.qr_key is None:
                raise WorkOrderError("qr_unavailable")
            try:
                subject = qr.verify(self.qr_key, str(qr_token).strip())
            except qr.BadToken:
                raise WorkOrderError("qr_forged") from None
            found = (store.account_place(conn, int(subject.key)) if subject.kind == "account"
                     else store.meter_place(conn, subject.key))
            if found is None:
                raise WorkOrderError("customer_unknown", customer=subject.key)
            return found
        if account not in (None, ""):
            text = str(account).strip()
            if isinstance(account, bool) or not (text.isascii() and text.isdigit()) or len(text) > 9:
                raise WorkOrderError("account_unknown", account=one_line(account, 20))
            found = store.account_place(conn, int(text))
            if found is None:
                raise WorkOrderError("account_unknown", account=text)
            return found
        if meter not in (None, ""):
            text = str(meter).strip()
            found = store.meter_place(conn, text) if (text.isascii() and text.isdigit() and len(text) == 12) else None
            if found is None:
                raise WorkOrderError("meter_unknown", meter=one_line(meter, 20))
            return found
        return None

    def _check_district(self, conn: sa.Connection, actor: Actor, customer: dict,
                        district: tuple[str, int] | None) -> None:
        allowed = [district] if district is not None else []
        if not allowed:
            me = store.operator_by_username(conn, actor.username)
            allowed = store.worker_districts(conn, me["id"]) if me else []
        if not allowed:
            return  # a site-wide office operator
        here = {("building", customer.get("building_id")), ("area", customer.get("area_id"))}
        if not here & set(allowed):
            raise WorkOrderError("customer_other_district", building=customer.get("building_name") or "-")

    @staticmethod
    def _district_of(conn: sa.Connection, district) -> dict:
        """building_id or area_id of an order from a district (kind, id) that exists; WorkOrderError otherwise."""
        kind, ident = parse_district(district)
        if ident not in store.district_names(conn, kind, [ident]):
            raise WorkOrderError("district_invalid")
        return {"building_id": ident} if kind == "building" else {"area_id": ident}

    def districts(self) -> dict[str, dict[int, str]]:
        """Every building and transformer area by kind: {kind: {id: name}} (the new order's district choice)."""
        with self.engine.connect() as conn:
            return {kind: store.all_districts(conn, kind) for kind in M.DISTRICT_KINDS}

    def check_customer_qr(self, order: dict, token) -> dict:
        """The customer a QR token shown at the door names, if it is this order's customer (or, for an order
        without a customer, a customer in the order's district). WorkOrderError qr_forged / qr_other_customer /
        customer_other_district otherwise. For the field side's arrival and completion confirmations."""
        with self.engine.connect() as conn:
            customer = self._customer(conn, qr_token=token or "")
        if order.get("account_id") is not None:
            if customer.get("account_id") != order["account_id"]:
                raise WorkOrderError("qr_other_customer")
        elif order.get("meter_id") is not None:
            if customer.get("meter_id") != order["meter_id"]:
                raise WorkOrderError("qr_other_customer")
        elif order.get("building_id") is not None or order.get("area_id") is not None:
            here = {("building", customer.get("building_id")), ("area", customer.get("area_id"))}
            if not here & {("building", order.get("building_id")), ("area", order.get("area_id"))}:
                raise WorkOrderError("customer_other_district", building=customer.get("building_name") or "-")
        return customer

    def _order_values(self, conn, actor, type_key, priority, source, text, customer, now) -> dict:
        c = customer or {}
        due = self.calendar.add(now, self.limit_for(conn, type_key, priority))
        return dict(type=type_key, priority=priority, state="created", source=source, account_id=c.get("account_id"),
                    meter_id=c.get("meter_id"), room_id=c.get("room_id"), building_id=c.get("building_id"),
                    area_id=c.get("area_id"), customer_name=c.get("holder_name"), customer_phone=c.get("phone"),
                    description=text, due_at=due, created_by=actor.username[:100], created_at=now, updated_at=now)

    def _insert(self, conn: sa.Connection, actor: Actor, values: dict, now: dt.datetime,
                oid: int | None = None, card: list[dict] | None = None) -> int | None:
        """Insert the order, its card, its creation event and log row; None when its external id is taken:
        nothing written."""
        oid = oid if oid is not None else store.next_order_id(conn)
        number = f"WO{site_time(now, self.zone):%Y%m%d}-{oid:06d}"
        got = store.insert_order(conn, {**values, "id": oid, "number": number})
        if got is None:
            return None
        store.copy_card(conn, oid, card if card is not None else store.card_items(conn, values["type"]))
        store.insert_event(conn, order_id=oid, action="create", from_state=None, to_state="created",
                           actor=actor.username[:100], ts=now, note=values.get("cause_key"), lat=values.get("lat"),
                           lon=values.get("lon"))
        audit.record(conn, operator=actor.username[:100], action="workorder.create", target=f"work_order:{number}",
                     ts=now, source=actor.address or actor.channel,
                     after={k: values.get(k) for k in ("type", "priority", "source", "account_id", "meter_id",
                                                       "external_id", "cause_key", "due_at")})
        return oid

    # -- automatic orders ---------------------------------------------------------------------------------------
    def raise_orders_from_alarms(self, now: dt.datetime | None = None) -> list[dict]:
        """Orders for alarms open long enough: arrears -> fee_collection, a meter's lost contact -> repair, a
        failed relay command -> repair. One open order per cause (work_order_cause's key): a second run, a
        re-fired alarm or a concurrent run creates nothing; an alarm that had an order gets no second one."""
        now = self._now(now)
        cfg = self.config
        rules = [(alarm_store.ARREARS, now - dt.timedelta(hours=cfg.arrears_after_h), "fee_collection",
                  M.ARREARS_CAUSE, "high"),
                 (alarm_store.LOST_CONTACT, now - dt.timedelta(hours=cfg.lost_contact_after_h), "repair",
                  M.LOST_CONTACT_CAUSE, "high")]
        if cfg.relay_failed_orders:
            rules.append((alarm_store.COMMAND_FAILED, now, "repair", M.COMMAND_FAILED_CAUSE, "urgent"))
        system = Actor.for_system("system")
        made: list[dict] = []
        with self.engine.connect() as conn:   # what plainly has its order already is left out in one read
            todo = [(rule, a) for rule in rules for a in store.open_meter_alarms_since(conn, rule[0], rule[1])]
            done = store.alarms_with_orders(conn, [a["id"] for _, a in todo])
            taken = store.taken_causes(conn)
            types = {t["key"]: store.card_items(conn, t["key"]) for t in store.order_types(conn, active_only=True)}
        todo = [(rule, a) for rule, a in todo if a["id"] not in done
                and rule[3].format(meter_id=a["subject_id"]) not in taken
                and rule[2] in types]      # a type the site retired raises no orders
        for (kind, _, type_key, cause, priority), alarm in todo:
            if kind == alarm_store.COMMAND_FAILED:
                params = json.loads(alarm["message_params"] or "{}")
                if params.get("command_kind") not in RELAY_KINDS:
                    continue
            order = self._raise_one(system, alarm, type_key, types[type_key],
                                    cause.format(meter_id=alarm["subject_id"]), priority, now)
            if order is not None:
                made.append(order)
        return made

    def _raise_one(self, actor: Actor, alarm: dict, type_key: str, card: list[dict], cause: str, priority: str,
                   now: dt.datetime) -> dict | None:
        def work(conn):
            customer = store.meter_place_by_id(conn, alarm["subject_id"])
            text = one_line(f"{alarm['kind']}: {alarm['message_code']} {alarm['message_params'] or ''}", TEXT_LENGTH)
            values = self._order_values(conn, actor, type_key, priority, "alarm", text, customer, now)
            values.update(cause_key=cause, alarm_id=alarm["id"])
            oid = store.next_order_id(conn)
            if not store.take_cause(conn, cause, oid):
                return None    # another run's open order holds the cause (the key is the guard): nothing written
            self._insert(conn, actor, values, now, oid=oid, card=card)
            return store.order(conn, oid)
        return self._run(work)

    def on_alarm_changed(self, changes) -> None:
        """ALARM_CHANGED subscriber (core.events): a newly opened alarm may be one that raises an order now."""
        if getattr(changes, "opened", ()):
            self.raise_orders_from_alarms(getattr(changes, "at", None))

    # -- the lifecycle ----------------------------------------------------------------------------------------
    def act(self, actor: Actor, order_id: int, action: str, *, reason=None, note=None, lat=None, lon=None,
            worker_id: int | None = None, now: dt.datetime | None = None) -> dict:
        """Take `action` (workorders.model.ACTIONS) on an order; returns the order after it. Refused with
        WorkOrderError: permission_denied (logged), action_not_allowed (its state does not allow it),
        reason_required, order_unknown, worker_unknown, photo_required ..."""
        now = self._now(now)
        spec = M.ACTIONS.get(action) if isinstance(action, str) else None
        if spec is None or action == "create":
            raise WorkOrderError("action_unknown", action=one_line(action, 20))
        why = one_line(reason, REASON_LENGTH) or None
        if spec.reason_required and not why:
            raise WorkOrderError("reason_required")
        text = one_line(note, REASON_LENGTH) or None
        lat, lon = _coordinates(lat, lon)
        denied: list = []

        def work(conn):
            o = store.order(conn, _row_id(order_id, "order_unknown"), for_update=True)
            if o is None:
                raise WorkOrderError("order_unknown", order=order_id)
            me = self._actor_id(conn, actor)
            own = o["assigned_to"] is not None and o["assigned_to"] == me
            if not M.may_take(spec, actor.permissions, own=own, system=actor.system):
                denied.append(o["number"])
                return None
            values: dict = {"updated_at": now}
            to = spec.to
            assigned = o["assigned_to"]
            if action == "dispatch":
                assigned = self._pick_worker(conn, o, worker_id)
                values.update(assigned_to=assigned, dispatched_at=o["dispatched_at"] or now)
            elif action == "decline":
                assigned = None
                values.update(assigned_to=None, reason=why)
            elif action == "accept":
                values.update(accepted_at=now)
            elif action == "arrive":
                values.update(arrived_at=now)
            elif action == "complete":
                for check in self.completion_checks:
                    code = check(conn, o)
                    if code:
                        raise WorkOrderError(code)
                values.update(completed_at=now)
            elif action in ("approve", "cancel"):
                values.update(closed_at=now)
                store.release_causes(conn, o["id"])
                if why:
                    values.update(reason=why)
            elif action == "archive":
                store.release_causes(conn, o["id"])
            elif action in ("reject",):
                values.update(reason=why)
            elif action == "hold":
                values.update(held_since=now, held_from=o["state"], reason=why)
            elif action == "release":
                to = o["held_from"]
                paused = self.calendar.between(o["held_since"], now) if o["held_since"] else dt.timedelta()
                values.update(held_since=None, held_from=None, due_at=self.calendar.add(o["due_at"], paused)
                              if paused else o["due_at"],
                              held_seconds=int(o["held_seconds"] + (now - o["held_since"]).total_seconds())
                              if o["held_since"] else o["held_seconds"])
            if o["state"] == "on_hold" and action == "cancel":
                values.update(held_since=None, held_from=None)
            try:
                left = transition(conn, WORK_ORDER, o["id"], to or "", **values)
            except TransitionRefused:
                raise WorkOrderError("action_not_allowed", action=action, state=o["state"]) from None
            store.insert_event(conn, order_id=o["id"], action=action, from_state=left, to_state=to, ts=now,
                               actor=actor.username[:100], lat=lat, lon=lon, note=why or text, worker_id=assigned)
            audit.record(conn, operator=actor.username[:100], action=f"workorder.{action}",
                         target=f"work_order:{o['number']}", ts=now, source=actor.address or actor.channel,
                         before={"state": left, "assigned_to": o["assigned_to"]},
                         after={"state": to, "assigned_to": assigned, "reason": why})
            return store.order(conn, o["id"])

        out = self._run(work)
        if denied:
            needed = spec.office or P.WORKORDER_EXECUTE
            raise self._deny(actor, needed, f"work_order:{denied[0]}", now)
        return out

    def dispatch(self, actor: Actor, order_id: int, worker_id: int | None = None, **kw) -> dict:
        """To `worker_id`, or (None) to the nearest available worker of the order's district."""
        return self.act(actor, order_id, "dispatch", worker_id=worker_id, **kw)

    def _pick_worker(self, conn: sa.Connection, o: dict, worker_id: int | None) -> int:
        pool = store.workers(conn)
        if worker_id is not None:
            if not any(w["operator_id"] == worker_id for w in pool):
                raise WorkOrderError("worker_unknown")
            return worker_id
        best = choose_worker(o, pool, store.open_load(conn))
        if best is None:
            raise WorkOrderError("no_worker_available")
        return best

    def _photo_check(self, conn: sa.Connection, o: dict) -> str | None:
        kind = store.order_type(conn, o["type"])
        if kind and kind["photo_required"] and store.photo_count(conn, o["id"]) == 0:
            return "photo_required"
        return None

    # -- reading ----------------------------------------------------------------------------------------------
    def may_view(self, actor: Actor, order: dict) -> bool:
        """The office sees every order; a worker only those assigned to them."""
        if actor.may(P.WORKORDER_DISPATCH) or actor.may(P.WORKORDER_REVIEW) or actor.system:
            return True
        if not actor.may(P.WORKORDER_EXECUTE):
            return False
        with self.engine.connect() as conn:
            return order.get("assigned_to") is not None and order["assigned_to"] == self._actor_id(conn, actor)

    def order_view(self, actor: Actor, order_id: int | None = None, *, number: str | None = None,
                   now: dt.datetime | None = None) -> dict:
        """An order with its steps, materials, fees, events, fee totals and due flag; WorkOrderError order_unknown
        (also for an order the actor may not see: a worker learns nothing of other workers' orders)."""
        now = self._now(now)
        with self.engine.connect() as conn:
            o = (store.order(conn, _row_id(order_id, "order_unknown")) if order_id is not None
                 else store.order_by(conn, number=str(number or "")))
            if o is None:
                raise WorkOrderError("order_unknown", order=one_line(order_id or number, 30))
            out = {"order": o, "steps": store.lines(conn, "step", o["id"]),
                   "materials": store.lines(conn, "material", o["id"]),
                   "fees": store.fees(conn, o["id"]), "events": store.events(conn, o["id"])}
        if not self.may_view(actor, o):
            raise WorkOrderError("order_unknown", order=one_line(order_id or number, 30))
        out["totals"] = fee_totals(out["materials"], out["fees"])
        out["flag"] = self.due_flag(o, now)
        return out

    def events(self, order_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            return store.events(conn, order_id)

    def my_orders(self, actor: Actor, *, include_closed: bool = False, now: dt.datetime | None = None) -> list[dict]:
        """The acting worker's orders, soonest due first, each with its due flag."""
        now = self._now(now)
        states = M.STATES if include_closed else tuple(s for s in M.OPEN_STATES)
        with self.engine.connect() as conn:
            me = self._actor_id(conn, actor)
            rows = store.worker_orders(conn, me, states) if me is not None else []
        for r in rows:
            r["flag"] = self.due_flag(r, now)
        return rows

    def search(self, actor: Actor, *, text=None, created_from: dt.datetime | None = None,
               created_to: dt.datetime | None = None, states=None, types=None, worker_id: int | None = None,
               limit: int = 500, now: dt.datetime | None = None) -> list[dict]:
        """Orders by number, customer name, account number, meter number or pole number, created in [from, to);
        a worker finds only their own."""
        now = self._now(now)
        if text is not None and not isinstance(text, str):
            raise WorkOrderError("search_invalid")
        text = (text or "").strip()
        if len(text) > SEARCH_LENGTH or not text.isprintable():
            raise WorkOrderError("search_invalid")
        if created_from and created_to and created_from > created_to:
            raise WorkOrderError("range_reversed")
        bad = [s for s in (states or ()) if s not in M.STATES]
        if bad:
            raise WorkOrderError("state_unknown", state=one_line(bad[0], 20))
        with self.engine.connect() as conn:
            if not (actor.may(P.WORKORDER_DISPATCH) or actor.may(P.WORKORDER_REVIEW)):
                if not actor.may(P.WORKORDER_EXECUTE):
                    return []
                worker_id = self._actor_id(conn, actor)
                if worker_id is None:
                    return []
            rows = store.search_orders(conn, text=text or None, created_from=created_from, created_to=created_to,
                                       states=states, types=types, assigned_to=worker_id,
                                       limit=max(1, min(_row_id(limit, "search_invalid"), 5000)))
        for r in rows:
            r["flag"] = self.due_flag(r, now)
        return rows

    # -- steps, materials, fees -----------------------------------------------------------------------------
    def _own_work(self, actor: Actor, order_id: int, now: dt.datetime, states=("accepted", "on_site", "rejected")):
        """For the field side's writes: the order, if it is the actor's own and in `states` (the office, with
        workorder.dispatch, may correct too)."""
        def check(conn):
            o = store.order(conn, _row_id(order_id, "order_unknown"))
            if o is None:
                raise WorkOrderError("order_unknown", order=order_id)
            own = o["assigned_to"] is not None and o["assigned_to"] == self._actor_id(conn, actor)
            if not ((own and actor.may(P.WORKORDER_EXECUTE)) or actor.may(P.WORKORDER_DISPATCH)):
                return o, False
            if o["state"] not in states:
                raise WorkOrderError("action_not_allowed", action="edit", state=o["state"])
            return o, True
        with self.engine.connect() as conn:
            o, ok = check(conn)
        if not ok:
            raise self._deny(actor, P.WORKORDER_EXECUTE, f"work_order:{o['number']}", now)
        return o

    def record_step(self, actor: Actor, order_id: int, step_id: int, *, done: bool = True, value=None,
                    passed: bool | None = None, now: dt.datetime | None = None) -> dict:
        """Check off a step (or undo it), with the value it records and, for an inspection item, pass or fail."""
        now = self._now(now)
        o = self._own_work(actor, order_id, now)
        text = one_line(value, VALUE_LENGTH) or None
        if passed not in (None, True, False) or done not in (True, False):
            raise WorkOrderError("step_invalid")

        def work(conn):
            s = store.line(conn, "step", _row_id(step_id, "step_unknown"))
            if s is None or s["order_id"] != o["id"]:
                raise WorkOrderError("step_unknown")
            if done and s["needs_value"] and not text:
                raise WorkOrderError("step_value_missing")
            values = dict(done=done, value=text, passed=passed, done_by=actor.username[:100] if done else None,
                          done_at=now if done else None)
            store.update_line(conn, "step", s["id"], **values)
            audit.record(conn, operator=actor.username[:100], action="workorder.step",
                         target=f"work_order:{o['number']}",
                         ts=now, source=actor.address or actor.channel,
                         before={k: s[k] for k in ("seq", "done", "value", "passed")},
                         after={"seq": s["seq"], "done": done, "value": text, "passed": passed})
            return store.line(conn, "step", s["id"])
        return self._run(work)

    def set_material(self, actor: Actor, order_id: int, material_id: int | None = None, *, quantity=None,
                     unit_price=None, kind: str = "material", text_en=None, text_zh=None, item_class=None, unit=None,
                     now: dt.datetime | None = None) -> dict:
        """Change a material line's quantity (and unit price), or add a line (material_id None)."""
        now = self._now(now)
        o = self._own_work(actor, order_id, now)
        qty = _decimal(quantity, "quantity_invalid", Decimal("0"), MAX_QUANTITY, places=3)
        price = (None if unit_price in (None, "") else
                 parse_amount(unit_price, allow_zero=True))

        def work(conn):
            if material_id is None:
                if kind not in M.MATERIAL_KINDS:
                    raise WorkOrderError("material_invalid")
                name = one_line(text_en or text_zh, 300)
                if not name:
                    raise WorkOrderError("material_invalid")
                mid = store.add_material(conn, o["id"], kind=kind, text_en=name, text_zh=one_line(text_zh or name, 300),
                                         item_class=one_line(item_class, 40) or None, unit=one_line(unit, 20) or None,
                                         quantity=qty, unit_price=price or Decimal("0.00"),
                                         updated_by=actor.username[:100], updated_at=now)
                before = None
            else:
                m = store.line(conn, "material", _row_id(material_id, "material_unknown"))
                if m is None or m["order_id"] != o["id"]:
                    raise WorkOrderError("material_unknown")
                mid, before = m["id"], {"quantity": m["quantity"], "unit_price": m["unit_price"]}
                values = {"quantity": qty, "updated_by": actor.username[:100], "updated_at": now}
                if price is not None:
                    values["unit_price"] = price
                store.update_line(conn, "material", mid, **values)
            after = store.line(conn, "material", mid)
            audit.record(conn, operator=actor.username[:100], action="workorder.material",
                         target=f"work_order:{o['number']}", ts=now, source=actor.address or actor.channel,
                         before=before, after={"seq": after["seq"], "quantity": after["quantity"],
                                               "unit_price": after["unit_price"]})
            return after
        return self._run(work)

    def material_catalogue(self, type_key: str) -> list[dict]:
        """What a worker may pick for a new line of an order of `type_key`: its card's materials and paid services
        (with their unit prices)."""
        return [i for i in self.card(type_key) if i["kind"] in ("material", "service")]

    def add_material_line(self, actor: Actor, order_id: int, *, card_item_id=None, name=None, quantity=None,
                          unit_price=None, kind: str = "material", unit=None, now: dt.datetime | None = None) -> dict:
        """A new line on the order: a pick from its type's catalogue (card_item_id: the card's name, unit, class
        and unit price, the price may be typed over) or a material typed by name. The quantity above 0 (full-width
        digits read, "2,5" refused), the unit price as money (billing.money.parse_amount). One transaction: the line
        (added_by: the worker may remove it again), an order event and the operation-log row."""
        now = self._now(now)
        o = self._own_work(actor, order_id, now)
        qty = _quantity(quantity, positive=True)
        price = None if unit_price in (None, "") else parse_amount(unit_price, allow_zero=True)
        if kind not in ("material", "service"):
            raise WorkOrderError("material_invalid")

        def work(conn):
            if card_item_id not in (None, ""):
                item = store.card_item_row(conn, _row_id(card_item_id, "material_unknown"))
                if item is None or item["type"] != o["type"] or item["kind"] not in ("material", "service"):
                    raise WorkOrderError("material_unknown")
                values = dict(kind=item["kind"], text_en=item["text_en"], text_zh=item["text_zh"],
                              item_class=item["item_class"], unit=item["unit"],
                              unit_price=price if price is not None else (item["unit_price"] or Decimal("0.00")))
            else:
                text = one_line(name, 300)
                if not text or text[0] in "=+-@":       # a formula would run in the KPI export's spreadsheet
                    raise WorkOrderError("material_name_missing")
                values = dict(kind=kind, text_en=text, text_zh=text, item_class=None,
                              unit=one_line(unit, 20) or None, unit_price=price or Decimal("0.00"))
            mid = store.add_material(conn, o["id"], quantity=qty, updated_by=actor.username[:100], updated_at=now,
                                     added_by=actor.username[:100], **values)
            line = store.line(conn, "material", mid)
            self._line_event(conn, actor, o, "material_add", line, now)
            return line
        return self._run(work)

    def remove_material_line(self, actor: Actor, order_id: int, material_id, now: dt.datetime | None = None) -> None:
        """Remove a line added on the order (the card's own lines stay: their quantity can go to 0). Audited, with
        an order event."""
        now = self._now(now)
        o = self._own_work(actor, order_id, now)

        def work(conn):
            line = store.line(conn, "material", _row_id(material_id, "material_unknown"))
            if line is None or line["order_id"] != o["id"]:
                raise WorkOrderError("material_unknown")
            if not line.get("added_by"):
                raise WorkOrderError("material_from_card")
            store.delete_material(conn, line["id"])
            self._line_event(conn, actor, o, "material_remove", line, now)
        self._run(work)

    @staticmethod
    def _line_event(conn: sa.Connection, actor: Actor, o: dict, action: str, line: dict, now: dt.datetime) -> None:
        """An order event (the state stays) and the operation-log row for a line added or removed."""
        total = round_money(Decimal(line["quantity"]) * Decimal(line["unit_price"]))
        note = f"{line['text_en']} {line['quantity'].normalize():f} x {line['unit_price']:.2f} = {total:.2f}"
        store.insert_event(conn, order_id=o["id"], action=action, from_state=o["state"], to_state=o["state"],
                           actor=actor.username[:100], ts=now, note=note[:500])
        audit.record(conn, operator=actor.username[:100], action=f"workorder.{action}",
                     target=f"work_order:{o['number']}", ts=now, source=actor.address or actor.channel,
                     after={"seq": line["seq"], "kind": line["kind"], "name": line["text_en"],
                            "quantity": line["quantity"], "unit_price": line["unit_price"]})

    def collect_fee(self, actor: Actor, order_id: int, amount, *, method: str = "cash", note=None,
                    now: dt.datetime | None = None) -> dict:
        """Record the paid services' fee taken from the customer. Not a meter credit: billing.credit.move_money
        raises a meter's balance and queues a recharge with a purchase count, which a connection fee or a repair
        is not; so it is its own entry (work_order_fee), audited, never above what the services come to less what
        was collected already."""
        now = self._now(now)
        o = self._own_work(actor, order_id, now, states=("on_site", "completed", "rejected", "approved"))
        value = parse_amount(amount)
        if method not in M.FEE_METHODS:
            raise WorkOrderError("fee_method_unknown")

        def work(conn):
            totals = fee_totals(store.lines(conn, "material", o["id"]), store.fees(conn, o["id"]))
            if value > totals["outstanding"]:
                raise WorkOrderError("fee_above_outstanding", outstanding=totals["outstanding"])
            fid = store.insert_fee(conn, order_id=o["id"], amount=value, method=method,
                                   collected_by=actor.username[:100], collected_at=now,
                                   note=one_line(note, 300) or None)
            audit.record(conn, operator=actor.username[:100], action="workorder.fee",
                         target=f"work_order:{o['number']}",
                         ts=now, source=actor.address or actor.channel,
                         after={"amount": value, "method": method, "fee_id": fid})
            return {"id": fid, "amount": value, "method": method, **fee_totals(store.lines(conn, "material", o["id"]),
                                                                               store.fees(conn, o["id"]))}
        return self._run(work)

    # -- workers ----------------------------------------------------------------------------------------------
    def workers(self, available_only: bool = False) -> list[dict]:
        with self.engine.connect() as conn:
            return store.workers(conn, available_only=available_only)

    def save_worker(self, actor: Actor, operator_id: int, *, phone=None, available: bool | None = None,
                    districts: Iterable[tuple[str, int]] | None = None, now: dt.datetime | None = None) -> None:
        """The office keeps a worker's phone, availability and districts."""
        now = self._now(now)
        self._require(actor, P.WORKORDER_DISPATCH, f"worker:{operator_id}", now)
        values: dict = {}
        if phone is not None:
            values["phone"] = one_line(phone, 30) or None
        if available is not None:
            values["available"] = bool(available)
        wanted = None
        if districts is not None:
            wanted = [(str(k), int(i)) for k, i in districts]
            if any(k not in M.DISTRICT_KINDS for k, _ in wanted):
                raise WorkOrderError("district_invalid")

        def work(conn):
            if not any(w["operator_id"] == operator_id for w in store.workers(conn)):
                raise WorkOrderError("worker_unknown")
            before = store.worker_districts(conn, operator_id)
            store.upsert_worker(conn, operator_id, **values)
            if wanted is not None:
                for k, i in wanted:
                    if i not in store.district_names(conn, k, [i]):
                        raise WorkOrderError("district_invalid")
                store.set_districts(conn, operator_id, wanted)
            audit.record(conn, operator=actor.username[:100], action="workorder.worker", target=f"worker:{operator_id}",
                         ts=now, source=actor.address or actor.channel, before={"districts": before},
                         after={**values, "districts": wanted})
        self._run(work)

    def report_location(self, actor: Actor, lat, lon, *, available: bool | None = None,
                        now: dt.datetime | None = None) -> None:
        """The signed-in worker's phone reports where it is (and whether the worker takes orders)."""
        now = self._now(now)
        self._require(actor, P.WORKORDER_EXECUTE, "worker:self", now)
        lat, lon = _coordinates(lat, lon)
        if lat is None:
            raise WorkOrderError("location_invalid")

        def work(conn):
            me = self._actor_id(conn, actor)
            if me is None:
                raise WorkOrderError("worker_unknown")
            values = {"lat": lat, "lon": lon, "located_at": now}
            if available is not None:
                values["available"] = bool(available)
            store.upsert_worker(conn, me, **values)
        self._run(work)

    # -- deadlines --------------------------------------------------------------------------------------------
    def send_reminders(self, now: dt.datetime | None = None, *, language: str = "zh") -> int:
        """Queue the deadline reminders (notify.outbox): to the order's worker and to [workorders] manager_phone,
        once when an order is due soon and once when it is overdue (the outbox's episode keeps each single; a
        deadline moved by a hold is a new episode). A deadline passed more than REMIND_LATE ago is not reminded of
        any more (the job's first run on a site with old overdue orders sends no flood). Returns how many."""
        from notify.outbox import queue_message
        now = self._now(now)
        soon = now + dt.timedelta(hours=self.config.due_soon_h)

        def work(conn):
            wanted = []
            for o in store.orders_due_by(conn, soon, M.CLOCK_STATES, due_after=now - REMIND_LATE):
                stage = "overdue" if now >= o["due_at"] else "due_soon"
                targets = [("worker", o["worker_phone"], o["worker_language"] or language),
                           ("manager", self.config.manager_phone or None, language)]
                wanted += [(o, stage, who, phone, lang, f"wo:{o['id']}:{stage}:{o['due_at']:%Y%m%d%H%M}:{who}")
                           for who, phone, lang in targets if phone]
            sent = store.existing_episodes(conn, [w[-1] for w in wanted])
            count = 0
            for o, stage, who, phone, lang, episode in wanted:
                if episode in sent:
                    continue
                due = site_time(o["due_at"], self.zone).strftime("%Y-%m-%d %H:%M")
                got = queue_message(conn, recipient="operator", phone=phone, language=lang, kind=f"workorder_{stage}",
                                    template=f"workorder_{stage}", params={"number": o["number"], "due": due},
                                    now=now, episode=episode)
                count += got is not None
            return count
        return self._run(work)

    def run_deadline_job(self, now: dt.datetime | None = None) -> dict:
        """The scheduler job: automatic orders for alarms open long enough, then the reminders."""
        now = self._now(now)
        made = self.raise_orders_from_alarms(now)
        return {"orders": len(made), "reminders": self.send_reminders(now)}


# ---------------------------------------------------------------------------------------------------------
def choose_worker(order: dict, workers: list[dict], load: dict[int, int]) -> int | None:
    """The available worker for an order: among those whose districts hold the order's building or area (all
    available workers when none does), the nearest by last known location to the order's coordinates (workers
    without a location after those with one), then the least loaded, then by name."""
    pool = [w for w in workers if w["available"] and w["active"]]
    here = {("building", order.get("building_id")), ("area", order.get("area_id"))}
    local = [w for w in pool if here & set(w.get("districts") or ())]
    pool = local or pool
    if not pool:
        return None

    def distance(w):
        if order.get("lat") is None or w.get("lat") is None:
            return math.inf
        return haversine_km(order["lat"], order["lon"], w["lat"], w["lon"])
    pool.sort(key=lambda w: (distance(w), load.get(w["operator_id"], 0), w["username"]))
    return pool[0]["operator_id"]


def fee_totals(materials: list[dict], fees: list[dict]) -> dict:
    """Per order: materials, services (paid services, what the customer pays for) and their total, each line
    quantity x unit price rounded once (billing.money.round_money); what was collected and what is left."""
    def line(m):
        return round_money(Decimal(m["quantity"]) * Decimal(m["unit_price"]))
    mats = sum((line(m) for m in materials if m["kind"] == "material"), Decimal("0.00"))
    services = sum((line(m) for m in materials if m["kind"] == "service"), Decimal("0.00"))
    collected = sum((Decimal(f["amount"]) for f in fees), Decimal("0.00"))
    total = mats + services
    return {"materials": mats, "services": services, "total": total, "collected": collected,
            "outstanding": max(Decimal("0.00"), total - collected)}


def parse_district(value) -> tuple[str, int]:
    """A district as (kind, id) from a pair or "building:3" / "area:5"; WorkOrderError district_invalid else."""
    if isinstance(value, str) and ":" in value:
        value = tuple(value.split(":", 1))
    if not isinstance(value, (tuple, list)) or len(value) != 2 or value[0] not in M.DISTRICT_KINDS:
        raise WorkOrderError("district_invalid")
    return value[0], _row_id(value[1], "district_invalid")


def _row_id(value, code: str) -> int:
    """A row id as a caller passed it (an int, or digits from a form or a URL); WorkOrderError(code) for anything
    else, so a hostile id is "no such row", never a crash."""
    if isinstance(value, bool):
        raise WorkOrderError(code, order="-")
    if isinstance(value, int) and 0 < value < 2**31:
        return value
    text = str(value).strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**31:
        return int(text)
    raise WorkOrderError(code, order="-")


def _coordinates(lat, lon) -> tuple[float | None, float | None]:
    """Latitude and longitude as numbers in range, or (None, None) when either is missing or not a coordinate."""
    try:
        if lat is None or lon is None or isinstance(lat, bool) or isinstance(lon, bool):
            return None, None
        a, b = float(lat), float(lon)
    except (TypeError, ValueError):
        return None, None
    if not (math.isfinite(a) and math.isfinite(b) and -90 <= a <= 90 and -180 <= b <= 180):
        return None, None
    return a, b
