"""Tariffs: flat, time-of-use (sharp/peak/flat/valley, at most 14 day segments) and monthly tiers (at most 4).

A tariff is a name and a mode; its prices live in versions, each valid from a time and never
rewritten. A version that could never be in force (valid from a time at or before the start of the version in
force, or of another version) is refused; a price of 0 (free electricity) is saved only when confirmed. A tariff
can be renamed, and retired when no meter bills by it and it is not the site's default: a retired tariff keeps
its versions for the history but takes no new version, meter or account (tariff.edit, checked here). Meters are assigned a tariff (history in meter_tariff); pushing a tariff queues a
SET_TARIFF command with the version in force to each of its meters, under one batch id. A version created
ahead of its valid_from (scheduled) is pushed by the system when it takes effect (push_due_versions, after every
poll cycle). Prices are yuan per kWh with at most 4 decimals (the frame's unit is 1/10000 yuan).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from billing.context import BillingContext
from billing.credit import Actor, authorize
from billing.errors import BillingError
from billing.money import parse_amount
from core import permissions as P
from storage import audit
from storage import billing as store
from storage.outbox import insert_command, meters_transaction, next_command_seq
from storage.purposes import Purpose
from storage.schema import tariff_version

log = logging.getLogger("wattline.billing.tariffs")

MODES = ("flat", "tou", "tiered")
MODE_CODES = {"flat": 0, "tou": 1, "tiered": 2}
PRICE_NAMES = ("sharp", "peak", "flat", "valley")
MAX_SEGMENTS = 14
MAX_TIERS = 4
UNBOUNDED = 0xFFFFFFFF

SYSTEM_OPERATOR = "system"
SCHEDULED = "scheduled"                       # the reason of a push made because a version took effect
AUTO_PUSH_STATE = "billing.tariff_auto_push"  # setting: which scheduled versions were handled (JSON)
# How long after its valid_from a scheduled version is still looked for by id: longer than any transaction
# that writes a version, so one committed late (created just before its own valid_from) is never skipped.
AUTO_PUSH_SETTLE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class TariffPrices:
    """A validated version body."""
    prices: tuple[Decimal, Decimal, Decimal, Decimal]            # sharp, peak, flat, valley (yuan/kWh)
    segments: tuple[tuple[int, int], ...] = ()                  # (start minute of day, price index)
    tiers: tuple[tuple[int | None, Decimal], ...] = ()          # (upper kWh per month, None = no limit; price)


MAX_PRICE = Decimal("100")     # yuan per kWh


def _price(value, name: str) -> Decimal:
    """A price as typed: the project's amount parser with the 4 decimals SET_TARIFF carries; 0 allowed."""
    try:
        return parse_amount(value, decimals=4, maximum=MAX_PRICE, allow_zero=True)
    except BillingError:
        raise BillingError("price_invalid", name=name, value="" if value is None else str(value)[:40]) from None


def validate_prices(mode: str, prices: dict | None = None, segments=None, tiers=None) -> TariffPrices:
    """Check a version body for its mode; BillingError names the first problem."""
    if mode not in MODES:
        raise BillingError("tariff_mode_invalid", mode=mode)
    prices = dict(prices or {})
    if mode == "flat":
        if "flat" not in prices:
            raise BillingError("price_invalid", name="flat", value="")
        return TariffPrices((Decimal("0.0000"), Decimal("0.0000"), _price(prices["flat"], "flat"), Decimal("0.0000")))
    if mode == "tou":
        values = tuple(_price(prices.get(n, ""), n) for n in PRICE_NAMES)
        segs = [tuple(s) for s in (segments or [])]
        if not 1 <= len(segs) <= MAX_SEGMENTS:
            raise BillingError("segments_invalid", count=len(segs), most=MAX_SEGMENTS)
        previous = -1
        out = []
        for seg in segs:
            if len(seg) != 2:
                raise BillingError("segments_invalid", count=len(segs), most=MAX_SEGMENTS)
            start, index = seg
            if isinstance(start, str) and ":" in start:
                hh, mm = start.split(":", 1)
                start = int(hh) * 60 + int(mm) if hh.isdigit() and mm.isdigit() else -1
            if not isinstance(start, int) or not 0 <= start < 1440 or start <= previous:
                raise BillingError("segment_start_invalid", start=seg[0])
            if isinstance(index, str):
                index = PRICE_NAMES.index(index) if index in PRICE_NAMES else -1
            if not isinstance(index, int) or not 0 <= index <= 3:
                raise BillingError("segment_price_invalid", index=seg[1])
            previous = start
            out.append((start, index))
        return TariffPrices(values, tuple(out))
    rows = [tuple(t) for t in (tiers or [])]
    if not 1 <= len(rows) <= MAX_TIERS:
        raise BillingError("tiers_invalid", count=len(rows), most=MAX_TIERS)
    previous = -1
    out_tiers = []
    for i, row in enumerate(rows):
        if len(row) != 2:
            raise BillingError("tiers_invalid", count=len(rows), most=MAX_TIERS)
        bound, price = row
        last = i == len(rows) - 1
        if last:
            if bound not in (None, "", UNBOUNDED):
                raise BillingError("tier_last_unbounded")
            bound = None
        elif not isinstance(bound, int) or isinstance(bound, bool) or bound <= previous or bound <= 0:
            raise BillingError("tier_bound_invalid", bound=bound)
        else:
            previous = bound
        out_tiers.append((bound, _price(price, f"tier {i + 1}")))
    first = out_tiers[0][1]
    return TariffPrices((Decimal("0.0000"), Decimal("0.0000"), first, Decimal("0.0000")), (), tuple(out_tiers))


