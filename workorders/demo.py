"""The demo's work orders on first start: workers (the demo `worker` operator among them) with districts and
phones, and 90 days of orders in every state with consistent events, steps, materials, customers' confirmations
and ratings, follow-up calls, some overdue and some on hold, so the KPIs, the office pages and the worker's phone
have something to show. Generated as whole frames (numpy) and written in bulk: it adds well under a second."""
from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.clock import site_time, utc_time
from storage import audit
from storage import operators as operator_store
from storage import workorder_office as store
from workorders.service import WorkOrderService
from storage.schema import (terminal, terminal_seen, work_order, work_order_confirmation, work_order_event,
                            work_order_followup, work_order_material, work_order_step, worker, worker_district)

OPERATOR = "demo"
EXTRA_WORKERS = ("worker2", "worker3", "worker4")
TYPE_WEIGHTS = {"repair": 0.24, "new_connection": 0.08, "meter_install": 0.12, "meter_removal": 0.05,
                "acceptance": 0.05, "fee_collection": 0.2, "safety_inspection": 0.12, "contract_inspection": 0.08,
                "temporary": 0.06}
PRIORITY_WEIGHTS = {"urgent": 0.1, "high": 0.25, "normal": 0.55, "low": 0.1}
RATINGS = (np.array([1, 2, 3, 4, 5]), np.array([0.03, 0.04, 0.11, 0.32, 0.5]))
BASE = (31.2304, 121.4737)    # where the demo's workers roam (only distances between them matter)
SLOT = dt.timedelta(minutes=15)


def _workers(conn: sa.Connection, now: dt.datetime, buildings: list[int]) -> pd.DataFrame:
    """The demo `worker` and a few colleagues (same password), their worker rows and districts."""
    first = operator_store.operator_by_username(conn, "worker")
    if first is None:
        return pd.DataFrame(columns=["operator_id", "username"])
    rows = [(first["id"], "worker")]
    for name in EXTRA_WORKERS:
        found = operator_store.operator_by_username(conn, name)
        if found is None:
            oid = operator_store.insert_operator(conn, username=name, display_name=f"Demo {name}",
                                                 password_hash=first["password_hash"], active=True,
                                                 must_change_password=False, created_at=now, failed_logins=0)
            operator_store.set_roles(conn, oid, ["worker"])
            rows.append((oid, name))
        else:
            rows.append((found["id"], name))
    workers = pd.DataFrame(rows, columns=["operator_id", "username"])
    rng = np.random.default_rng(7)
    n = len(workers)
    store.bulk_insert(conn, worker, workers.assign(
        phone=[f"1390000{i:04d}" for i in range(n)], available=True,
        lat=BASE[0] + rng.normal(0, 0.01, n), lon=BASE[1] + rng.normal(0, 0.01, n), located_at=now))
    if buildings:
        store.bulk_insert(conn, worker_district, pd.DataFrame(
            [(workers.operator_id[i % n], "building", b) for i, b in enumerate(buildings)],
            columns=["operator_id", "district_kind", "district_id"]))
    return workers


def _terminals(conn: sa.Connection, workers: pd.DataFrame, now: dt.datetime, zone: dt.tzinfo, days: int) -> int:
    """A phone per worker and the quarter hours it was seen: most of each working day (08:00-18:00, Monday to
    Saturday), a few days missed, so the online rate has something to count."""
    if workers.empty:
        return 0
    rng = np.random.default_rng(11)
    n = len(workers)
    ids = store.next_ids(conn, terminal, n)
    store.bulk_insert(conn, terminal, pd.DataFrame({
        "id": ids, "operator": workers.username,
        "device_hash": [hashlib.sha256(f"demo-phone-{u}".encode()).hexdigest() for u in workers.username],
        "user_agent": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
        "app_version": "web", "state": "active", "registered_at": now - dt.timedelta(days=days),
        "last_seen_at": now - pd.to_timedelta(rng.integers(1, 40, n), unit="min"),
        "lat": BASE[0] + rng.normal(0, 0.01, n), "lon": BASE[1] + rng.normal(0, 0.01, n), "located_at": now}))
    today = site_time(now, zone).date()
    local_days = [today - dt.timedelta(days=d) for d in range(days, 0, -1)]
    starts = [utc_time(dt.datetime.combine(d, dt.time(8)), zone) for d in local_days if d.isoweekday() != 7]
    slots = (pd.DatetimeIndex(starts).values[:, None] + (np.arange(40) * SLOT)[None, :].astype("timedelta64[ns]"))
    slots = slots.ravel()
    frames = []
    for tid, name in zip(ids, workers.username):
        present = rng.random(len(slots)) < rng.uniform(0.78, 0.95)
        frames.append(pd.DataFrame({"terminal_id": tid, "slot": slots[present], "operator": name}))
    seen = pd.concat(frames, ignore_index=True)
    _blocked_phone(conn, workers.username.iloc[0], now)
    return store.bulk_insert(conn, terminal_seen, seen[seen["slot"] < np.datetime64(now)])


