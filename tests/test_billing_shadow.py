"""Shadow billing and the demo's billing data, on both engines."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from billing import accounts, ledger, tariffs
from billing.context import CHINA_STANDARD_TIME, utcnow
from billing.demo import seed_demo_billing
from billing.reconcile import reconcile
from billing.shadow import meters_off_by, shadow_billing
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from simulator.field import run_field_in_thread
from simulator.history import backfill
from simulator.site import demo_site
from storage import billing as store
from storage.outbox import open_alarms
from storage.schema import account_meter, ledger_entry, meter
from storage.timeseries import append_readings

from tests.billing_support import NATIONAL_ID, Clock, address, flat_tariff, load_site, make_ctx, meter_id, \
    prepaid_site, write_reading
from tests.conftest import free_port_block


def _readings(engine, addr, start, steps, *, kwh, cost, registers=(0.0, 0.0, 1.0, 0.0), purchase_at=None,
              purchase=Decimal("0"), balance=Decimal("100.00"), count=3):
    """Half-hourly readings: `kwh` per interval split over the TOU registers, the balance falling by `cost`."""
    rows = []
    energy = [100.0, 100.0, 100.0, 100.0]
    for i in range(steps):
        if i:
            for r in range(4):
                energy[r] += kwh * registers[r]
            balance -= cost
            if i == purchase_at:
                balance += purchase
                count += 1
        rows.append({"ts": start + dt.timedelta(minutes=30 * i), "meter_id": meter_id(engine, addr),
                     "energy_total": sum(energy), "energy_sharp": energy[0], "energy_peak": energy[1],
                     "energy_flat": energy[2], "energy_valley": energy[3], "balance_fen": int(balance * 100),
                     "purchase_count": count})
    with engine.begin() as conn:
        append_readings(conn, pd.DataFrame(rows))


@pytest.fixture
def ctx(any_engine, fixed_now):
    load_site(any_engine, prepaid_site(15020), fixed_now)
    c = make_ctx(any_engine, Clock(fixed_now))
    flat_tariff(c)                                    # 0.60 yuan/kWh
    for n in (1, 2, 3):
        write_reading(any_engine, address(n), balance="100.00", purchase_count=3, ts=fixed_now)
    return c


def test_shadow_billing_matches_a_meter_that_charges_its_tariff(ctx, fixed_now):
    accounts.open_account(ctx, holder_name="甲", meter_addresses=[address(1)], operator="c", national_id=NATIONAL_ID)
    sale = ledger.sell(ctx, address(1), "50.00", "c")
    with ctx.engine.begin() as conn:
        store.settle_entry(conn, sale.id, "confirmed", confirmed_at=fixed_now)
    start = fixed_now + dt.timedelta(hours=1)
    _readings(ctx.engine, address(1), start, 96, kwh=0.5, cost=Decimal("0.30"), purchase_at=40,
              purchase=Decimal("50.00"))
    days = shadow_billing(ctx.engine, start, start + dt.timedelta(days=2), CHINA_STANDARD_TIME)
    assert days and all(d.expected == d.actual for d in days)
    assert sum(d.expected for d in days) == Decimal("0.30") * 95
    assert meters_off_by(ctx.engine, start, start + dt.timedelta(days=2), CHINA_STANDARD_TIME) == []


def test_a_meter_deducting_more_than_its_tariff_is_listed(ctx, fixed_now):
    accounts.open_account(ctx, holder_name="甲", meter_addresses=[address(1)], operator="c", national_id=NATIONAL_ID)
    accounts.open_account(ctx, holder_name="乙", meter_addresses=[address(2)], operator="c", national_id=NATIONAL_ID)
    start = fixed_now + dt.timedelta(hours=1)
    _readings(ctx.engine, address(1), start, 48, kwh=0.5, cost=Decimal("0.30"))
    _readings(ctx.engine, address(2), start, 48, kwh=0.5, cost=Decimal("0.33"))     # 0.66 yuan/kWh: 10 % over
    off = meters_off_by(ctx.engine, start, start + dt.timedelta(days=1), CHINA_STANDARD_TIME)
    assert [o["meter_address"] for o in off] == [address(2)]
    assert off[0]["worst_ratio"] == pytest.approx(0.10, abs=0.001)


def test_time_of_use_meters_are_shadowed_register_by_register(ctx, fixed_now):
    tid = tariffs.create_tariff(ctx, "TOU", "tou", "admin",
                                prices={"sharp": "1.00", "peak": "0.80", "flat": "0.60", "valley": "0.35"},
                                segments=[(0, 3), (480, 1), (1140, 0), (1260, 1), (1380, 3)],
                                valid_from=fixed_now - dt.timedelta(days=1))
    accounts.open_account(ctx, holder_name="丙", meter_addresses=[address(3)], operator="c", national_id=NATIONAL_ID,
                          tariff_id=tid)
    start = fixed_now + dt.timedelta(hours=1)
    # per interval 0.1 kWh sharp, 0.3 peak, 0.6 valley of 1 kWh: 0.10 + 0.24 + 0.21 = 0.55 yuan
    _readings(ctx.engine, address(3), start, 48, kwh=1.0, cost=Decimal("0.55"), registers=(0.1, 0.3, 0.0, 0.6))
    days = shadow_billing(ctx.engine, start, start + dt.timedelta(days=1), CHINA_STANDARD_TIME)
    assert sum(d.expected for d in days) == sum(d.actual for d in days) == Decimal("0.55") * 47


def test_the_demo_opens_most_rooms_and_its_ledger_counts_equal_the_meters(any_engine):
    site = demo_site(base_port=free_port_block(20))
    now = utcnow()
    load_site(any_engine, site, now)
    ctx = make_ctx(any_engine, utcnow)
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        readings, purchases = backfill(site, days=3, field=ft.field)
        with any_engine.begin() as conn:
            ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
            readings["meter_id"] = readings.pop("meter_address").map(ids)
            append_readings(conn, readings)
        counts = {a: m.purchase_count for a, m in ft.field.meters.items() if hasattr(m, "purchase_count")}
        info = seed_demo_billing(ctx, site, purchases, readings["ts"].min().to_pydatetime(), counts)
        collector = CollectorService(any_engine, fio, clock=utcnow)
        collector.after_cycle.append(lambda _s: reconcile(any_engine, utcnow))
        collector.run_cycle()
        collector.run_cycle()
        with any_engine.connect() as conn:
            alarms = open_alarms(conn)
            bounds = store.live_count_bounds(conn)
            opened = conn.execute(sa.select(meter.c.address, meter.c.id).join(
                account_meter, account_meter.c.meter_id == meter.c.id)).all()
            sales = conn.execute(sa.select(sa.func.count()).select_from(ledger_entry)
                                 .where(ledger_entry.c.state == "confirmed")).scalar_one()
    prepaid_rooms = [m for m in site.meters() if m.profile == "acrel-ddsy1352" and m.prepaid_enabled]
    assert len(opened) == len(prepaid_rooms) > 400 and info["two_meter_accounts"] >= 5
    assert info["accounts"] == len(prepaid_rooms) - info["two_meter_accounts"]
    assert sales == len(purchases) == info["sales"] > 0
    for addr, mid in opened:
        confirmed, _pending, base = bounds[mid]
        assert max(confirmed or 0, base) == counts[addr], addr
    assert alarms == [], "reconciliation is quiet at the start of the demo"


def _series(engine, addr, start, steps, *, kwh, cost, balance, count, purchases):
    """Half-hourly readings from a fresh register (0 kWh): `purchases` {step: amount} raise the balance and the count."""
    rows, energy = [], 0.0
    for i in range(steps):
        if i:
            energy += kwh
            balance -= cost
            if i in purchases:
                balance += purchases[i]
                count += 1
        rows.append({"ts": start + dt.timedelta(minutes=30 * i), "meter_id": meter_id(engine, addr),
                     "energy_total": energy, "energy_sharp": 0.0, "energy_peak": 0.0, "energy_flat": energy,
                     "energy_valley": 0.0, "balance_fen": int(balance * 100), "purchase_count": count})
    with engine.begin() as conn:
        append_readings(conn, pd.DataFrame(rows))
    return balance


def test_shadow_billing_keeps_the_counts_of_a_meter_replaced_in_place_apart(ctx, fixed_now):
    """Before the swap the meter's sales carried counts 4 and 5; after it the new meter's carry 1..5 again."""
    view = accounts.open_account(ctx, holder_name="甲", meter_addresses=[address(1)], operator="c",
                                 national_id=NATIONAL_ID)
    day1 = fixed_now + dt.timedelta(hours=1)
    for _ in range(2):
        sale = ledger.sell(ctx, address(1), "30.00", "c")
        with ctx.engine.begin() as conn:
            store.settle_entry(conn, sale.id, "confirmed", confirmed_at=fixed_now)
    left = _series(ctx.engine, address(1), day1, 40, kwh=0.5, cost=Decimal("0.30"), balance=Decimal("100.00"),
                   count=3, purchases={5: Decimal("30.00"), 20: Decimal("30.00")})
    swap = day1 + dt.timedelta(days=1)
    ctx.clock.now = swap
    write_reading(ctx.engine, address(1), balance="0.00", purchase_count=0, ts=swap)   # the new meter
    moved = accounts.replace_meter_in_place(ctx, view.id, address(1), "c")
    assert moved.amount == left and moved.purchase_count == 1
    entries = [moved]
    for _ in range(4):
        entries.append(ledger.sell(ctx, address(1), "10.00", "c"))
    with ctx.engine.begin() as conn:
        for e in entries:
            store.settle_entry(conn, e.id, "confirmed", confirmed_at=swap)
    assert [e.purchase_count for e in entries] == [1, 2, 3, 4, 5]
    _series(ctx.engine, address(1), swap + dt.timedelta(minutes=30), 60, kwh=0.5, cost=Decimal("0.30"),
            balance=Decimal("0.00"), count=0,
            purchases={1: left, 10: Decimal("10.00"), 20: Decimal("10.00"), 30: Decimal("10.00"),
                       40: Decimal("10.00")})
    days = shadow_billing(ctx.engine, day1, swap + dt.timedelta(days=2), CHINA_STANDARD_TIME, [meter_id(ctx.engine,
                                                                                                         address(1))])
    assert days and all(d.expected == d.actual for d in days), [(d.day, d.expected, d.actual) for d in days]
    assert meters_off_by(ctx.engine, day1, swap + dt.timedelta(days=2), CHINA_STANDARD_TIME) == []
