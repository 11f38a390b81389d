"""Shadow billing and the demo's billing data, on both engines."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from billing import accounts, ledger, tariffs, transfers
from billing.context import CHINA_STANDARD_TIME, utcnow
from billing.demo import seed_demo_billing
from billing.reconcile import reconcile
from billing.shadow import meters_off_by, shadow_billing
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from simulator.field import Field, run_field_in_thread
from simulator.history import backfill
from simulator.site import demo_site
from storage import billing as store
from storage.engine import dispose, open_engine
from storage.migrations import migrate
from storage.alarms import open_alarms
from storage.schema import account_meter, ledger_entry, meter
from storage.timeseries import append_readings

from tests.billing_support import NATIONAL_ID, Clock, address, cashier, flat_tariff, load_site, make_ctx, meter_id, \
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
    sale = ledger.sell(ctx, address(1), "50.00", cashier("c"))
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
        sale = ledger.sell(ctx, address(1), "30.00", cashier("c"))
        with ctx.engine.begin() as conn:
            store.settle_entry(conn, sale.id, "confirmed", confirmed_at=fixed_now)
    left = _series(ctx.engine, address(1), day1, 40, kwh=0.5, cost=Decimal("0.30"), balance=Decimal("100.00"),
                   count=3, purchases={5: Decimal("30.00"), 20: Decimal("30.00")})
    swap = day1 + dt.timedelta(days=1)
    ctx.clock.now = swap
    write_reading(ctx.engine, address(1), balance="0.00", purchase_count=0, ts=swap)   # the new meter
    moved = transfers.replace_meter_in_place(ctx, view.id, address(1), cashier("c"))
    assert moved.amount == left and moved.purchase_count == 1
    entries = [moved]
    for _ in range(4):
        entries.append(ledger.sell(ctx, address(1), "10.00", cashier("c")))
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


# ---------------------------------------------------------------- monthly tiers (200 / 400 kWh per month)
TIERS = [(200, "0.56"), (400, "0.61"), (None, "0.86")]


def _tier_price(month_use: Decimal) -> Decimal:
    return next(Decimal(p) for bound, p in TIERS if bound is None or month_use < bound)


def _local_midnight(day: dt.date) -> dt.datetime:
    """A site (China time) midnight as the naive UTC the readings carry."""
    return dt.datetime.combine(day, dt.time()) - dt.timedelta(hours=8)


def _tiered_meter(ctx, n: int) -> str:
    tid = tariffs.create_tariff(ctx, f"Tiered {n}", "tiered", "admin", tiers=TIERS,
                                valid_from=ctx.now() - dt.timedelta(days=60))
    accounts.open_account(ctx, holder_name="丁", meter_addresses=[address(n)], operator="c", national_id=NATIONAL_ID,
                          tariff_id=tid)
    return address(n)


def _tiered_series(engine, addr, first: dt.datetime, energies: list[Decimal], *, price=None):
    """Half-hourly readings from `first` (naive UTC) with energies[i] kWh in interval i, the balance falling as a
    meter with these tiers charges: the tier of the use so far in the site's calendar month of the interval's
    end. `price(local day the interval starts, month's use before it)` replaces that rule (a planted fault)."""
    price = price or (lambda _day, use: _tier_price(use))
    rows, energy, balance, month, month_use = [], Decimal("100.00"), Decimal("5000.00"), None, Decimal(0)
    for i in range(len(energies) + 1):
        ts = first + dt.timedelta(minutes=30 * i)
        local = ts + dt.timedelta(hours=8)
        if i:
            kwh = energies[i - 1]
            if (local.year, local.month) != month:
                month, month_use = (local.year, local.month), Decimal(0)
            balance -= kwh * price((local - dt.timedelta(minutes=30)).date(), month_use)
            month_use += kwh
            energy += kwh
        rows.append({"ts": ts, "meter_id": meter_id(engine, addr), "energy_total": float(energy),
                     "energy_sharp": 0.0, "energy_peak": 0.0, "energy_flat": float(energy), "energy_valley": 0.0,
                     "balance_fen": int(balance * 100), "purchase_count": 3})
    with engine.begin() as conn:
        append_readings(conn, pd.DataFrame(rows))


# 3 kWh every half hour (144 kWh a day) from 29 November to 5 December: December passes 200 kWh on its second
# day and 400 kWh on its third; every interval costs whole fen at each tier's price.
SERIES_FIRST = dt.date(2026, 11, 29)
SERIES_STEPS = 48 * 7


def test_a_tiered_meters_day_is_the_same_whether_the_report_starts_mid_month_or_on_the_first(ctx):
    addr = _tiered_meter(ctx, 1)
    _tiered_series(ctx.engine, addr, _local_midnight(SERIES_FIRST), [Decimal(3)] * SERIES_STEPS)
    end = _local_midnight(dt.date(2026, 12, 6))
    from_first = shadow_billing(ctx.engine, _local_midnight(dt.date(2026, 12, 1)), end, CHINA_STANDARD_TIME)
    mid_month = shadow_billing(ctx.engine, _local_midnight(dt.date(2026, 12, 4)), end, CHINA_STANDARD_TIME)
    assert [d.day for d in mid_month] == [dt.date(2026, 12, 4), dt.date(2026, 12, 5)]
    assert mid_month == [d for d in from_first if d.day >= dt.date(2026, 12, 4)]
    assert mid_month[0].expected == Decimal("0.86") * 144     # the month is past 400 kWh before the 4th


def test_a_tiered_meter_that_charges_its_calendar_months_tiers_is_not_listed(ctx):
    addr = _tiered_meter(ctx, 1)
    _tiered_series(ctx.engine, addr, _local_midnight(SERIES_FIRST), [Decimal(3)] * SERIES_STEPS)
    start, end = _local_midnight(dt.date(2026, 12, 2)), _local_midnight(dt.date(2026, 12, 6))
    days = shadow_billing(ctx.engine, start, end, CHINA_STANDARD_TIME)
    assert len(days) == 4 and all(d.expected == d.actual for d in days), [(d.day, d.expected, d.actual) for d in days]
    assert days[0].expected == Decimal("0.56") * 3 * 18 + Decimal("0.61") * 3 * 30   # 200 kWh passed at 02:00
    assert meters_off_by(ctx.engine, start, end, CHINA_STANDARD_TIME) == []


def test_an_over_deduction_on_a_tiered_meter_is_still_listed(ctx):
    honest, faulty = _tiered_meter(ctx, 1), _tiered_meter(ctx, 2)
    _tiered_series(ctx.engine, honest, _local_midnight(SERIES_FIRST), [Decimal(3)] * SERIES_STEPS)
    _tiered_series(ctx.engine, faulty, _local_midnight(SERIES_FIRST), [Decimal(3)] * SERIES_STEPS,
                   price=lambda day, use: _tier_price(use) + (Decimal("0.09") if day == dt.date(2026, 12, 4) else 0))
    off = meters_off_by(ctx.engine, _local_midnight(dt.date(2026, 12, 3)), _local_midnight(dt.date(2026, 12, 6)),
                        CHINA_STANDARD_TIME)
    assert [(o["meter_address"], o["days"], o["worst_day"]) for o in off] == [(faulty, 1, dt.date(2026, 12, 4))]
    assert off[0]["actual"] - off[0]["expected"] == Decimal("0.09") * 144
    assert off[0]["worst_ratio"] == pytest.approx(0.09 / 0.86, abs=0.0005)


def test_a_month_at_a_tier_bound_to_the_registers_resolution_is_not_listed_whichever_tier_was_charged(ctx):
    """The registers read 200.00 and 400.00 kWh into the month where the meter counted 0.005 kWh less: it charged
    the next 10 kWh at the first tier and the next 20 kWh at the second, where the registers alone say the next."""
    addr = _tiered_meter(ctx, 1)
    energies = [Decimal(10)] * 40 + [Decimal(20)] + [Decimal(1)] * 7
    _tiered_series(ctx.engine, addr, _local_midnight(dt.date(2026, 12, 1)), energies,
                   price=lambda _day, use: _tier_price(use - Decimal("0.005")))
    start, end = _local_midnight(dt.date(2026, 12, 1)), _local_midnight(dt.date(2026, 12, 2))
    [day] = shadow_billing(ctx.engine, start, end, CHINA_STANDARD_TIME)
    assert day.expected - day.actual == day.tolerance == 10 * Decimal("0.05") + 20 * Decimal("0.25")
    assert abs(day.difference) / day.expected > Decimal("0.01")
    assert meters_off_by(ctx.engine, start, end, CHINA_STANDARD_TIME) == []


def test_the_demos_tiered_building_is_not_listed_whatever_day_the_report_starts(tmp_path):
    """The demo's history (simulator backfill) over three weeks that cross a month: building 4 pays monthly tiers."""
    end = dt.datetime(2026, 12, 20, 4, 0)
    engine = open_engine(f"duckdb:///{tmp_path / 'demo.duckdb'}")
    migrate(engine)
    site = demo_site()
    load_site(engine, site, end)
    field = Field(site, clock=lambda: end.replace(tzinfo=dt.UTC).timestamp())
    readings, purchases = backfill(site, days=22, end=end, field=field)
    ctx = make_ctx(engine, Clock(end))
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.select(meter.c.address, meter.c.id)).all())
        readings["meter_id"] = readings.pop("meter_address").map(ids)
        append_readings(conn, readings)
    counts = {a: m.purchase_count for a, m in field.meters.items() if hasattr(m, "purchase_count")}
    seed_demo_billing(ctx, site, purchases, readings["ts"].min().to_pydatetime(), counts)
    tiered = [ids[m.address] for m in site.meters() if m.building == "Building 4" and m.prepaid_enabled]
    last = _local_midnight(dt.date(2026, 12, 20))
    whole = shadow_billing(engine, _local_midnight(dt.date(2026, 11, 28)), last, CHINA_STANDARD_TIME, tiered)
    assert len({d.meter_address for d in whole}) == len(tiered) > 50
    assert sum(d.energy_kwh for d in whole if d.day >= dt.date(2026, 12, 1)) / len(tiered) > 200  # tiers are passed
    for first in (dt.date(2026, 12, 1), dt.date(2026, 12, 9), dt.date(2026, 12, 16)):
        days = shadow_billing(engine, _local_midnight(first), last, CHINA_STANDARD_TIME, tiered)
        assert days == [d for d in whole if d.day >= first]
        assert meters_off_by(engine, _local_midnight(first), last, CHINA_STANDARD_TIME, meter_ids=tiered) == []
    dispose(engine)
