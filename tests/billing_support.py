"""Helpers of the billing tests: a small prepaid site, a billing context with a movable clock, meter readings."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from billing.context import BillingContext
from billing.credit import Actor
from billing.settings import set_default_tariff
from billing.tariffs import create_tariff
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from operators.service import DEFAULT_ROLE_PERMISSIONS
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.schema import command, ledger_entry, meter
from storage.timeseries import upsert_meter_state

PII_KEY = bytes(range(32))
NATIONAL_ID = "11010519491231002X"   # GB 11643 example number with a valid check character


class Clock:
    """A clock tests move by hand (naive UTC)."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> dt.datetime:
        self.now += dt.timedelta(**kw)
        return self.now


def address(n: int) -> str:
    return f"2026112100{n:02d}"


def prepaid_site(base_port: int, balances: list[int] = (10000, 500, 0, 2000), counts: list[int] = (3, 7, 0, 12),
                 character: float = 0.0) -> SiteSpec:
    """Meters 01..N on two buses of one gateway; character 0 = no consumption, so balances move only by commands."""
    specs = [MeterSpec(address=address(i + 1), unit=i // 2 + 1, profile="acrel-ddsy1352",
                       building="Dorm A", floor=1, room=f"A-1{i + 1:02d}", balance_fen=b, purchase_count=c,
                       character=character)
             for i, (b, c) in enumerate(zip(balances, counts))]
    bus1 = [s for i, s in enumerate(specs) if i % 2 == 0]
    bus2 = [s for i, s in enumerate(specs) if i % 2 == 1]
    return SiteSpec("test", [GatewaySpec("GW-A", buses=[BusSpec(1, base_port, meters=bus1),
                                                        BusSpec(2, base_port + 1, meters=bus2)])])


def load_site(engine: sa.Engine, site: SiteSpec, now: dt.datetime) -> None:
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(engine, rows, set(ProfileRegistry().names()), now)


def make_ctx(engine: sa.Engine, clock) -> BillingContext:
    return BillingContext(engine, PII_KEY, clock=clock)


def flat_tariff(ctx: BillingContext, price: str = "0.60", name: str = "Flat") -> int:
    tid = create_tariff(ctx, name, "flat", "admin", prices={"flat": price},
                        valid_from=ctx.now() - dt.timedelta(days=30))
    set_default_tariff(ctx, tid, "admin")
    return tid


def meter_id(engine: sa.Engine, addr: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(meter.c.id).where(meter.c.address == addr)).scalar_one()


def write_reading(engine: sa.Engine, addr: str, *, balance: str, purchase_count: int, ts: dt.datetime,
                  command_seq: int = 0, forced_trip: bool = False, comm_state: str = "online") -> None:
    """A meter_state row as a poll cycle would leave it (through the storage layer's own writer)."""
    frame = pd.DataFrame([{"meter_id": meter_id(engine, addr), "ts": pd.Timestamp(ts),
                           "balance_fen": int(Decimal(balance) * 100), "purchase_count": purchase_count,
                           "command_seq": command_seq, "forced_trip": forced_trip, "comm_state": comm_state,
                           "miss_count": 0, "alarm_level": 0, "last_seen": pd.Timestamp(ts),
                           "updated_at": pd.Timestamp(ts)}])
    with engine.begin() as conn:
        upsert_meter_state(conn, frame)


def counts(engine: sa.Engine) -> tuple[int, int]:
    """(ledger entries, commands)."""
    with engine.connect() as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(command)).scalar_one())


def actor(role: str, username: str | None = None, address: str | None = "127.0.0.1") -> Actor:
    """An operator of `role` holding that role's default permissions, as the dashboard hands it to billing."""
    return Actor(username or role, DEFAULT_ROLE_PERMISSIONS[role], address=address)


def cashier(username: str = "cashier") -> Actor:
    return actor("cashier", username)
