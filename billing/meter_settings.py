"""Per-meter settings (单表设置): one meter's alarm 1 / alarm 2 amounts and overload threshold, pushed with SET_LIMITS
and compared with what the meter reports in its configuration block."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from billing.context import BillingContext
from billing.credit import Actor, authorize
from billing.errors import BillingError
from billing.lookup import meter_by_number
from billing.money import from_fen, parse_amount, to_fen
from billing.settings import OVERLOAD_MAX_W, meter_limits
from core import permissions as P
from storage import audit
from storage import meter_settings as store
from storage.outbox import command_row, insert_command, meters_transaction, next_command_seq
from storage.purposes import Purpose

FIELDS = ("alarm1", "alarm2", "overload_w")


@dataclass(frozen=True)
class Limits:
    alarm1: Decimal
    alarm2: Decimal
    overload_w: int


@dataclass(frozen=True)
class MeterSettingsView:
    meter: str                       # the 12-digit number
    meter_id: int
    ours: Limits                     # what we asked the meter to keep (or the site's defaults)
    ours_from: str                   # "meter": pushed to this meter; "site": the site's defaults
    updated_at: dt.datetime | None
    operator: str | None
    read: Limits | None              # what the meter reported, None before its configuration was read
    read_at: dt.datetime | None
    differs: tuple[str, ...]         # FIELDS where the meter's value is not ours
    push_state: str | None           # the latest push: queued | sent | acked | failed | expired
    push_result: str | None


def _field_error(field: str, exc: BillingError) -> BillingError:
    exc.field = field
    return exc


def parse_overload(value) -> int:
    """Whole watts from 1 to the meter's register range; BillingError overload_invalid otherwise."""
    try:
        watts = parse_amount(value, decimals=0, maximum=Decimal(OVERLOAD_MAX_W))
    except BillingError:
        raise _field_error("overload_w", BillingError("overload_invalid", value=_shown(value),
                                                      limit=OVERLOAD_MAX_W)) from None
    return int(watts)


def parse_limits(alarm1, alarm2, overload_w) -> Limits:
    """Typed thresholds as Limits, or the first field's BillingError (its `field` attribute names the input)."""
    amounts = {}
    for field, value in (("alarm1", alarm1), ("alarm2", alarm2)):
        try:
            amounts[field] = parse_amount(value, allow_zero=True)
        except BillingError as exc:
            raise _field_error(field, exc) from None
    watts = parse_overload(overload_w)
    if amounts["alarm2"] > amounts["alarm1"]:
        raise _field_error("alarm2", BillingError("alarm2_above_alarm1", alarm1=amounts["alarm1"],
                                                  alarm2=amounts["alarm2"]))
    return Limits(amounts["alarm1"], amounts["alarm2"], watts)


def meter_settings(ctx: BillingContext, address) -> MeterSettingsView:
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, address)
        return _view(conn, m)


def push_meter_limits(ctx: BillingContext, actor: Actor, address, *, alarm1, alarm2, overload_w) -> MeterSettingsView:
    """Queue SET_LIMITS (purpose limits_push) with these thresholds for one meter; audited with before and after.
    Refused before anything is written: no settings.push, an unknown or removed meter, a bad threshold."""
    authorize(ctx, actor, P.SETTINGS_PUSH, f"meter:{str(address)[:20]}")
    limits = parse_limits(alarm1, alarm2, overload_w)
    now = ctx.now()
    with ctx.engine.connect() as conn:
        m = meter_by_number(conn, address)
    if m["status"] == "removed":
        raise BillingError("meter_removed", meter=m["address"])
    with meters_transaction(ctx.engine, [m["id"]]) as conn:
        before = _ours(conn, m["id"])[0]
        overdraft = before.get("overdraft", from_fen(meter_limits(conn)["overdraft_fen"]))
        payload = {"alarm1_fen": to_fen(limits.alarm1), "alarm2_fen": to_fen(limits.alarm2),
                   "overload_w": limits.overload_w, "overdraft_fen": to_fen(overdraft)}
        command_id = insert_command(conn, meter_id=m["id"], kind="limits", purpose=Purpose.LIMITS_PUSH,
                                    payload=payload, counter=next_command_seq(conn, m["id"]),
                                    operator=actor.username[:100], now=now, batch_id=f"limits-{m['id']}")
        store.set_limit(conn, m["id"], alarm1=limits.alarm1, alarm2=limits.alarm2, overload_w=limits.overload_w,
                        overdraft=overdraft, command_id=command_id, operator=actor.username[:100], now=now)
        audit.record(conn, operator=actor.username[:100], action="meter.settings_push", target=f"meter:{m['address']}",
                     ts=now, before={k: before[k] for k in FIELDS},
                     after={"alarm1": limits.alarm1, "alarm2": limits.alarm2, "overload_w": limits.overload_w,
                            "command": command_id},
                     source=actor.address or actor.channel)
        view = _view(conn, m)
    ctx.commands_queued()
    return view


def limits_payload(conn, meter_id: int) -> dict:
    """SET_LIMITS payload (wire units) for a meter: its own limits if pushed on their own, else the site's."""
    ours = _ours(conn, meter_id)[0]
    return {"alarm1_fen": to_fen(Decimal(ours["alarm1"])), "alarm2_fen": to_fen(Decimal(ours["alarm2"])),
            "overload_w": int(ours["overload_w"]), "overdraft_fen": to_fen(Decimal(ours["overdraft"]))}


def _ours(conn, meter_id: int) -> tuple[dict, str, dict | None]:
    own = store.limit_of(conn, meter_id)
    if own is not None:
        return {k: own[k] for k in (*FIELDS, "overdraft")}, "meter", own
    site = meter_limits(conn)
    return ({"alarm1": from_fen(site["alarm1_fen"]), "alarm2": from_fen(site["alarm2_fen"]),
             "overload_w": int(site["overload_w"]), "overdraft": from_fen(site["overdraft_fen"])}, "site", None)


def _view(conn, m: dict) -> MeterSettingsView:
    ours, source, own = _ours(conn, m["id"])
    ours_limits = Limits(Decimal(ours["alarm1"]), Decimal(ours["alarm2"]), int(ours["overload_w"]))
    config = store.config_of(conn, m["id"])
    read = None
    if config is not None and config["alarm1"] is not None:
        read = Limits(Decimal(config["alarm1"]), Decimal(config["alarm2"]), int(config["overload_w"] or 0))
    differs = tuple(f for f in FIELDS if read is not None and getattr(read, f) != getattr(ours_limits, f))
    push = command_row(conn, own["command_id"]) if own and own["command_id"] else None
    return MeterSettingsView(m["address"], m["id"], ours_limits, source, own["updated_at"] if own else None,
                             own["operator"] if own else None, read, config["read_at"] if config else None, differs,
                             push["state"] if push else None, push["result"] if push else None)


def _shown(value) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text[:20] + ("…" if len(text) > 20 else "")