def _blocked_phone(conn: sa.Connection, username: str, now: dt.datetime) -> None:
    """A worker's old phone, reported lost and blocked by the office (the terminals page shows who, when, why)."""
    lost = now - dt.timedelta(days=12)
    store.bulk_insert(conn, terminal, pd.DataFrame({
        "id": store.next_ids(conn, terminal, 1), "operator": [username],
        "device_hash": [hashlib.sha256(f"demo-lost-phone-{username}".encode()).hexdigest()],
        "user_agent": ["Mozilla/5.0 (Linux; Android 12) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"],
        "app_version": ["web"], "state": ["blocked"], "registered_at": [now - dt.timedelta(days=400)],
        "last_seen_at": [lost - dt.timedelta(hours=3)], "state_reason": ["Phone reported lost; replaced"],
        "state_by": ["manager"], "state_at": [lost]}))


def _choice(rng, weights: dict, n: int) -> np.ndarray:
    keys = np.array(list(weights))
    p = np.array(list(weights.values()))
    return rng.choice(keys, size=n, p=p / p.sum())


def _timeline(rng, n: int, created: np.ndarray, limit_h: np.ndarray) -> dict[str, np.ndarray]:
    """Every order's milestones as if nothing stopped it (times as numpy datetime64); which happened by now is
    decided after. Durations scale with the order's time limit, so about one order in six runs late."""
    hour = np.timedelta64(3600, "s")

    def after(base, frac=None, lo=None, hi=None):
        hours = limit_h * frac * rng.exponential(1.0, n) if frac is not None else rng.uniform(lo, hi, n)
        return base + (hours * 3600).astype("int64").astype("timedelta64[s]")

    held = rng.random(n) < 0.06
    hold_h = rng.uniform(4, 72, n) * held
    rejected = rng.random(n) < 0.07
    cancelled = rng.random(n) < 0.03
    t = {"create": created}
    t["dispatch"] = after(created, frac=0.06) + hour // 20
    t["accept"] = after(t["dispatch"], frac=0.06) + hour // 20
    t["hold"] = after(t["accept"], lo=0.2, hi=1.0)
    t["release"] = t["hold"] + (hold_h * 3600).astype("int64").astype("timedelta64[s]")
    t["arrive"] = after(np.where(held, t["release"], t["accept"]), frac=0.12) + hour // 6
    t["complete"] = after(t["arrive"], frac=0.3) + hour // 4
    t["reject"] = after(t["complete"], lo=1, hi=10)
    t["rework"] = after(t["reject"], lo=1, hi=12)
    t["complete2"] = after(t["rework"], lo=0.5, hi=3)
    t["approve"] = after(np.where(rejected, t["complete2"], t["complete"]), lo=2, hi=30)
    t["archive"] = after(t["approve"], lo=24, hi=120)
    t["cancel"] = after(created, lo=0.5, hi=12)
    return {"t": t, "held": held, "hold_h": hold_h, "rejected": rejected, "cancelled": cancelled}


def _recent_cases(rng, plan: dict, now: dt.datetime, holds: int = 6, rejections: int = 3) -> None:
    """A few of the latest orders stand on hold and rejected now (the random timeline rarely leaves one there):
    held after acceptance until after now; rejected at review with the rework still to come."""
    t, now64, hour = plan["t"], np.datetime64(now), np.timedelta64(3600, "s")
    fresh = ~plan["cancelled"] & ~plan["held"] & ~plan["rejected"]
    accepted = np.flatnonzero(fresh & (t["hold"] < now64 - hour) & (t["arrive"] > now64))
    for i in rng.choice(accepted, size=min(holds, len(accepted)), replace=False):
        plan["held"][i] = True
        plan["hold_h"][i] = (now64 - t["hold"][i]) / hour + rng.uniform(6, 48)
        shift = (plan["hold_h"][i] * 3600).astype("int64").astype("timedelta64[s]")
        for key in ("release", "arrive", "complete", "approve", "archive"):
            t[key][i] = (t["hold"][i] if key == "release" else t[key][i]) + shift
    done = np.flatnonzero(fresh & ~plan["held"] & (t["complete"] < now64 - 3 * hour) & (t["approve"] > now64))
    for i in rng.choice(done, size=min(rejections, len(done)), replace=False):
        plan["rejected"][i] = True
        t["reject"][i] = t["complete"][i] + hour
        t["rework"][i] = now64 + hour * 2
        t["complete2"][i], t["approve"][i] = now64 + hour * 5, now64 + hour * 30
        t["archive"][i] = now64 + hour * 80


