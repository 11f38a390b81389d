"""Batch remote control (批量操作): trip, close, keep power, restore prepaid control, price push and settings push to a
selection of meters as one batch of outbox commands; its per-meter state, cancel what is queued, retry what failed.

Who acts comes in as an Actor (the dashboard's operator, the control API's client); every permission is checked
here, a refusal is written to the operation log (billing.credit.authorize) and nothing is queued. A batch is one
command_batch row, one command per meter (batch_id = the batch's id) and one operation-log row, in one transaction.
The dispatcher sends the commands; a relay command is confirmed only when the meter's relay bits read back agree
(collectors.dispatch). A meter's state in the batch is that of its latest command there.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from billing.context import BillingContext
from billing.credit import Actor, authorize, reason_text
from billing.errors import BillingError
from billing.money import from_fen, to_fen
from billing.settings import default_tariff_id, meter_limits
from billing.tariffs import queue_tariff
from core import permissions as P
from storage import audit
from storage import batches as store
from storage import billing as billing_store
from storage import meter_settings as limits_store
from storage.outbox import (
    insert_command, insert_commands, meters_transaction, move_command, next_command_seq, next_command_seqs,
)
from storage.purposes import Purpose

MAX_METERS = 20_000
MAX_NUMBERS = 5_000            # meter numbers in one selection by hand (the API's list)
CANCELLED = "CANCELLED"        # result of a queued command the operator cancelled (state expired)
CANCELLED_BY = "cancelled by "  # its error: who cancelled it (the batch view says it in the operator's words)


class ControlError(BillingError):
    """A batch the operator (or API client) can fix: the text is the catalogs' control.error.<code>."""

    @property
    def key(self) -> str:
        return f"control.error.{self.code}"


@dataclass(frozen=True)
class ControlAction:
    kind: str                    # the command's kind (collectors.dispatch)
    purpose: Purpose
    extra_permission: str | None  # beyond relay.batch (relay.command for one meter)
    reason_required: bool


ACTIONS: dict[str, ControlAction] = {
    "trip": ControlAction("trip", Purpose.RELAY, None, True),
    "close": ControlAction("close", Purpose.RELAY, None, False),
    "keep_power_on": ControlAction("keep_power", Purpose.RELAY, None, True),
    "keep_power_off": ControlAction("restore_prepaid", Purpose.RELAY, None, False),
    "push_tariff": ControlAction("tariff", Purpose.TARIFF_PUSH, P.TARIFF_PUSH, False),
    "push_limits": ControlAction("limits", Purpose.LIMITS_PUSH, P.SETTINGS_PUSH, False),
}
# A meter's state in a batch, from its latest command there (acked: the meter's answer and read-back agreed).
METER_STATES = ("queued", "sent", "confirmed", "failed", "expired", "cancelled")


@dataclass(frozen=True)
class Selection:
    """How meters are chosen: by number (by hand), or by any of building, floor, map state, account, tariff."""
    meters: tuple[str, ...] = ()
    building: str | None = None
    floor: int | None = None
    state: str | None = None
    account_id: int | None = None
    tariff_id: int | None = None

    def as_json(self) -> dict:
        out = {k: v for k, v in (("building", self.building), ("floor", self.floor), ("state", self.state),
                                 ("account_id", self.account_id), ("tariff_id", self.tariff_id)) if v is not None}
        if self.meters:
            out["meters"] = len(self.meters)
        return out


@dataclass(frozen=True)
class Warning:
    """A reason to ask again: `code` (control.warning.<code>) and the meters it concerns."""
    code: str
    meters: tuple[str, ...]


@dataclass
class BatchResult:
    batch_id: str | None          # None: not queued, confirm the warnings first
    action: str
    meters: list[str]
    warnings: list[Warning] = field(default_factory=list)


@dataclass
class BatchView:
    batch: dict
    rows: list[dict]              # per meter: address, building, floor, room, state, result, error, attempts, at
    counts: dict[str, int]

    @property
    def open(self) -> bool:
        return bool(self.counts.get("queued") or self.counts.get("sent"))


# ---------------------------------------------------------------------------------------------
# selection

