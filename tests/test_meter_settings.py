"""Per-meter settings pushed with SET_LIMITS and read back from the meter's configuration block, bad thresholds
refused, and the fast state poll between full readings, against the simulated field on loopback."""
from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
import sqlalchemy as sa

from billing import accounts, ledger, meter_settings, settlement
from billing.context import utcnow
from billing.errors import BillingError
from collectors.cycle import CollectorService
from collectors.dispatch import Dispatcher
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from core.events import COMMAND_SETTLED, EventBus
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from storage.schema import audit_log, command, meter_state, readings

from tests.billing_support import (NATIONAL_ID, actor, address, cashier, flat_tariff, load_site, make_ctx, meter_id,
                                   prepaid_site)
from tests.conftest import free_port_block


class World:
    def __init__(self, engine, field, ctx, collector, dispatcher):
        self.engine, self.field, self.ctx, self.collector, self.dispatcher = engine, field, ctx, collector, dispatcher

    def wire_s(self) -> float:
        return sum(bus.wire_s for bus in self.field.buses.values())

    def commands(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(command)).scalar()


@pytest.fixture
def world(any_engine):
    site = prepaid_site(free_port_block(2))
    load_site(any_engine, site, utcnow())
    ctx = make_ctx(any_engine, utcnow)
    flat_tariff(ctx)
    events = EventBus()
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(any_engine, fio, clock=utcnow, events=events)
        dispatcher = Dispatcher(any_engine, fio, TEST_MASTER_KEY, utcnow, events=events,
                                on_settled=partial(settlement.settle_command, ctx), send_timeout_s=1.0)
        events.subscribe(COMMAND_SETTLED, collector.on_command_settled)
        collector.run_cycle()
        yield World(any_engine, ft.field, ctx, collector, dispatcher)


def operator():
    return actor("operator")


def test_a_meters_own_limits_are_pushed_and_read_back_from_its_configuration_block(world):
    view = meter_settings.push_meter_limits(world.ctx, operator(), address(1), alarm1="30.00", alarm2="10",
                                            overload_w="5000")
    assert (view.ours_from, view.push_state) == ("meter", "queued")
    summary = world.dispatcher.run_once()
    assert summary.acked == 1
    sim = world.field.meter(address(1))
    assert (sim.alarm1_fen, sim.alarm2_fen, sim.overload_w) == (3000, 1000, 5000)
    view = meter_settings.meter_settings(world.ctx, address(1))
    assert view.push_state == "acked"
    assert view.read == meter_settings.Limits(Decimal("30.00"), Decimal("10.00"), 5000)
    assert view.differs == ()
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(audit_log).where(audit_log.c.action == "meter.settings_push")).mappings().one()
    assert '"30.00"' in row["after"] and row["operator"] == "operator" and row["before"]


def test_the_settings_say_where_the_meter_differs_from_ours(world):
    meter_settings.push_meter_limits(world.ctx, operator(), address(2), alarm1="40", alarm2="15", overload_w="4000")
    assert world.collector.read_back_config(meter_id(world.engine, address(2)))   # read before the push went out
    view = meter_settings.meter_settings(world.ctx, address(2))
    sim = world.field.meter(address(2))
    assert view.read == meter_settings.Limits(Decimal(sim.alarm1_fen) / 100, Decimal(sim.alarm2_fen) / 100,
                                              sim.overload_w)
    assert set(view.differs) == {"alarm1", "alarm2", "overload_w"}


@pytest.mark.parametrize("alarm1, alarm2, overload, field, code", [
    ("-5", "1", "5000", "alarm1", "amount_negative"),
    ("10", "20", "5000", "alarm2", "alarm2_above_alarm1"),
    ("abc", "1", "5000", "alarm1", "amount_not_a_number"),
    ("50,5", "1", "5000", "alarm1", "amount_decimal_comma"),
    ("50", "1", "70000", "overload_w", "overload_invalid"),
    ("50", "1", "6000.5", "overload_w", "overload_invalid"),
    ("50", "1", "\x00", "overload_w", "overload_invalid"),
])
def test_bad_thresholds_are_refused_with_a_message_and_nothing_is_queued(world, alarm1, alarm2, overload, field,
                                                                          code):
    before = world.commands()
    with pytest.raises(BillingError) as err:
        meter_settings.push_meter_limits(world.ctx, operator(), address(1), alarm1=alarm1, alarm2=alarm2,
                                         overload_w=overload)
    assert (err.value.code, err.value.field) == (code, field)
    assert "billing.error" not in err.value.message("en") and "billing.error" not in err.value.message("zh")
    assert world.commands() == before


def test_full_width_digits_are_read_as_the_thresholds_they_say(world):
    view = meter_settings.push_meter_limits(world.ctx, operator(), address(1), alarm1="３０", alarm2="１０．５",
                                            overload_w="５０００")
    assert view.ours == meter_settings.Limits(Decimal("30.00"), Decimal("10.50"), 5000)


def test_a_cashier_without_settings_push_is_refused_and_the_refusal_is_logged(world):
    with pytest.raises(BillingError) as err:
        meter_settings.push_meter_limits(world.ctx, cashier(), address(1), alarm1="30", alarm2="10", overload_w="5000")
    assert err.value.code == "permission_denied"
    assert world.commands() == 0
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(audit_log.c.action).where(audit_log.c.operator == "cashier")).scalars().all() \
            == ["permission.denied"]


def test_the_state_poll_takes_less_bus_time_and_updates_meter_state_without_a_readings_row(world):
    m1 = meter_id(world.engine, address(1))
    accounts.open_account(world.ctx, holder_name="张三", meter_addresses=[address(1)], operator="cashier",
                          national_id=NATIONAL_ID)
    world.dispatcher.run_once()
    t0 = world.wire_s()
    world.collector.run_cycle()
    full = world.wire_s() - t0
    with world.engine.connect() as conn:
        rows_before = conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar()
        before = conn.execute(sa.select(meter_state).where(meter_state.c.meter_id == m1)).mappings().one()
    ledger.sell(world.ctx, address(1), "50.00", cashier())
    world.dispatcher.run_once()
    assert world.field.meter(address(1)).balance_fen == 15000

    world.collector.state_poll_interval_s = 0.0     # not skipped after the full reading just done
    t0 = world.wire_s()
    summary = world.collector.run_state_poll()
    fast = world.wire_s() - t0
    assert summary is not None and summary.ok == 4
    assert fast < full / 2
    with world.engine.connect() as conn:
        state = conn.execute(sa.select(meter_state).where(meter_state.c.meter_id == m1)).mappings().one()
        rows_after = conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar()
    assert before["balance"] == Decimal("100.00") and state["balance"] == Decimal("150.00")
    assert state["purchase_count"] == before["purchase_count"] + 1 and state["relay_closed"] is True
    assert state["voltage_a"] == before["voltage_a"] and state["ts"] == before["ts"]   # measurements: the full one's
    assert state["last_seen"] > before["last_seen"]
    assert rows_after == rows_before      # no readings row from the state poll


def test_a_state_poll_just_after_a_full_reading_is_skipped(world):
    world.collector.state_poll_interval_s = 120.0
    world.collector.run_cycle()
    t0 = world.wire_s()
    assert world.collector.run_state_poll() is None
    assert world.wire_s() == t0