# (milestone, action, state reached); a hold returns to "accepted" (the demo holds accepted orders only)
STEPS = (("create", "create", "created"), ("dispatch", "dispatch", "dispatched"), ("accept", "accept", "accepted"),
         ("hold", "hold", "on_hold"), ("release", "release", "accepted"), ("arrive", "arrive", "on_site"),
         ("complete", "complete", "completed"), ("reject", "reject", "rejected"), ("rework", "rework", "on_site"),
         ("complete2", "complete", "completed"), ("approve", "approve", "approved"),
         ("archive", "archive", "archived"))
NOTES = {"hold": "demo: customer not at home, visit agreed later", "reject": "demo: photo of the seal missing",
         "cancel": "demo: customer withdrew the request"}


def _events(ids: np.ndarray, plan: dict, workers: np.ndarray, usernames: np.ndarray, now: dt.datetime,
            office: str) -> pd.DataFrame:
    t, frames = plan["t"], []
    cancelled = plan["cancelled"]
    cancel_early = cancelled & (t["cancel"] < t["dispatch"])
    for seq, (key, action, state) in enumerate(STEPS):
        mask = np.ones(len(ids), dtype=bool)
        if key in ("hold", "release"):
            mask = plan["held"].copy()
        if key in ("reject", "rework", "complete2"):
            mask = plan["rejected"].copy()
        if key != "create":
            mask &= ~cancel_early
        if key not in ("create", "dispatch"):
            mask &= ~cancelled
        by_worker = action in ("accept", "arrive", "complete", "rework", "release", "hold")
        frames.append(pd.DataFrame({"order_id": ids[mask], "seq": seq, "action": action, "to_state": state,
                                    "ts": t[key][mask], "worker_id": np.where(key == "create", None, workers[mask]),
                                    "actor": usernames[mask] if by_worker else office,
                                    "note": NOTES.get(key)}))
    mask = cancelled
    frames.append(pd.DataFrame({"order_id": ids[mask], "seq": 99, "action": "cancel", "to_state": "cancelled",
                                "ts": np.maximum(t["cancel"][mask], t["create"][mask]),
                                "worker_id": np.where(cancel_early[mask], None, workers[mask]), "actor": office,
                                "note": NOTES["cancel"]}))
    events = pd.concat(frames, ignore_index=True)
    events = events[events["ts"] <= np.datetime64(now)].sort_values(["order_id", "ts", "seq"], kind="stable")
    events["from_state"] = events.groupby("order_id")["to_state"].shift(1)
    return events.reset_index(drop=True)