def zero_prices(mode: str, body: TariffPrices) -> list[str]:
    """The prices of a version that are used and 0 (free electricity): "flat", "peak" ..., "tier 2"."""
    if mode == "flat":
        return ["flat"] if body.prices[2] == 0 else []
    if mode == "tou":
        used = sorted({index for _start, index in body.segments})
        return [PRICE_NAMES[i] for i in used if body.prices[i] == 0]
    return [f"tier {i + 1}" for i, (_bound, price) in enumerate(body.tiers) if price == 0]


def _check_zero(mode: str, body: TariffPrices, confirmed: bool) -> None:
    zeros = zero_prices(mode, body)
    if zeros and not confirmed:
        raise BillingError("price_zero_unconfirmed", prices=", ".join(zeros))


def version_body(version: dict) -> TariffPrices:
    segments = tuple(tuple(s) for s in json.loads(version["segments"] or "[]"))
    tiers = tuple((b, Decimal(p)) for b, p in json.loads(version["tiers"] or "[]"))
    prices = tuple(Decimal(version[f"price_{n}"]) for n in PRICE_NAMES)
    return TariffPrices(prices, segments, tiers)  # type: ignore[arg-type]


def wire_payload(mode: str, body: TariffPrices, version_id: int | None = None) -> dict:
    """The SET_TARIFF command payload (JSON in the outbox): integer 1/10000 yuan, the dispatcher builds the bytes."""
    units = [int(p * 10000) for p in body.prices]
    return {"mode": MODE_CODES[mode], "prices": units, "segments": [list(s) for s in body.segments],
            "tiers": [[UNBOUNDED if b is None else b, int(p * 10000)] for b, p in body.tiers],
            "tariff_version_id": version_id}


def version_values(body: TariffPrices) -> dict:
    return dict(price_sharp=body.prices[0], price_peak=body.prices[1], price_flat=body.prices[2],
                price_valley=body.prices[3], segments=json.dumps([list(s) for s in body.segments]),
                tiers=json.dumps([[b, str(p)] for b, p in body.tiers]))


def _tariff_name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > 100 or not name.isprintable():
        raise BillingError("tariff_name_invalid")
    return name


def create_tariff(ctx: BillingContext, name: str, mode: str, operator: str, *, prices: dict | None = None,
                  segments=None, tiers=None, valid_from: dt.datetime | None = None, remote: str | None = None,
                  zero_confirmed: bool = False) -> int:
    """A new tariff with its version 1; returns the tariff id. A price of 0 needs `zero_confirmed`."""
    name = _tariff_name(name)
    body = validate_prices(mode, prices, segments, tiers)
    _check_zero(mode, body, zero_confirmed)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        if store.tariff_by_name(conn, name) is not None:
            raise BillingError("tariff_name_taken", name=name)
        tid = store.insert_tariff(conn, name=name, mode=mode, created_at=now, created_by=operator)
        vid = store.insert_version(conn, tariff_id=tid, version_no=1, valid_from=valid_from or now, created_at=now,
                                   created_by=operator, **version_values(body))
        audit.record(conn, operator=operator, action="billing.tariff_create", source=remote, target=f"tariff:{tid}", ts=now,
                     after={"name": name, "mode": mode, "version_id": vid, **wire_payload(mode, body, vid)})
    return tid