def _chosen(frame: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    df = frame
    if selection.meters:
        numbers = [str(n).strip() for n in selection.meters]
        known = set(df["address"])
        unknown = [n for n in numbers if n not in known]
        if unknown:
            raise ControlError("meter_unknown", meter=_shown(unknown[0]), count=len(unknown))
        df = df[df["address"].isin(set(numbers))]
    if selection.building is not None:
        df = df[df["building"] == selection.building]
    if selection.floor is not None:
        df = df[df["floor"] == selection.floor]
    if selection.state is not None:
        df = df[df["state"] == selection.state]
    if selection.account_id is not None:
        df = df[df["account_id"] == selection.account_id]
    if selection.tariff_id is not None:
        df = df[df["tariff_id"] == selection.tariff_id]
    return df


def check_selection(selection: Selection) -> Selection:
    """Refuse a selection that cannot be right before anything is read: too many numbers, no criterion."""
    if not isinstance(selection, Selection):
        raise TypeError("a selection is a billing.control.Selection")
    if len(selection.meters) > MAX_NUMBERS:
        raise ControlError("too_many_numbers", most=MAX_NUMBERS)
    if not selection.meters and all(v is None for v in (selection.building, selection.floor, selection.state,
                                                         selection.account_id, selection.tariff_id)):
        raise ControlError("nothing_selected")
    return selection


def selected_meters(ctx: BillingContext, selection: Selection) -> pd.DataFrame:
    """The meters a selection names, with their live state (storage.batches.control_meters), controllable only."""
    check_selection(selection)
    with ctx.engine.connect() as conn:
        frame = store.control_meters(conn, ctx.now())
    df = _chosen(frame, selection)
    df = df[df["profile"].map(ctx.is_prepaid_profile)]
    if df.empty:
        raise ControlError("nothing_selected")
    if len(df) > MAX_METERS:
        raise ControlError("too_many_meters", count=len(df), most=MAX_METERS)
    return df


def live_meters(ctx: BillingContext) -> pd.DataFrame:
    """Every controllable meter's live state, for the control page's grid."""
    with ctx.engine.connect() as conn:
        frame = store.control_meters(conn, ctx.now())
    return frame[frame["profile"].map(ctx.is_prepaid_profile)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# queue

def _permissions(action: ControlAction, single: bool) -> list[str]:
    return [P.RELAY_COMMAND if single else P.RELAY_BATCH] + ([action.extra_permission]
                                                              if action.extra_permission else [])


def _authorize(ctx: BillingContext, actor: Actor, action: ControlAction, target: str, single: bool) -> None:
    for permission in _permissions(action, single):
        authorize(ctx, actor, permission, target)


def _warnings(action: str, df: pd.DataFrame) -> list[Warning]:
    """Trip with keep-power on: the meter holds its relay closed. Close in arrears without keep-power: the meter
    keeps (or puts) its relay open until its balance is above zero."""
    keep = df["keep_power"].fillna(False).astype(bool)
    if action == "trip":
        held = df[keep]
        return [Warning("trip_keep_power", tuple(held["address"]))] if len(held) else []
    if action == "close":
        owing = df["arrears"].fillna(False).astype(bool) | (df["balance_fen"].fillna(1) <= 0)
        owing &= df["prepaid_enabled"].fillna(True).astype(bool)
        owing = df[owing & ~keep]
        return [Warning("close_arrears", tuple(owing["address"]))] if len(owing) else []
    return []


def queue_batch(ctx: BillingContext, actor: Actor, selection: Selection, action: str, reason=None, *,
                limits: dict | None = None, confirm: bool = False, single: bool = False) -> BatchResult:
    """Queue `action` to every meter of `selection` as one batch. Refused (nothing written) without relay.batch
    (relay.command for one meter, single=True) and the push's own permission, without a reason for trip and
    keep-power, for bad thresholds. Returns the warnings unqueued unless `confirm`. `limits` (push_limits):
    alarm1, alarm2, overload_w as typed."""
    spec = ACTIONS.get(action) if isinstance(action, str) else None
    if spec is None:
        raise ControlError("action_unknown", action=_shown(action))
    _authorize(ctx, actor, spec, f"control:{action}", single)
    why = reason_text(reason, spec.reason_required, "reason_required")
    parsed = _parse_limits(limits) if action == "push_limits" else None
    df = selected_meters(ctx, selection)
    if single and len(df) != 1:
        raise ControlError("one_meter_only", count=len(df))
    warnings = _warnings(action, df)
    addresses = list(df["address"])
    if warnings and not confirm:
        return BatchResult(None, action, addresses, warnings)
    batch_id = f"ctl-{uuid.uuid4().hex[:12]}"
    now = ctx.now()
    with meters_transaction(ctx.engine, [int(i) for i in df["meter_id"]]) as conn:
        plan = _plan(conn, spec, df, parsed, now)
        if spec.kind in ("tariff", "limits"):
            for row in df.itertuples(index=False):
                _queue_one(conn, spec, int(row.meter_id), plan, actor, now, batch_id)
        else:   # the same command to every meter: a few statements for the lot, not three per meter
            ids = [int(i) for i in df["meter_id"]]
            seqs = next_command_seqs(conn, ids)
            insert_commands(conn, [{"meter_id": mid, "kind": spec.kind, "purpose": spec.purpose, "payload": {},
                                    "counter": seqs[mid], "operator": actor.username[:100], "now": now,
                                    "batch_id": batch_id} for mid in ids])
        store.insert_batch(conn, batch_id=batch_id, action=action, reason=why, operator=actor.username,
                           source=actor.channel, selection=selection.as_json(), meters=len(df), now=now)
        after = {"action": action, "meters": len(df), "selection": selection.as_json(), "reason": why,
                 "confirmed_warnings": [w.code for w in warnings]}
        if parsed:
            after["limits"] = {k: str(v) for k, v in parsed.items()}
        audit.record(conn, operator=actor.username[:100], action="control.batch", target=f"batch:{batch_id}", ts=now,
                     after=after, source=actor.address or actor.channel)
    ctx.commands_queued()
    return BatchResult(batch_id, action, addresses, warnings)


def _parse_limits(limits: dict | None) -> dict:
    from billing.meter_settings import parse_limits
    limits = limits or {}
    parsed = parse_limits(limits.get("alarm1"), limits.get("alarm2"), limits.get("overload_w"))
    return {"alarm1": parsed.alarm1, "alarm2": parsed.alarm2, "overload_w": parsed.overload_w}


def _plan(conn: sa.Connection, spec: ControlAction, df: pd.DataFrame, limits: dict | None, now: dt.datetime) -> dict:
    """What each meter's command carries: the tariff version in force (price push), the site's overdraft (limits)."""
    if spec.kind == "tariff":
        versions: dict[int, dict] = {}
        fallback = default_tariff_id(conn)
        per_meter = {}
        for row in df.itertuples(index=False):
            tid = int(row.tariff_id) if pd.notna(row.tariff_id) else fallback
            if tid is None:
                raise ControlError("no_tariff", meter=row.address)
            if tid not in versions:
                version = billing_store.version_at(conn, tid, now)
                if version is None:
                    raise ControlError("no_tariff", meter=row.address)
                versions[tid] = version
            per_meter[int(row.meter_id)] = versions[tid]
        return {"versions": per_meter}
    if spec.kind == "limits":
        return {"limits": limits, "overdraft_fen": meter_limits(conn)["overdraft_fen"]}
    return {}


def _queue_one(conn: sa.Connection, spec: ControlAction, meter_id: int, plan: dict, actor: Actor, now: dt.datetime,
               batch_id: str) -> int:
    operator = actor.username[:100]
    if spec.kind == "tariff":
        return queue_tariff(conn, meter_id, plan["versions"][meter_id], operator, now, batch_id,
                            purpose=Purpose.TARIFF_PUSH)
    payload: dict = {}
    if spec.kind == "limits":
        lim = plan["limits"]
        own = limits_store.limit_of(conn, meter_id)
        overdraft = Decimal(own["overdraft"]) if own else from_fen(plan["overdraft_fen"])
        payload = {"alarm1_fen": to_fen(lim["alarm1"]), "alarm2_fen": to_fen(lim["alarm2"]),
                   "overload_w": int(lim["overload_w"]), "overdraft_fen": to_fen(overdraft)}
    command_id = insert_command(conn, meter_id=meter_id, kind=spec.kind, purpose=spec.purpose, payload=payload,
                                counter=next_command_seq(conn, meter_id), operator=operator, now=now,
                                batch_id=batch_id)
    if spec.kind == "limits":   # the per-meter settings page shows these as ours from now on
        limits_store.set_limit(conn, meter_id, alarm1=plan["limits"]["alarm1"], alarm2=plan["limits"]["alarm2"],
                               overload_w=int(plan["limits"]["overload_w"]), overdraft=overdraft,
                               command_id=command_id, operator=operator, now=now)
    return command_id


# ---------------------------------------------------------------------------------------------
# a batch's state, cancel, retry

def meter_state_of(state: str, result: str | None) -> str:
    if state == "acked":
        return "confirmed"
    if state == "expired" and result == CANCELLED:
        return "cancelled"
    return state


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """Per meter, its latest command of the batch (a retry adds a newer one)."""
    if frame.empty:
        return frame
    return frame.sort_values("command_id").groupby("meter_id", sort=False).tail(1).sort_values(
        ["building", "floor", "room", "address"], na_position="last")


def batch_view(ctx: BillingContext, batch_id) -> BatchView:
    """The batch and each of its meters' state (queued, sent, confirmed, failed, expired, cancelled), from the DB."""
    bid = str(batch_id or "")[:40]
    with ctx.engine.connect() as conn:
        batch = store.batch_by_id(conn, bid)
        if batch is None:
            raise ControlError("batch_unknown", batch=_shown(bid))
        frame = store.batch_commands(conn, bid)
    latest = _latest(frame)
    rows = []
    for r in latest.to_dict("records"):
        state = meter_state_of(r["state"], r["result"])
        rows.append({"meter_id": int(r["meter_id"]), "address": r["address"], "building": r["building"],
                     "floor": None if pd.isna(r["floor"]) else int(r["floor"]), "room": r["room"],
                     "command_id": int(r["command_id"]), "state": state, "result": _none(r["result"]),
                     "error": _none(r["error"]), "attempts": int(r["attempts"]),
                     "at": _none(r["finished_at"]) or _none(r["sent_at"]) or r["created_at"]})
    counts = {s: 0 for s in METER_STATES}
    for r in rows:
        counts[r["state"]] += 1
    return BatchView(batch, rows, counts)


def cancel_queued(ctx: BillingContext, actor: Actor, batch_id) -> int:
    """Cancel the batch's commands still queued (never sent): expired with result CANCELLED; audited."""
    view = batch_view(ctx, batch_id)
    spec = ACTIONS[view.batch["action"]]
    _authorize(ctx, actor, spec, f"batch:{view.batch['id']}", view.batch["meters"] == 1)
    now = ctx.now()
    queued = [r for r in view.rows if r["state"] == "queued"]
    done = 0
    for r in queued:
        with meters_transaction(ctx.engine, [r["meter_id"]]) as conn:
            done += move_command(conn, r["command_id"], "expired", result=CANCELLED, finished_at=now,
                                 error=f"{CANCELLED_BY}{actor.username}"[:300])
    with ctx.engine.begin() as conn:
        audit.record(conn, operator=actor.username[:100], action="control.cancel", target=f"batch:{view.batch['id']}",
                     ts=now, after={"cancelled": done}, source=actor.address or actor.channel)
    return done


def retry_failed(ctx: BillingContext, actor: Actor, batch_id) -> int:
    """Queue the batch's action again (new commands in the same batch) to its meters that failed or expired
    (not those the operator cancelled); audited."""
    view = batch_view(ctx, batch_id)
    action = view.batch["action"]
    spec = ACTIONS[action]
    _authorize(ctx, actor, spec, f"batch:{view.batch['id']}", view.batch["meters"] == 1)
    again = [r for r in view.rows if r["state"] in ("failed", "expired")]
    now = ctx.now()
    if not again:
        raise ControlError("nothing_to_retry")
    ids = [r["meter_id"] for r in again]
    with ctx.engine.connect() as conn:
        df = store.control_meters(conn, now)
    df = df[df["meter_id"].isin(ids)]
    with meters_transaction(ctx.engine, ids) as conn:
        limits = None
        if spec.kind == "limits":
            # the same thresholds again: as the batch's first command of each meter carried them
            first = store.batch_commands(conn, view.batch["id"])
            payload = _first_payload(conn, int(first["command_id"].iloc[0]))
            limits = {"alarm1": from_fen(payload["alarm1_fen"]), "alarm2": from_fen(payload["alarm2_fen"]),
                      "overload_w": int(payload["overload_w"])}
        plan = _plan(conn, spec, df, limits, now)
        for mid in ids:
            _queue_one(conn, spec, int(mid), plan, actor, now, view.batch["id"])
        audit.record(conn, operator=actor.username[:100], action="control.retry", target=f"batch:{view.batch['id']}",
                     ts=now, after={"meters": len(ids)}, source=actor.address or actor.channel)
    ctx.commands_queued()
    return len(ids)


def _first_payload(conn: sa.Connection, command_id: int) -> dict:
    import json
    from storage.outbox import command_row
    return json.loads(command_row(conn, command_id)["payload"])


def _none(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _shown(value) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text[:20] + ("…" if len(text) > 20 else "")