def seed_demo_work_orders(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime, *, days: int = 90,
                          per_day: float = 22.0, limits_h: dict[str, float] | None = None, seed: int = 2026) -> dict:
    """Workers, terminals and `days` of orders up to `now` (first start only: nothing when orders exist)."""
    limits_h = limits_h or {"urgent": 4.0, "high": 24.0, "normal": 72.0, "low": 168.0}
    rng = np.random.default_rng(seed)
    WorkOrderService(engine, zone=zone).seed()       # the order types and their cards
    with engine.begin() as conn:
        if store.seeded_before(conn):
            return {"orders": 0}
        customers = store.demo_customers(conn)
        buildings = sorted(set(customers["building_id"].dropna().astype(int)))
        workers = _workers(conn, now, buildings)
        seen = _terminals(conn, workers, now, zone, days)
        n = int(rng.poisson(per_day, days).sum())
        if workers.empty or n == 0:
            return {"orders": 0, "workers": len(workers)}
        created = np.sort(np.datetime64(now) - (rng.uniform(0.02, days, n) * 86400).astype("int64")
                          .astype("timedelta64[s]"))
        orders = pd.DataFrame({"id": store.next_ids(conn, work_order, n),
                               "type": _choice(rng, TYPE_WEIGHTS, n), "priority": _choice(rng, PRIORITY_WEIGHTS, n),
                               "created_at": created})
        limit = orders["priority"].map(limits_h).to_numpy(dtype=float)
        pick = rng.integers(0, max(len(customers), 1), n)
        if len(customers):
            orders = pd.concat([orders, customers.iloc[pick].drop(columns=["room"]).reset_index(drop=True)], axis=1)
        else:
            orders = orders.assign(account_id=None, meter_id=None, room_id=None, building_id=None, area_id=None,
                                   customer_name=None, customer_phone=None)
        slot = rng.integers(0, len(workers), n)
        worker_ids = workers.operator_id.to_numpy()[slot]
        usernames = workers.username.to_numpy()[slot]
        plan = _timeline(rng, n, created, limit)
        _recent_cases(rng, plan, now)
        events = _events(orders["id"].to_numpy(), plan, worker_ids, usernames, now, "manager")
        orders = _order_rows(orders, events, plan, limit, worker_ids, zone, now)
        store.bulk_insert(conn, work_order, orders)
        store.bulk_insert(conn, work_order_event, events)
        parts = _parts(conn, rng, orders, events, now)
        audit.record(conn, operator=OPERATOR, action="workorder.demo_seed", target="demo", ts=now,
                     after={"orders": n, "events": len(events), "workers": len(workers), **parts,
                            "seen_slots": seen})
    places = _district_orders(engine, zone, now, workers, buildings)
    return {"orders": n, "events": len(events), "workers": len(workers), "district_orders": places, **parts}


def _district_orders(engine: sa.Engine, zone: dt.tzinfo, now: dt.datetime, workers: pd.DataFrame,
                     buildings: list[int]) -> int:
    """Two orders about a place, not a customer: a safety inspection of a building's meter boxes, accepted by the
    demo worker (a customer's QR code from another building is refused on site), and a repair in a transformer
    area. Through the service, as the office makes them."""
    from billing.credit import Actor
    from core import permissions as P
    if not buildings:
        return 0
    service = WorkOrderService(engine, zone=zone)
    office = Actor("manager", frozenset({P.WORKORDER_DISPATCH}))
    made = service.create(office, type="safety_inspection", district=("building", buildings[0]),
                          description="Check every meter box and seal of the building", now=now).order
    mine = workers[workers.username == "worker"]
    if not mine.empty:
        service.dispatch(office, made["id"], int(mine.operator_id.iloc[0]), now=now)
        service.act(Actor("worker", frozenset({P.WORKORDER_EXECUTE})), made["id"], "accept", now=now)
    areas = service.districts()["area"]
    if areas:
        service.create(office, type="repair", district=("area", next(iter(areas))), priority="high",
                       description="Street lighting feeder trips in the evening", now=now)
    return 1 + bool(areas)


def _order_rows(orders: pd.DataFrame, events: pd.DataFrame, plan: dict, limit_h: np.ndarray, worker_ids,
                zone: dt.tzinfo, now: dt.datetime) -> pd.DataFrame:
    """The orders as they stand at `now`, read off the events that happened."""
    last = events.groupby("order_id").tail(1).set_index("order_id")
    state = orders["id"].map(last["to_state"])
    first = events.groupby(["order_id", "action"])["ts"].min().unstack()
    latest = events.groupby(["order_id", "action"])["ts"].max().unstack()

    def at(frame, action):
        return orders["id"].map(frame[action]) if action in frame else pd.Series(pd.NaT, index=orders.index)

    released = at(first, "release").notna().to_numpy()
    held_s = np.where(released, plan["hold_h"] * 3600, 0).astype(int)
    due = pd.Series(orders["created_at"]) + pd.to_timedelta(limit_h, unit="h") + pd.to_timedelta(held_s, unit="s")
    dispatched = state.ne("created") & ~(state.eq("cancelled") & at(first, "dispatch").isna())
    local_day = site_time(pd.Series(orders["created_at"]), zone).dt.strftime("%Y%m%d")
    number = "WO" + local_day + "-" + orders["id"].map("{:06d}".format)     # as WorkOrderService numbers them
    closed = at(first, "approve").where(state.isin(["approved", "archived"]), at(first, "cancel"))
    reason = np.select([state.eq("on_hold"), state.eq("rejected"), state.eq("cancelled")],
                       [NOTES["hold"], NOTES["reject"], NOTES["cancel"]], default=None)
    return orders.assign(
        number=number, state=state, source=np.where(orders["type"] == "fee_collection", "alarm", "counter"),
        description=orders["type"].map(lambda k: f"demo: {k.replace('_', ' ')}"),
        due_at=due, held_since=at(latest, "hold").where(state.eq("on_hold")),
        held_from=np.where(state.eq("on_hold"), "accepted", None), held_seconds=held_s,
        assigned_to=np.where(dispatched, worker_ids, None), created_by="manager",
        updated_at=orders["id"].map(last["ts"]), dispatched_at=at(first, "dispatch"), accepted_at=at(first, "accept"),
        arrived_at=at(first, "arrive"), completed_at=at(latest, "complete"), closed_at=closed, reason=reason,
        location=orders.get("room"))