def _check_start(ctx: BillingContext, conn: sa.Connection, tariff_id: int, start: dt.datetime,
                 now: dt.datetime) -> None:
    """A new version must be able to come into force: it starts after the version in force now, and not when
    another version starts (that one would decide which is meant)."""
    versions = store.versions_of(conn, tariff_id)
    same = next((v for v in versions if v["valid_from"] == start), None)
    if same is not None:
        raise BillingError("version_same_start", version=same["version_no"], start=_local(ctx, start))
    in_force = store.version_at(conn, tariff_id, now)
    if in_force is not None and start < in_force["valid_from"]:
        raise BillingError("version_never_in_force", start=_local(ctx, start), version=in_force["version_no"],
                           since=_local(ctx, in_force["valid_from"]))


def _local(ctx: BillingContext, moment: dt.datetime) -> str:
    return f"{ctx.local(moment):%Y-%m-%d %H:%M}"


def add_tariff_version(ctx: BillingContext, tariff_id: int, operator: str, *, prices: dict | None = None,
                       segments=None, tiers=None, valid_from: dt.datetime | None = None,
                       remote: str | None = None, zero_confirmed: bool = False) -> int:
    """A new version (the next number) valid from `valid_from` (default now); returns its id. Refused when it could
    never be in force, or for a retired tariff; a price of 0 needs `zero_confirmed`."""
    now = ctx.now()
    with ctx.engine.begin() as conn:
        t = store.tariff_by_id(conn, tariff_id)
        if t is None:
            raise BillingError("tariff_unknown", tariff=tariff_id)
        _not_retired(t)
        body = validate_prices(t["mode"], prices, segments, tiers)
        _check_zero(t["mode"], body, zero_confirmed)
        _check_start(ctx, conn, tariff_id, valid_from or now, now)
        number = store.max_version_no(conn, tariff_id) + 1
        vid = store.insert_version(conn, tariff_id=tariff_id, version_no=number, valid_from=valid_from or now,
                                   created_at=now, created_by=operator, **version_values(body))
        audit.record(conn, operator=operator, action="billing.tariff_version", source=remote, target=f"tariff:{tariff_id}", ts=now,
                     after={"version_no": number, "valid_from": valid_from or now, **wire_payload(t["mode"], body, vid)})
    return vid


def _not_retired(t: dict) -> None:
    if t.get("retired_at") is not None:
        raise BillingError("tariff_retired", name=t["name"])


def usable_tariff(conn: sa.Connection, tariff_id: int) -> dict:
    """The tariff a meter or an account may be given: known and not retired (else BillingError)."""
    t = store.tariff_by_id(conn, tariff_id)
    if t is None:
        raise BillingError("tariff_unknown", tariff=tariff_id)
    _not_retired(t)
    return t


def rename_tariff(ctx: BillingContext, tariff_id: int, name: str, actor: Actor) -> None:
    """Give a tariff another name (its versions, meters and history stay); tariff.edit."""
    authorize(ctx, actor, P.TARIFF_EDIT, f"tariff:{tariff_id}")
    name = _tariff_name(name)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        t = store.tariff_by_id(conn, tariff_id)
        if t is None:
            raise BillingError("tariff_unknown", tariff=tariff_id)
        if t["name"] == name:
            return
        other = store.tariff_by_name(conn, name)
        if other is not None and other["id"] != tariff_id:
            raise BillingError("tariff_name_taken", name=name)
        store.rename_tariff(conn, tariff_id, name)
        audit.record(conn, operator=actor.username, action="billing.tariff_rename", source=actor.address,
                     target=f"tariff:{tariff_id}", ts=now, before={"name": t["name"]}, after={"name": name})


def retire_tariff(ctx: BillingContext, tariff_id: int, actor: Actor) -> None:
    """Retire a tariff nobody uses: listed for the history, never offered again (tariff.edit). Refused while a
    meter bills by it (move those meters to another tariff first) or while it is the site's default tariff."""
    from billing.settings import default_tariff_id
    authorize(ctx, actor, P.TARIFF_EDIT, f"tariff:{tariff_id}")
    now = ctx.now()
    with ctx.engine.begin() as conn:
        t = store.tariff_by_id(conn, tariff_id)
        if t is None:
            raise BillingError("tariff_unknown", tariff=tariff_id)
        _not_retired(t)
        meters = store.meters_on_tariff(conn, tariff_id, now)
        if meters:
            raise BillingError("tariff_in_use", name=t["name"], n=len(meters))
        if default_tariff_id(conn) == tariff_id:
            raise BillingError("tariff_is_default", name=t["name"])
        store.retire_tariff(conn, tariff_id, now, actor.username[:100])
        audit.record(conn, operator=actor.username, action="billing.tariff_retire", source=actor.address,
                     target=f"tariff:{tariff_id}", ts=now, before={"name": t["name"]},
                     after={"name": t["name"], "retired": True})


