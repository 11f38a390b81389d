"""Poll cycles end to end: simulator on loopback -> collector -> DuckDB / PostgreSQL readings and meter_state."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing.alarm_engine import AlarmEngine
from collectors.cycle import CollectorService
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.topology_import import import_topology
from simulator.field import run_field_in_thread
from simulator.site import BusSpec, GatewaySpec, MeterSpec, SiteSpec
from storage.health import data_plane_summary
from storage.schema import alarm_event, bus_state, gateway, meter, readings
from storage.timeseries import meter_states

from tests.conftest import free_port_block


def small_site(base_port: int) -> SiteSpec:
    def room(n, unit, balance):
        return MeterSpec(address=f"2026112100{n:02d}", unit=unit, profile="acrel-ddsy1352", building="Dorm A",
                         floor=1, room=f"A-1{n:02d}", balance_fen=balance, purchase_count=3)
    return SiteSpec("test", [
        GatewaySpec("GW-A", buses=[
            BusSpec(1, base_port, meters=[room(1, 1, 12345), room(2, 2, 800), room(3, 3, 5000)]),
            BusSpec(2, base_port + 1, meters=[room(4, 1, 300), room(5, 2, 9999)]),
        ]),
        GatewaySpec("GW-B", framing="rtu", buses=[
            BusSpec(1, base_port + 2, meters=[room(6, 7, 2500), room(7, 8, 2600)]),
        ]),
    ])


@pytest.fixture
def field_and_service(any_engine, fixed_now):
    site = small_site(free_port_block(3))
    rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in site.topology_rows()]
    import_topology(any_engine, rows, set(ProfileRegistry().names()), fixed_now)
    with any_engine.begin() as conn:  # short timeouts keep the lost-meter tests quick, long enough that a
        # healthy meter answers on a machine busy with other test workers (0.3 s lost whole buses there)
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))
    clock = iter(fixed_now.replace(minute=m) for m in range(60))
    with run_field_in_thread(site) as ft, FieldIO(ProfileRegistry()) as fio:
        yield ft.field, CollectorService(any_engine, fio, lost_after=3, clock=lambda: next(clock)), any_engine


def _state(engine, address):
    with engine.connect() as conn:
        mid = conn.execute(sa.select(meter.c.id).where(meter.c.address == address)).scalar_one()
        states = meter_states(conn)
    return states[states.meter_id == mid].iloc[0]


def _open_alarms(engine, kind="lost_contact"):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alarm_event).where(
            alarm_event.c.kind == kind, alarm_event.c.closed_at.is_(None))).scalar()


def test_a_cycle_writes_one_reading_per_meter_and_the_latest_state(field_and_service):
    field, service, engine = field_and_service
    summary = service.run_cycle()
    assert (summary.meters, summary.ok, summary.failed) == (7, 7, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar() == 7
        health = data_plane_summary(conn)
    assert health["meters_online"] == 7 and health["last_poll"]["ok"] == 7
    st = _state(engine, "202611210001")
    assert st.comm_state == "online" and st.purchase_count == 3
    # the balance in the database is the meter's own, to the fen
    assert st.balance == Decimal(field.meter("202611210001").balance_fen) / 100


def test_alarm_levels_follow_the_meters_open_alarms(field_and_service):
    field, service, engine = field_and_service
    service.run_cycle()
    AlarmEngine(engine).evaluate()     # the alarm engine keeps meter_state.alarm_level after each cycle
    assert _state(engine, "202611210001").alarm_level == 0     # 123.45 yuan
    assert _state(engine, "202611210002").alarm_level == 1     # 8.00 <= alarm1 20.00
    assert _state(engine, "202611210004").alarm_level == 2     # 3.00 <= alarm2 5.00


def test_a_silent_meter_is_lost_after_three_missed_polls_and_recovers(field_and_service):
    field, service, engine = field_and_service
    service.run_cycle()
    field.set_meter_offline("202611210002", True)
    for expected_misses in (1, 2):
        service.run_cycle()
        st = _state(engine, "202611210002")
        assert st.comm_state == "online" and st.miss_count == expected_misses
    summary = service.run_cycle()
    st = _state(engine, "202611210002")
    assert st.comm_state == "lost" and st.lost_since is not None
    assert st.balance is not None, "the last known values stay visible while the meter is lost"
    assert summary.ok == 6, "the other meters on the same bus are still read"
    assert _open_alarms(engine) == 1
    field.set_meter_offline("202611210002", False)
    service.run_cycle()
    st = _state(engine, "202611210002")
    assert st.comm_state == "online" and st.miss_count == 0 and st.lost_since is None
    assert _open_alarms(engine) == 0


def test_an_unreachable_gateway_loses_its_meters_at_once_and_recovers(field_and_service):
    field, service, engine = field_and_service
    service.run_cycle()
    field.set_gateway_down("GW-B", True)
    summary = service.run_cycle()
    assert summary.endpoints_unreachable == 1 and summary.ok == 5
    assert _state(engine, "202611210006").comm_state == "lost"
    assert _state(engine, "202611210007").comm_state == "lost"
    with engine.connect() as conn:
        assert data_plane_summary(conn)["buses_lost"] == 1
        lost_buses = conn.execute(sa.select(bus_state.c.comm_state)).scalars().all()
    assert sorted(lost_buses) == ["lost", "online", "online"]
    field.set_gateway_down("GW-B", False)
    service.run_cycle()
    assert _state(engine, "202611210006").comm_state == "online"
    with engine.connect() as conn:
        assert data_plane_summary(conn)["buses_lost"] == 0


def test_garbage_replies_count_as_misses_and_the_bus_goes_on(field_and_service):
    field, service, engine = field_and_service
    field.inject_bad_replies("202611210001", "garbage", 1)
    field.inject_bad_replies("202611210004", "truncated", 1)
    summary = service.run_cycle()
    assert summary.ok == 5 and summary.failed == 2
    assert _state(engine, "202611210002").comm_state == "online"
    assert _state(engine, "202611210001").last_error.startswith("bad_reply")
    assert service.run_cycle().ok == 7
