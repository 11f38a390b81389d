"""Site-wide work: named jobs that survive their failures, the status page that shows them, and the events the
collector (what a cycle changed, from real cycles against the simulator) and the dispatcher (settled commands)
publish."""
from __future__ import annotations

import datetime as dt
import threading
import time
from functools import partial

import pytest
import sqlalchemy as sa

from billing import accounts, settlement
from billing.context import utcnow
from collectors.changes import BalanceCrossing, BitChange, RelayChange
from collectors.cycle import CollectorService
from collectors.dispatch import Dispatcher
from collectors.poller import FieldIO
from collectors.profiles import ProfileRegistry
from collectors.schedule import Jobs
from core.config import ConfigError, load_config
from core.events import COMMAND_SETTLED, CYCLE_CHANGED, EventBus
from dashboard.components.status import status_page
from serve.billing import balance_thresholds
from serve.runtime import job_health
from simulator.field import run_field_in_thread
from simulator.secure import TEST_MASTER_KEY
from storage.schema import bus, command, gateway

from tests.billing_support import NATIONAL_ID, address, flat_tariff, load_site, make_ctx, meter_id, prepaid_site
from tests.conftest import free_port_block
from tests.component_text import component_text

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _wait_for(predicate, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


# --- jobs ------------------------------------------------------------------------------------------

def test_a_failing_job_is_recorded_with_its_error_and_runs_again_while_another_job_keeps_running():
    calls = {"flaky": 0, "steady": 0}

    def flaky():
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("meter database locked")

    jobs = Jobs()
    jobs.add("flaky", flaky, 0.1)
    jobs.add("steady", lambda: calls.__setitem__("steady", calls["steady"] + 1), 0.1)
    try:
        jobs.start()
        assert _wait_for(lambda: calls["flaky"] >= 2 and calls["steady"] >= 2)
    finally:
        jobs.stop()
    flaky_status, steady_status = jobs.status()
    assert flaky_status.last_error == "RuntimeError: meter database locked" and flaky_status.last_error_at
    assert flaky_status.last_ok is True, "the run after the failure succeeded"
    assert flaky_status.runs >= 2 and steady_status.runs >= 2 and steady_status.last_error is None


def test_a_job_given_a_new_interval_runs_on_it_from_now():
    jobs = Jobs()
    jobs.add("reconcile", lambda: None, 3600, first_run=utcnow() + dt.timedelta(hours=1))
    try:
        jobs.start()
        jobs.reschedule("reconcile", 60)
        (status,) = jobs.status()
    finally:
        jobs.stop()
    assert status.interval_s == 60
    assert dt.timedelta(seconds=30) < status.next_run_at - utcnow() <= dt.timedelta(seconds=60)


def test_a_woken_job_runs_now_instead_of_at_its_next_interval():
    ran = threading.Event()
    jobs = Jobs()
    jobs.add("reconcile", ran.set, 3600, first_run=utcnow() + dt.timedelta(hours=1))
    try:
        jobs.start()
        jobs.wake("reconcile")
        assert ran.wait(20)
    finally:
        jobs.stop()


def test_job_intervals_come_from_the_jobs_section_and_a_zero_interval_is_refused(tmp_path):
    f = tmp_path / "site.toml"
    f.write_text("[jobs]\nreconcile_interval_s = 120\ntariff_push_interval_s = 30\n", encoding="utf-8")
    cfg = load_config(f, env={})
    assert (cfg.reconcile_interval_s, cfg.tariff_push_interval_s) == (120, 30)
    f.write_text("[jobs]\nreconcile_interval_s = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="reconcile_interval_s must be from 1 second"):
        load_config(f, env={})


def test_a_subscriber_that_fails_never_stops_the_publisher_or_the_others(caplog):
    bus_, heard = EventBus(), []

    def broken(_event):
        raise ValueError("cannot send SMS")

    bus_.subscribe("topic", broken)
    bus_.subscribe("topic", heard.append)
    assert bus_.publish("topic", "meter lost") == 1
    assert heard == ["meter lost"] and "cannot send SMS" in caplog.text


# --- the status page -------------------------------------------------------------------------------

def _health_with_jobs() -> dict:
    jobs = Jobs()
    jobs.add("poll", lambda: None, 1800)
    jobs.add("tariff_push", lambda: 1 / 0, 60)
    jobs.add("reconcile", lambda: None, 300)
    jobs.run("poll")
    jobs.run("tariff_push")
    return {"scheduler_running": True, "jobs": [job_health(s) for s in jobs.status()]}


@pytest.mark.parametrize("lang, labels, failed", [
    ("en", ("Meter poll", "Scheduled tariff push", "Reconciliation"), "failed"),
    ("zh", ("抄表", "电价定时下发", "对账"), "失败"),
])
def test_the_status_page_shows_each_job_with_its_last_run_and_error(lang, labels, failed):
    h = _health_with_jobs()
    text = _text(status_page(h, lang, SHANGHAI))
    for label in labels:
        assert label in text
    poll, push, reconcile = h["jobs"]
    ran_at = dt.datetime.fromisoformat(poll["last_run"]).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    assert ran_at in text, "the last run in the site's zone"
    assert "ZeroDivisionError: division by zero" in text and failed in text
    assert reconcile["last_run"] is None and push["ok"] is False


_text = component_text

# --- what a cycle changed, from real cycles on the simulator ---------------------------------------

@pytest.fixture
def site(any_engine):
    """Meters 1..4 (balances 100.00, 5.00, 0.00, 20.00) on two buses of GW-A; lost after one missed poll."""
    spec = prepaid_site(free_port_block(2))
    load_site(any_engine, spec, utcnow())
    with any_engine.begin() as conn:
        conn.execute(gateway.update().values(timeout_s=0.8, retries=0))  # quick, yet answered on a busy machine
    events, heard = EventBus(), []
    events.subscribe(CYCLE_CHANGED, heard.append)
    events.subscribe(COMMAND_SETTLED, heard.append)
    with run_field_in_thread(spec) as ft, FieldIO(ProfileRegistry()) as fio:
        collector = CollectorService(any_engine, fio, lost_after=1, clock=utcnow, events=events,
                                     balance_thresholds=partial(balance_thresholds, any_engine))
        collector.run_cycle()
        heard.clear()
        yield ft.field, fio, collector, events, heard


def _set(field, n: int, **values) -> None:
    m = field.meter(address(n))
    for k, v in values.items():
        setattr(m, k, v)
    m.mark_dirty()


def test_a_cycle_publishes_a_meter_lost_and_recovered_a_relay_opened_and_a_balance_crossing(site, any_engine):
    field, _fio, collector, _events, heard = site
    field.set_meter_offline(address(2))
    _set(field, 1, balance_fen=400)            # 100.00 -> 4.00: down through alarm 1 (20.00) and alarm 2 (5.00)
    _set(field, 4, forced_trip=True)           # the relay opens
    collector.run_cycle()
    field.set_meter_offline(address(2), False)
    collector.run_cycle()
    lost, back = heard
    m1, m2, m4 = (meter_id(any_engine, address(n)) for n in (1, 2, 4))
    assert lost.meters_lost == (m2,) and back.meters_recovered == (m2,)
    assert RelayChange(m4, closed=False) in lost.relays
    assert BalanceCrossing(m1, "alarm1", 2000, "down", 10000, 400) in lost.balances
    assert BalanceCrossing(m1, "alarm2", 500, "down", 10000, 400) in lost.balances
    assert BitChange(m1, "alarm2", False, True) in lost.bits
    assert back.balances == () and back.relays == () and not back.buses_lost


def test_a_gateway_whose_buses_stop_answering_is_published_lost_and_then_recovered(site, any_engine):
    field, _fio, collector, _events, heard = site
    field.set_gateway_down("GW-A", True)
    collector.run_cycle()
    field.set_gateway_down("GW-A", False)
    collector.run_cycle()
    down, up = heard
    with any_engine.connect() as conn:
        buses = set(conn.execute(sa.select(bus.c.id)).scalars())
        gw = conn.execute(sa.select(gateway.c.id).where(gateway.c.name == "GW-A")).scalar_one()
    assert set(down.buses_lost) == buses and down.gateways_lost == (gw,) and len(down.meters_lost) == 4
    assert set(up.buses_recovered) == buses and up.gateways_recovered == (gw,) and len(up.meters_recovered) == 4


def test_each_command_the_dispatcher_settles_is_published_after_it_is_stored(site, any_engine):
    _field, fio, _collector, events, heard = site
    ctx = make_ctx(any_engine, utcnow)
    flat_tariff(ctx)
    dispatcher = Dispatcher(any_engine, fio, TEST_MASTER_KEY, utcnow, events=events,
                            on_settled=partial(settlement.settle_command, ctx), send_timeout_s=1.0)
    stored = []
    events.subscribe(COMMAND_SETTLED, lambda e: stored.append(_command_state(any_engine, e.id)))
    accounts.open_account(ctx, holder_name="张三", meter_addresses=[address(1)], operator="cashier",
                          national_id=NATIONAL_ID)
    dispatcher.run_once()
    with any_engine.connect() as conn:
        queued = conn.execute(sa.select(command.c.id, command.c.kind, command.c.purpose)
                              .where(command.c.meter_id == meter_id(any_engine, address(1)))
                              .order_by(command.c.id)).all()
    assert [(e.id, e.kind, e.purpose, e.state) for e in heard] == [(i, k, p, "acked") for i, k, p in queued]
    assert stored == ["acked"] * len(queued), "a subscriber reads the settled state"


def _command_state(engine, command_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(command.c.state).where(command.c.id == command_id)).scalar_one()