def tariff_list(ctx: BillingContext) -> list[dict]:
    """Every tariff with its versions (bodies decoded), for the tariff page."""
    with ctx.engine.connect() as conn:
        versions = store.versions_of(conn)
        out = []
        for t in store.tariffs(conn):
            vs = [{**v, "body": version_body(v)} for v in versions if v["tariff_id"] == t["id"]]
            out.append({**t, "versions": vs})
        return out


def queue_tariff(conn: sa.Connection, meter_id: int, version: dict, operator: str, now: dt.datetime,
                 batch_id: str | None, *, purpose: Purpose, account_id: int | None = None) -> int:
    """SET_TARIFF of `version` to one meter: a push of its own, or one of a meter's setup commands (opening)."""
    t = store.tariff_by_id(conn, version["tariff_id"])
    return insert_command(conn, meter_id=meter_id, kind="tariff", purpose=purpose,
                          payload=wire_payload(t["mode"], version_body(version), version["id"]),
                          counter=next_command_seq(conn, meter_id), operator=operator, now=now, batch_id=batch_id,
                          account_id=account_id)


def assign_tariff(ctx: BillingContext, meter_addresses: list[str], tariff_id: int, operator: str, *,
                  push: bool = True, remote: str | None = None) -> str | None:
    """Bill these meters by another tariff from now on; with push, queue its SET_TARIFF (returns the batch id)."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        usable_tariff(conn, tariff_id)
        meters = []
        for a in meter_addresses:
            m = store.meter_by_address(conn, str(a).strip())
            if m is None:
                raise BillingError("meter_unknown", meter=a)
            meters.append(m)
    with ctx.engine.begin() as conn:
        store.insert_meter_tariffs(conn, [dict(meter_id=m["id"], tariff_id=tariff_id, valid_from=now, operator=operator)
                                          for m in meters])
        audit.record(conn, operator=operator, action="billing.tariff_assign", source=remote, target=f"tariff:{tariff_id}", ts=now,
                     after={"meters": [m["address"] for m in meters]})
    if not push:
        return None
    return push_tariff(ctx, tariff_id, operator, meter_addresses=[m["address"] for m in meters],
                       remote=remote).batch_id


@dataclass(frozen=True)
class PushResult:
    batch_id: str
    version_id: int
    commands: int
    meters: list[str]


def push_tariff(ctx: BillingContext, tariff_id: int, operator: str, *, meter_addresses: list[str] | None = None,
                version_id: int | None = None, remote: str | None = None, reason: str | None = None) -> PushResult:
    """Queue SET_TARIFF (the version in force now, or `version_id`) to the given meters or every meter
    on this tariff; one batch id for all. `reason` goes into the operation log (e.g. SCHEDULED). Refused for a
    retired tariff, and when there is no meter to push to."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        t = usable_tariff(conn, tariff_id)
        version = store.version_by_id(conn, version_id) if version_id else store.version_at(conn, tariff_id, now)
        if version is None or version["tariff_id"] != tariff_id:
            raise BillingError("tariff_not_in_force", tariff=tariff_id)
        if meter_addresses is None:
            ids = store.meters_on_tariff(conn, tariff_id, now)
            meters = [store.meter_by_id(conn, i) for i in ids]
        else:
            meters = []
            for a in meter_addresses:
                m = store.meter_by_address(conn, str(a).strip())
                if m is None:
                    raise BillingError("meter_unknown", meter=a)
                meters.append(m)
    meters = [m for m in meters if m["status"] != "removed" and ctx.is_prepaid_profile(m["profile"])]
    if not meters and meter_addresses is None and reason != SCHEDULED:
        raise BillingError("tariff_no_meters", name=t["name"])
    batch = f"tariff-{uuid.uuid4().hex[:12]}"
    with meters_transaction(ctx.engine, [m["id"] for m in meters]) as conn:
        for m in meters:
            queue_tariff(conn, m["id"], version, operator, now, batch, purpose=Purpose.TARIFF_PUSH)
        after = {"batch_id": batch, "version_id": version["id"], "meters": len(meters)}
        if reason:
            after["reason"] = reason
        audit.record(conn, operator=operator, action="billing.tariff_push", source=remote, target=f"tariff:{tariff_id}", ts=now,
                     after=after)
    ctx.commands_queued()
    return PushResult(batch, version["id"], len(meters), [m["address"] for m in meters])


# ---------------------------------------------------------------------------------------------
# scheduled versions: pushed by the system when they take effect
_auto_push_lock = threading.Lock()