def _parts(conn: sa.Connection, rng, orders: pd.DataFrame, events: pd.DataFrame, now: dt.datetime) -> dict:
    """Steps and materials copied from the cards, done and used on completed orders; the customers'
    confirmations (with ratings at completion) and the office's follow-up calls."""
    cards = store.card_items(conn)
    done_states = ["completed", "approved", "archived", "rejected"]
    base = orders[["id", "type", "state", "completed_at", "arrived_at", "account_id", "assigned_to"]].rename(
        columns={"id": "order_id"})
    steps = base.merge(cards[cards["kind"].isin(["step", "hazard"])], on="type")
    done = steps["state"].isin(done_states).to_numpy()
    steps = steps.assign(done=done, done_at=steps["completed_at"].where(done),
                         done_by=np.where(done, "worker", None),
                         value=np.where(done & steps["needs_value"].fillna(False).astype(bool),
                                        (rng.uniform(100, 9000, len(steps))).round(1).astype(str), None))
    store.bulk_insert(conn, work_order_step, steps.drop(columns=["quantity", "unit_price", "item_class", "unit"]))
    materials = base.merge(cards[cards["kind"].isin(["tool", "material", "service"])], on="type")
    # a card's quantity 0 is the worker's to fill in (cable by the metre): the demo's worker used 1 to 6
    usual = pd.to_numeric(materials["quantity"]).fillna(0).astype(float)
    used = np.where(usual > 0, usual * rng.integers(1, 3, len(materials)), rng.integers(1, 7, len(materials)))
    materials = materials.assign(
        quantity=np.where(materials["state"].isin(done_states), used, usual),
        unit_price=materials["unit_price"].fillna(0))
    store.bulk_insert(conn, work_order_material, materials)
    known = base[base["account_id"].notna()]
    arrived = known[known["arrived_at"].notna()]
    completed = known[known["state"].isin(["completed", "approved", "archived"])]
    confirmations = pd.concat([
        pd.DataFrame({"order_id": arrived["order_id"], "stage": "arrival", "account_id": arrived["account_id"],
                      "rating": None, "confirmed_by": "worker", "confirmed_at": arrived["arrived_at"]}),
        pd.DataFrame({"order_id": completed["order_id"], "stage": "completion", "account_id": completed["account_id"],
                      "rating": rng.choice(RATINGS[0], size=len(completed), p=RATINGS[1]), "confirmed_by": "worker",
                      "confirmed_at": completed["completed_at"]})], ignore_index=True)
    store.bulk_insert(conn, work_order_confirmation, confirmations)
    approved = orders[orders["state"].isin(["approved", "archived"]) & (rng.random(len(orders)) < 0.7)]
    reached = rng.random(len(approved)) < 0.85
    called_at = (approved["closed_at"] + pd.to_timedelta(rng.uniform(2, 48, len(approved)), unit="h")).clip(
        upper=pd.Timestamp(now))
    followups = pd.DataFrame({
        "order_id": approved["id"], "called_at": called_at, "called_by": "manager",
        "outcome": np.where(reached, "reached", "no_answer"),
        "satisfaction": np.where(reached, rng.choice(RATINGS[0], size=len(approved), p=RATINGS[1]), None),
        "note": None, "recorded_by": "manager", "recorded_at": called_at})
    store.bulk_insert(conn, work_order_followup, followups)
    return {"steps": len(steps), "materials": len(materials), "confirmations": len(confirmations),
            "followups": len(followups)}