def _load_auto_push(conn: sa.Connection) -> tuple[dt.datetime | None, dict[int, dt.datetime]]:
    """(through, handled): every scheduled version valid from `through` or earlier was handled, and so were
    those in `handled` (id: valid_from, only later ones kept). Nothing stored: none handled yet."""
    raw = store.get_setting(conn, AUTO_PUSH_STATE)
    if not raw:
        return None, {}
    try:
        state = json.loads(raw)
        through = dt.datetime.fromisoformat(state["through"]) if state.get("through") else None
        return through, {int(k): dt.datetime.fromisoformat(v) for k, v in (state.get("handled") or {}).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        # looking at every scheduled version again at worst repeats a push; skipping one would not be harmless
        log.warning("setting %s is not readable (%r): every scheduled tariff version is looked at again",
                    AUTO_PUSH_STATE, raw[:200])
        return None, {}


def _save_auto_push(ctx: BillingContext, through: dt.datetime | None, handled: dict[int, dt.datetime],
                    now: dt.datetime) -> None:
    state = {"through": through.isoformat() if through else None,
             "handled": {str(k): v.isoformat() for k, v in sorted(handled.items())}}
    with ctx.engine.begin() as conn:
        store.set_setting(conn, AUTO_PUSH_STATE, json.dumps(state, sort_keys=True), now)


def _due_scheduled_versions(conn: sa.Connection, after: dt.datetime | None, now: dt.datetime) -> list[dict]:
    """Scheduled versions (created ahead of their valid_from, so nobody could push them then) valid from a time
    in (after, now], oldest first."""
    v = tariff_version
    q = sa.select(v).where(v.c.created_at < v.c.valid_from, v.c.valid_from <= now)
    if after is not None:
        q = q.where(v.c.valid_from > after)
    return [dict(r) for r in conn.execute(q.order_by(v.c.valid_from, v.c.version_no, v.c.id)).mappings()]


def push_due_versions(ctx: BillingContext) -> list[PushResult]:
    """Push every scheduled version that has taken effect and was not handled yet to every meter on its tariff
    (operator "system", reason "scheduled"), once. A version a later one superseded before this ran is only
    marked handled. Each version is marked after its push, so a crash in between at worst pushes the same
    SET_TARIFF again (harmless); a push that fails is logged and tried again on the next run."""
    with _auto_push_lock:
        now = ctx.now()
        with ctx.engine.connect() as conn:
            through, handled = _load_auto_push(conn)
            due = [v for v in _due_scheduled_versions(conn, through, now) if v["id"] not in handled]
            in_force = {tid: store.version_at(conn, tid, now) for tid in {v["tariff_id"] for v in due}}
            retired = {tid for tid in in_force if store.tariff_by_id(conn, tid)["retired_at"] is not None}
        pushed: list[PushResult] = []
        failed = unsaved = False
        for v in due:
            if v["tariff_id"] in retired:  # no meter bills by a retired tariff: nothing to push, ever
                handled[v["id"]] = v["valid_from"]
                unsaved = True
                continue
            current = in_force[v["tariff_id"]]
            if current is None or current["id"] != v["id"]:
                # superseded before this ran: nothing to push (its mark may wait, a rerun skips it again)
                log.info("tariff %s version %s was superseded before it took effect: not pushed", v["tariff_id"],
                         v["version_no"])
                handled[v["id"]] = v["valid_from"]
                unsaved = True
                continue
            try:
                result = push_tariff(ctx, v["tariff_id"], SYSTEM_OPERATOR, version_id=v["id"], remote="scheduler",
                                     reason=SCHEDULED)
            except Exception:  # noqa: BLE001 - logged; not marked, so the next run pushes it
                log.exception("scheduled tariff version %s (tariff %s) could not be pushed", v["id"], v["tariff_id"])
                failed = True
                continue
            pushed.append(result)
            log.info("tariff %s version %s took effect: pushed to %d meters (batch %s)", v["tariff_id"],
                     v["version_no"], result.commands, result.batch_id)
            handled[v["id"]] = v["valid_from"]
            _save_auto_push(ctx, through, handled, now)
            unsaved = False
        settled = now - AUTO_PUSH_SETTLE
        if not failed and any(vf <= settled for vf in handled.values()):
            # every scheduled version valid from `settled` or earlier is handled: keep the ids of later ones only
            through = settled if through is None else max(through, settled)
            handled = {k: vf for k, vf in handled.items() if vf > through}
            unsaved = True
        if unsaved:
            _save_auto_push(ctx, through, handled, now)
        return pushed
